/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1 signed by it, made
 * with `openssl` (installed with apt-get when missing), for tests that need HTTPS with a CA of
 * their own.
 *
 * @module
 */
import { ensureDebianPackages } from "../stack/packages.ts";

/** PEM files of a test CA and a server certificate for `127.0.0.1` and `localhost`. */
export interface TestCertificates {
  /** The CA certificate (PEM), what clients trust. */
  caCert: string;
  /** The server's certificate (PEM), signed by the CA. */
  cert: string;
  /** The server's private key (PEM). */
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const output = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(
      `openssl ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr).trim()}`,
    );
  }
}

/** Makes a new CA and a server certificate signed by it, valid for a day. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  await ensureDebianPackages([{ name: "openssl", binary: "openssl" }]);
  const dir = await Deno.makeTempDir({ prefix: "ipf-test-ca-" });
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "1",
      "-subj",
      "/CN=image-prefetcher test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ], dir);
    await openssl([
      "req",
      ...ec,
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=127.0.0.1",
    ], dir);
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.crt",
      "-days",
      "1",
      "-extfile",
      "server.ext",
    ], dir);
    const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
    return {
      caCert: await read("ca.crt"),
      cert: await read("server.crt"),
      key: await read("server.key"),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
