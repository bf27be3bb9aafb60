/**
 * The import rules of ARCHITECTURE.md, checked on the source: every relative import of every
 * module under `lib/`, `cmd/`, `main.ts` and `deploy.ts` is resolved and held to the rule of the
 * folder it comes from. A new import that points the wrong way fails here with the rule it breaks.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));

/** One module's imports: resolved project paths, and the specifiers that are not relative. */
interface ModuleImports {
  local: string[];
  external: string[];
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|(?:^|[\s;(])import\s*\(?\s*["']([^"']+)["']/g;

/** The import specifiers of a module's code, leaving out JSDoc and comments. */
function specifiers(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  return [...code.matchAll(IMPORT)].map((m) => m[1] ?? m[2]);
}

async function modules(): Promise<Map<string, ModuleImports>> {
  const found = new Map<string, ModuleImports>();
  const visit = async (path: string) => {
    const source = await Deno.readTextFile(join(ROOT, path));
    const local: string[] = [];
    const external: string[] = [];
    for (const spec of specifiers(source)) {
      if (spec.startsWith(".")) local.push(relative(ROOT, join(ROOT, dirname(path), spec)));
      else external.push(spec);
    }
    found.set(path, { local, external });
  };
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(join(ROOT, dir))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (path.endsWith(".ts")) await visit(path);
    }
  };
  await walk("lib");
  await walk("cmd");
  await visit("main.ts");
  await visit("deploy.ts");
  return found;
}

const isTest = (path: string) => path.endsWith("_test.ts");
const under = (path: string, folder: string) => path.startsWith(folder);

/** Each rule: which modules it covers, and which of their local imports it forbids. */
const RULES: {
  name: string;
  covers: (from: string) => boolean;
  forbids: (to: string) => boolean;
}[] = [
  {
    name: "lib/ never imports cmd/, tests/, testing/ or bench/ (its unit tests may use testing/)",
    covers: (from) => under(from, "lib/"),
    forbids: (to) => ["cmd/", "tests/", "bench/"].some((f) => under(to, f)),
  },
  {
    name: "lib/ modules (not their tests) never import testing/",
    covers: (from) => under(from, "lib/") && !isTest(from),
    forbids: (to) => under(to, "testing/"),
  },
  {
    name: "lib/core/ imports only lib/core/ (and proto/)",
    covers: (from) => under(from, "lib/core/") && !isTest(from),
    forbids: (to) => !under(to, "lib/core/") && !under(to, "proto/"),
  },
  {
    name: "lib/image/ imports only lib/core/ and lib/image/",
    covers: (from) => under(from, "lib/image/") && !isTest(from),
    forbids: (to) => !under(to, "lib/core/") && !under(to, "lib/image/"),
  },
  {
    name: "lib/credentials/ imports only lib/core/, lib/image/ and itself",
    covers: (from) => under(from, "lib/credentials/") && !isTest(from),
    forbids: (to) => !["lib/core/", "lib/image/", "lib/credentials/"].some((f) => under(to, f)),
  },
  {
    name: "lib/kube/ imports only lib/core/ and itself",
    covers: (from) => under(from, "lib/kube/") && !isTest(from),
    forbids: (to) => !["lib/core/", "lib/kube/"].some((f) => under(to, f)),
  },
  {
    name: "lib/auth/ imports only lib/core/, lib/kube/ and itself",
    covers: (from) => under(from, "lib/auth/") && !isTest(from),
    forbids: (to) => !["lib/core/", "lib/kube/", "lib/auth/"].some((f) => under(to, f)),
  },
  {
    name: "only cmd/ wires lib/auth/ in: the servers ask lib/core/bearer_token.ts's hook",
    covers: (from) => under(from, "lib/") && !under(from, "lib/auth/") && !isTest(from),
    forbids: (to) => under(to, "lib/auth/"),
  },
  {
    name: "lib/waves/ imports only lib/core/, itself, and the gate interface of lib/pull/",
    covers: (from) => under(from, "lib/waves/") && !isTest(from),
    forbids: (to) =>
      !["lib/core/", "lib/waves/", "proto/"].some((f) => under(to, f)) &&
      !["lib/pull/gate.ts", "lib/pull/scheduler.ts"].includes(to),
  },
  {
    name: "lib/keep/ imports lib/core/, lib/image/, lib/pull/, lib/runtime/, lib/kube/ and itself",
    covers: (from) => under(from, "lib/keep/") && !isTest(from),
    forbids: (to) =>
      !["lib/core/", "lib/image/", "lib/pull/", "lib/runtime/", "lib/kube/", "lib/keep/"].some((
        f,
      ) => under(to, f)),
  },
  {
    name: "lib/pull/ never imports lib/metrics/ (it reports through pull/reporter.ts)",
    covers: (from) => under(from, "lib/pull/"),
    forbids: (to) => under(to, "lib/metrics/"),
  },
  {
    name: "the metrics client never imports the metrics server (its tests may, as a peer)",
    covers: (from) => under(from, "lib/metrics/client/") && !isTest(from),
    forbids: (to) => under(to, "lib/metrics/server/"),
  },
  {
    name: "the metrics protocol imports neither side",
    covers: (from) => from === "lib/metrics/protocol.ts",
    forbids: (to) => under(to, "lib/metrics/client/") || under(to, "lib/metrics/server/"),
  },
  {
    name: "the metrics server never imports the client, nor pull/ or runtime/",
    covers: (from) => under(from, "lib/metrics/server/") && !isTest(from),
    forbids: (to) => ["lib/metrics/client/", "lib/pull/", "lib/runtime/"].some((f) => under(to, f)),
  },
];

Deno.test("imports point one way: every rule holds for every module", async () => {
  const found = await modules();
  // The scan itself must see imports, or every rule would pass for nothing.
  assert.ok(
    found.get("lib/metrics/client/submitter.ts")?.local.includes("lib/metrics/protocol.ts"),
    "the import scan found no imports; fix specifiers() before trusting this test",
  );
  const broken: string[] = [];
  for (const [from, { local }] of found) {
    for (const rule of RULES) {
      if (!rule.covers(from)) continue;
      for (const to of local) if (rule.forbids(to)) broken.push(`${from} -> ${to}: ${rule.name}`);
    }
  }
  assert.deepEqual(broken, [], `imports that break ARCHITECTURE.md's rules:\n${broken.join("\n")}`);
});

Deno.test("deploy.ts runs from a URL: its imports stay in lib/deploy/ and need no package", async () => {
  const found = await modules();
  // Allowed beyond lib/deploy/: the one duration parser fetch also uses (it imports nothing),
  // so that deploy accepts exactly the durations fetch does, and deno.json for the version.
  const allowed = new Set(["lib/core/duration.ts", "deno.json"]);
  const seen = new Set<string>();
  const queue = ["deploy.ts"];
  const problems: string[] = [];
  while (queue.length > 0) {
    const path = queue.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const imports = found.get(path) ?? { local: [], external: [] };
    for (const spec of imports.external) problems.push(`${path} imports the package "${spec}"`);
    for (const to of imports.local) {
      if (!under(to, "lib/deploy/") && !allowed.has(to)) problems.push(`${path} -> ${to}`);
      if (to.endsWith(".ts")) queue.push(to);
    }
  }
  assert.ok(seen.has("lib/deploy/manifests.ts"), "the scan did not follow deploy.ts's imports");
  assert.deepEqual(
    problems,
    [],
    `deploy.ts must stay runnable from a URL:\n${problems.join("\n")}`,
  );
});

/** The specifiers a module loads when it is loaded: no `import type`, no dynamic `import()`. */
function staticSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const pattern =
    /(?:^|[\s;])(?:import|export)\s(?!type\s)[^"';(]*?from\s*["']([^"']+)["']|(?:^|[\s;])import\s*["']([^"']+)["']/g;
  return [...code.matchAll(pattern)].map((m) => m[1] ?? m[2]);
}

Deno.test("keep's idle process loads no package: cmd/keep.ts's static imports stay built-in", async () => {
  // The idle parent must cost little more than `sleep`; gRPC and the pulling code load only in
  // each cycle's child process (dynamic imports, which this scan does not follow).
  const seen = new Set<string>();
  const queue = ["cmd/keep.ts"];
  const problems: string[] = [];
  while (queue.length > 0) {
    const path = queue.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const source = await Deno.readTextFile(join(ROOT, path));
    for (const spec of staticSpecifiers(source)) {
      if (spec.startsWith(".")) {
        const to = relative(ROOT, join(ROOT, dirname(path), spec));
        if (to.endsWith(".ts")) queue.push(to);
      } else if (!spec.startsWith("node:")) problems.push(`${path} imports the package "${spec}"`);
    }
  }
  assert.ok(seen.has("lib/keep/keeper.ts"), "the scan did not follow cmd/keep.ts's imports");
  // Nor the flag tables: `keep-cycle check` parses and checks keep's flags in a child.
  for (const heavy of ["cmd/_flags.ts", "cmd/fetch.ts", "cmd/keep_cycle.ts"]) {
    if (seen.has(heavy)) problems.push(`cmd/keep.ts loads ${heavy}`);
  }
  assert.deepEqual(
    problems,
    [],
    `keep's idle process must not load packages:\n${problems.join("\n")}`,
  );
});

Deno.test("no import cycles among lib/ modules", async () => {
  const found = await modules();
  const state = new Map<string, "visiting" | "done">();
  const cycles: string[] = [];
  const visit = (path: string, trail: string[]) => {
    if (state.get(path) === "done") return;
    if (state.get(path) === "visiting") {
      cycles.push([...trail.slice(trail.indexOf(path)), path].join(" -> "));
      return;
    }
    state.set(path, "visiting");
    for (const to of found.get(path)?.local ?? []) {
      if (under(to, "lib/") && !isTest(to)) visit(to, [...trail, path]);
    }
    state.set(path, "done");
  };
  for (const path of found.keys()) if (under(path, "lib/") && !isTest(path)) visit(path, []);
  assert.deepEqual(cycles, []);
});
