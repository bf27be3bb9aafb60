import assert from "node:assert/strict";
import { InvalidInputError } from "./exit_codes.ts";
import { readTokenFile } from "./token_file.ts";

Deno.test("the token is the file's one word, surrounding whitespace ignored", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "  s3cret-token\n");
    assert.equal(await readTokenFile(file, "--token-file"), "s3cret-token");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("a missing, empty or many-word token file is one sentence naming flag and file", async () => {
  const file = await Deno.makeTempFile();
  try {
    for (
      const [content, pattern] of [
        ["", /must hold one token without spaces; it holds nothing/],
        ["two words", /it holds several words/],
      ] as const
    ) {
      await Deno.writeTextFile(file, content);
      await assert.rejects(() => readTokenFile(file, "--metrics-token-file"), (e: Error) => {
        assert.ok(e instanceof InvalidInputError);
        assert.ok(e.message.startsWith(`--metrics-token-file ${file} `), e.message);
        assert.match(e.message, pattern);
        return true;
      });
    }
  } finally {
    await Deno.remove(file);
  }
  await assert.rejects(
    () => readTokenFile("/nonexistent/token", "--token-file"),
    /Cannot read --token-file \/nonexistent\/token .*point it at a readable file/,
  );
});
