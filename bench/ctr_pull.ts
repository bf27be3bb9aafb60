/**
 * `ctr images pull`, containerd's own client, as the benchmarks' reference: one process per
 * image, into the `k8s.io` namespace and the snapshotter CRI unpacks into in this stack, so both
 * do the same work.
 *
 * @module
 */

/**
 * Pulls `reference` (plain HTTP) with the `ctr` at `ctrPath` through `socket`.
 *
 * @returns `undefined` when pulled, else `ctr`'s standard error.
 */
export async function ctrImagesPull(
  ctrPath: string,
  socket: string,
  reference: string,
): Promise<string | undefined> {
  const output = await new Deno.Command(ctrPath, {
    args: [
      "--address",
      socket,
      "-n",
      "k8s.io",
      "images",
      "pull",
      "--plain-http",
      "--snapshotter",
      "native",
      reference,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return output.success ? undefined : new TextDecoder().decode(output.stderr);
}
