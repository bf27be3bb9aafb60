/**
 * A ConfigMap volume, written the way the kubelet writes one (kubernetes
 * `pkg/volume/util/atomic_writer.go`, `AtomicWriter.Write`), for tests of what follows it:
 *
 * - the data lives in a hidden directory `..<UTC yyyy_mm_dd_hh_mm_ss>.<random>` (mode 0755);
 * - `..data` is a symlink to that directory's name;
 * - each key is a symlink `<key> -> ..data/<key>`.
 *
 * An update writes a whole new timestamped directory, creates `..data_tmp` pointing at it,
 * renames `..data_tmp` over `..data` (the atomic step), creates the symlinks of new keys,
 * removes those of keys that are gone, and finally deletes the old directory.
 *
 * @module
 */

/** A volume directory; {@linkcode ConfigMapVolume.write} projects a new version of the keys. */
export class ConfigMapVolume {
  /** The volume's directory (the container's mount path). */
  readonly dir: string;

  /** Uses `dir`, which must exist. */
  constructor(dir: string) {
    this.dir = dir;
  }

  /** The path of `key`'s file, as a container reads it. */
  path(key: string): string {
    return `${this.dir}/${key}`;
  }

  /** Projects `data` (key to content) as the kubelet does; the first call lays the volume out. */
  async write(data: Record<string, string>): Promise<void> {
    const oldTarget = await Deno.readLink(`${this.dir}/..data`).catch(() => undefined);
    const oldKeys = oldTarget ? await keysIn(`${this.dir}/${oldTarget}`) : [];
    const stamp = new Date().toISOString().replace(/[-T:]/g, "_").slice(0, 19);
    const tsDir = await Deno.makeTempDir({ dir: this.dir, prefix: `..${stamp}.` });
    await Deno.chmod(tsDir, 0o755);
    for (const [key, content] of Object.entries(data)) {
      await Deno.writeTextFile(`${tsDir}/${key}`, content, { mode: 0o644 });
    }
    const tsName = tsDir.slice(tsDir.lastIndexOf("/") + 1);
    await Deno.symlink(tsName, `${this.dir}/..data_tmp`);
    await Deno.rename(`${this.dir}/..data_tmp`, `${this.dir}/..data`);
    for (const key of Object.keys(data)) {
      const visible = `${this.dir}/${key}`;
      const exists = await Deno.readLink(visible).then(() => true, () => false);
      if (!exists) await Deno.symlink(`..data/${key}`, visible);
    }
    for (const key of oldKeys.filter((k) => !(k in data))) {
      await Deno.remove(`${this.dir}/${key}`);
    }
    if (oldTarget) await Deno.remove(`${this.dir}/${oldTarget}`, { recursive: true });
  }
}

async function keysIn(dir: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of Deno.readDir(dir)) keys.push(entry.name);
  return keys;
}
