/**
 * Finds a free TCP port on 127.0.0.1 for a server we start as a separate process.
 *
 * @module
 */

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for a listener
 * that is closed at once. Another process could take it in between, so callers that spawn a
 * server on it should retry on "address already in use".
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
