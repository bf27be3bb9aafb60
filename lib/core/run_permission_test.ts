import assert from "node:assert/strict";

Deno.test("dropRunPermission() leaves a process with --allow-run unable to start programs", async () => {
  const script = `
    import { dropRunPermission } from ${
    JSON.stringify(new URL("./run_permission.ts", import.meta.url).href)
  };
    const before = (await new Deno.Command("true").output()).success;
    dropRunPermission();
    let after;
    try {
      await new Deno.Command("true").output();
      after = "ran";
    } catch (error) {
      after = error.name;
    }
    console.log(JSON.stringify({ before, after }));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", "--allow-run", "--allow-read", script],
    stderr: "inherit",
  }).output();
  assert.ok(output.success);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
    before: true,
    after: "NotCapable",
  });
});
