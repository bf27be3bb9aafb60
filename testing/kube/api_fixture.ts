/**
 * A test API server plus the files a pod would have: a service-account directory with the token
 * and the server's CA, and the `KUBERNETES_SERVICE_*` environment pointing at the server.
 *
 * @module
 */
import { startTestApiServer, type StoredNode, type TestApiServer } from "./api_server.ts";

/** A running test API server and a service-account directory that reaches it. */
export interface ApiFixture extends AsyncDisposable {
  /** The server. */
  server: TestApiServer;
  /** Directory with `token` and `ca.crt`. */
  serviceAccountDir: string;
  /** `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`. */
  env: Record<string, string>;
  /** Writes a new token to the file and makes the server accept only it (a rotation). */
  rotateToken(token: string): Promise<void>;
}

/** A node named `name` with `taints`, as the API stores it. */
export function testNode(name: string, taints: unknown[] = []): StoredNode {
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
    spec: { taints },
  };
}

/** Starts the server with `nodes` and `grants`, and writes the service-account directory. */
export async function startApiFixture(
  options: { nodes?: StoredNode[]; grants?: string[] } = {},
): Promise<ApiFixture> {
  const server = await startTestApiServer({ ...options, token: "token-1" });
  const dir = await Deno.makeTempDir({ prefix: "ipf-service-account-" });
  await Deno.writeTextFile(`${dir}/token`, "token-1\n");
  await Deno.writeTextFile(`${dir}/ca.crt`, server.caCert);
  return {
    server,
    serviceAccountDir: dir,
    env: { KUBERNETES_SERVICE_HOST: server.host, KUBERNETES_SERVICE_PORT: String(server.port) },
    rotateToken: async (token) => {
      await Deno.writeTextFile(`${dir}/token`, token);
      server.token = token;
    },
    [Symbol.asyncDispose]: async () => {
      await server[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
