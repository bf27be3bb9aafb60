import assert from "node:assert/strict";
import { InvalidInputError } from "./exit_codes.ts";
import { currentToken, readTokenFile, tokenFileSource } from "./token_file.ts";

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

Deno.test("a token file source reads the file again on every call, keeping the last good token", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/token`;
  try {
    await Deno.writeTextFile(file, "first\n");
    const token = await tokenFileSource(file, "--metrics-token-file");
    assert.equal(token(), "first");
    // The kubelet rewrote the projected token.
    await Deno.writeTextFile(file, "second");
    assert.equal(token(), "second");
    // Mid-swap: gone or empty for a moment.
    await Deno.remove(file);
    assert.equal(token(), "second");
    await Deno.writeTextFile(file, "");
    assert.equal(token(), "second");
    assert.equal(currentToken(token), "second");
    assert.equal(currentToken("fixed"), "fixed");
    assert.equal(currentToken(undefined), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
