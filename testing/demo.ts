/**
 * The sandbox demo: brings up a real registry and a real containerd on this machine (installing
 * the Debian packages `containerd` and `docker-registry` if missing), pushes a few generated
 * images, and runs `image-prefetcher fetch` against them twice — once with a registry connection
 * that stalls, once more to show that nothing is pulled again.
 *
 * Run: deno task demo   (as root: containerd needs it)
 *
 * @module
 */
import { MissingPackageError, PackageInstallError, startStack } from "./stack/stack.ts";
import { PERMISSION_FLAGS } from "./prefetcher_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The generated images: repository, tag, layers and layer size. */
const DEMO_IMAGES = [
  { repository: "demo/web", tag: "1.4.2", layers: 3, layerBytes: 2 << 20 },
  { repository: "demo/api", tag: "2.0.0", layers: 2, layerBytes: 4 << 20 },
  { repository: "demo/tools/debug", tag: "latest", layers: 1, layerBytes: 1 << 20 },
  { repository: "demo/batch", tag: "0.9.1", layers: 4, layerBytes: 1 << 20 },
];

function say(text: string): void {
  console.log(`\n=== ${text}`);
}

async function fetchOnce(socket: string, list: string, extra: string[]): Promise<number> {
  const args = ["run", "--quiet", ...PERMISSION_FLAGS, MAIN, "fetch", "--cri-socket", socket];
  args.push("--image-list-file", list, "--node-name", "sandbox-node", ...extra);
  console.log(`$ image-prefetcher ${args.slice(args.indexOf("fetch")).join(" ")}`);
  const command = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  });
  const { code } = await command.spawn().status;
  console.log(`(exit status ${code})`);
  return code;
}

if (import.meta.main) {
  if (Deno.uid() !== 0) {
    console.error(
      "The demo starts containerd, which needs root: run it as root (e.g. sudo -E deno task demo).",
    );
    Deno.exit(1);
  }
  say("Starting a real registry and a real containerd on 127.0.0.1 (installing them if missing)");
  let stack;
  try {
    stack = await startStack();
  } catch (error) {
    if (error instanceof MissingPackageError || error instanceof PackageInstallError) {
      console.error(error.message);
      Deno.exit(1);
    }
    throw error;
  }
  await using _stack = stack;
  console.log(`registry ${stack.registry.host}, fault proxy ${stack.proxy.host}`);
  console.log(`containerd socket ${stack.containerd.socket}`);

  say("Pushing generated images");
  const pushed = [];
  for (const image of DEMO_IMAGES) {
    const result = await stack.pushImage(image);
    pushed.push(result);
    console.log(`pushed ${result.reference(stack.registry.host)} (${result.sizeBytes} bytes)`);
  }
  const list = await Deno.makeTempFile({ prefix: "demo-images-", suffix: ".txt" });
  await Deno.writeTextFile(
    list,
    [
      "# The demo's image list: one image per line, pulled through the fault proxy.",
      ...pushed.map((image) => image.reference(stack.proxy.host)),
      `${stack.proxy.host}/demo/missing:1.0 # not in the registry: reported, others unaffected`,
      "",
    ].join("\n"),
  );

  say(
    "Run 1: every image in parallel; the first blob request stalls after 256 KiB and is cut " +
      "after 3 s without bytes (or 5 s without any visible progress)",
  );
  stack.proxy.setFaults({ stall: { count: 1, afterBytes: 256 << 10 } });
  await fetchOnce(stack.containerd.socket, list, [
    "--initial-pull-attempt-timeout",
    "5s",
    "--stall-timeout",
    "3s",
  ]);

  say(
    "Run 2: pinned images already on the node are not pulled again (latest is, as in Kubernetes)",
  );
  stack.proxy.setFaults({});
  stack.proxy.resetCounters();
  await fetchOnce(stack.containerd.socket, list, []);
  console.log(`registry requests during run 2: ${stack.proxy.requests.length}`);

  await Deno.remove(list);
  say("Stopping the sandbox");
}
