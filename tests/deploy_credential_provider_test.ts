/**
 * `deploy.ts --credential-provider`: the node's credential provider files mounted read-only at
 * their host paths, fetch pointed at them (checked with the real fetch parser), the manifests
 * valid against the Kubernetes API schemas, and bad input refused.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { parseFetchArgs } from "../cmd/fetch.ts";
import { deploy, DeployInputError, type KubernetesObject } from "../deploy.ts";
import { NODE_CREDENTIAL_FILES } from "../lib/deploy/credential_provider.ts";
import { validationErrors } from "../testing/deploy_schema.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

function daemonSetPod(args: string[]): { objects: KubernetesObject[]; pod: Json } {
  const objects = parseAllDocuments(deploy(["my-images", ...args])).map((d) =>
    d.toJS() as KubernetesObject
  );
  const daemonSet = objects.find((o) => o.kind === "DaemonSet") as Json;
  return { objects, pod: daemonSet.spec.template.spec };
}

const CASES: Array<{ args: string[]; config: string; binDir: string; files: string[] }> = [
  ...(["eks", "gke", "aks"] as const).map((kind) => ({
    args: ["--credential-provider", kind],
    config: NODE_CREDENTIAL_FILES[kind].configFile,
    binDir: NODE_CREDENTIAL_FILES[kind].binDir,
    files: [...NODE_CREDENTIAL_FILES[kind].extraFiles],
  })),
  {
    args: [
      "--credential-provider",
      "custom",
      "--credential-provider-config",
      "/etc/kubernetes/credential-providers/config.yaml",
      "--credential-provider-bin-dir",
      "/usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec",
    ],
    config: "/etc/kubernetes/credential-providers/config.yaml",
    binDir: "/usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec",
    files: [],
  },
  {
    args: ["--credential-provider", "eks", "--credential-provider-bin-dir", "/opt/ecr/bin/"],
    config: NODE_CREDENTIAL_FILES.eks.configFile,
    binDir: "/opt/ecr/bin",
    files: [],
  },
];

Deno.test("--credential-provider mounts the node's files read-only and passes them to fetch", async () => {
  const all: KubernetesObject[] = [];
  for (const { args, config, binDir, files } of CASES) {
    const { objects, pod } = daemonSetPod(args);
    all.push(...objects);
    const init = pod.initContainers[0];
    const parsed = parseFetchArgs(init.args.slice(1), { nodeName: "n", hostname: () => "h" });
    assert.equal(parsed.kind, "run");
    if (parsed.kind !== "run") continue;
    assert.deepEqual(parsed.config.credentialProviders, {
      configPath: config,
      binDir,
      timeoutMs: 60_000,
    }, args.join(" "));
    // Every file fetch or a plugin reads is visible at its host path, read-only.
    const mounted = init.volumeMounts.filter((m: Json) => m.name.startsWith("credential-provider"));
    for (const mount of mounted) {
      assert.equal(mount.readOnly, true);
      const volume = pod.volumes.find((v: Json) => v.name === mount.name);
      assert.equal(volume.hostPath.path, mount.mountPath);
    }
    const paths = mounted.map((m: Json) => m.mountPath);
    for (const path of [binDir, ...files]) assert.ok(paths.includes(path), `${path} in ${paths}`);
    assert.ok(paths.some((p: string) => config === p || config.startsWith(`${p}/`)));
    // The clouds' plugins ask the metadata server for the node's identity.
    const custom = args.includes("custom");
    assert.equal(pod.hostNetwork, custom ? undefined : true);
    assert.equal(pod.dnsPolicy, custom ? undefined : "ClusterFirstWithHostNet");
  }
  assert.deepEqual(await validationErrors(all), []);
});

Deno.test("without --credential-provider nothing of it is in the manifest", () => {
  const { pod } = daemonSetPod([]);
  assert.equal(pod.hostNetwork, undefined);
  assert.ok(!JSON.stringify(pod).includes("credential-provider"));
});

Deno.test("--credential-provider refuses bad input with the fix", () => {
  const cases: Array<[string[], RegExp]> = [
    [["--credential-provider", "ibm"], /must be gke, eks, aks, custom, not "ibm"/],
    [["--credential-provider", "custom"], /custom needs --credential-provider-config and/],
    [["--credential-provider-config", "/c.yaml"], /need --credential-provider/],
    [
      ["--credential-provider", "gke", "--credential-provider-bin-dir", "bin"],
      /--credential-provider-bin-dir "bin" must be an absolute path/,
    ],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => deploy(["my-images", ...args]), (error: Error) => {
      assert.ok(error instanceof DeployInputError);
      assert.match(error.message, message);
      return true;
    });
  }
});
