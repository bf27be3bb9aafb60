/**
 * The release workflow cannot run on these machines (no Docker engine, no JSR); what can be
 * checked here is: it is well-formed YAML, it runs on version tags, it builds both architectures,
 * and every command it (and what it calls) runs exists: `.ci/run`, the `deno task`s of
 * `.ci/run` and the Dockerfile, one Deno version everywhere, and the image name deploy.ts writes.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import denoConfig from "../deno.json" with { type: "json" };
import { DEFAULT_IMAGE_REPO } from "../lib/deploy/manifests.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

interface Step {
  run?: string;
  uses?: string;
  with?: Record<string, string>;
}
interface Workflow {
  on: { push: { tags: string[] } };
  env: Record<string, string>;
  jobs: Record<string, { needs?: string | string[]; steps: Step[] }>;
}

const workflow = parse(await read(".github/workflows/release.yml")) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);

/** The tasks that `deno task <name>` lines of a script name. */
function tasksNamed(script: string): string[] {
  return [...script.matchAll(/deno(?:@[\d.]+)? task (\w[\w:-]*)/g)].map((m) => m[1]);
}

Deno.test("the release workflow runs on version tags, tests first, then image and package", () => {
  assert.deepEqual(workflow.on.push.tags, ["v*"]);
  assert.deepEqual(Object.keys(workflow.jobs).sort(), ["image", "publish", "test"]);
  assert.equal(workflow.jobs.image.needs, "test");
  assert.ok([workflow.jobs.publish.needs].flat().includes("test"));
});

Deno.test("the image is built for amd64 and arm64 under the name deploy.ts writes", () => {
  const build = steps.find((s) => s.uses?.startsWith("docker/build-push-action"));
  assert.ok(build?.with, "no docker/build-push-action step");
  assert.deepEqual(build.with.platforms.split(",").sort(), ["linux/amd64", "linux/arm64"]);
  const [repo] = build.with.tags.split(":");
  assert.equal(repo.replace("${{ github.repository_owner }}", "x"), DEFAULT_IMAGE_REPO);
});

Deno.test("every command the release runs exists, with one Deno version everywhere", async () => {
  const runs = steps.map((s) => s.run ?? "").join("\n");
  assert.match(runs, /bash \.ci\/run/);
  assert.match(runs, /deno@\$\{\{ env\.DENO_VERSION \}\} publish/);
  const ci = await read(".ci/run");
  const dockerfile = await read("Dockerfile");
  for (const name of [...tasksNamed(ci), ...tasksNamed(dockerfile), ...tasksNamed(runs)]) {
    assert.ok(Object.hasOwn(denoConfig.tasks, name), `deno.json has no task "${name}"`);
  }
  assert.ok(tasksNamed(ci).includes("test"), ".ci/run must run the README's test command");
  const version = workflow.env.DENO_VERSION;
  for (const [file, text] of [[".ci/run", ci], ["Dockerfile", dockerfile]]) {
    const versions = [...text.matchAll(/deno@([\d.]+)|DENO_VERSION=([\d.]+)/g)]
      .map((m) => m[1] ?? m[2]);
    assert.ok(versions.length > 0, `${file} names no Deno version`);
    for (const v of versions) {
      assert.equal(v, version, `${file} uses Deno ${v}, the release ${version}`);
    }
  }
});

Deno.test("the package is publishable: license, exports and the deploy entry point", async () => {
  assert.equal(denoConfig.license, "Apache-2.0");
  assert.match(await read("LICENSE"), /Apache License\s+Version 2\.0/);
  assert.equal(denoConfig.exports["./deploy"], "./deploy.ts");
});
