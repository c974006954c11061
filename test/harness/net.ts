/** Loopback networking helpers: free ports and a tiny HTTP(S) client that does not pool connections. */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { readFileSync } from "node:fs";

export const LOOPBACK = "127.0.0.1";
/**
 * The local node's address (node.ts puts it on a dummy interface): the API server, the test origins and the node's
 * Pods reach each other there. In the harness server certificate, so origins can serve TLS on it.
 */
export const NODE_IP = "10.89.0.1";

/**
 * A TCP port that was free a moment ago on 127.0.0.1 (bind port 0, read it, close). distribution cannot bind
 * port 0 and report it, so callers must retry on EADDRINUSE; ports handed out by this process are not reused.
 */
const handedOut = new Set<number>();
export async function freePort(host = LOOPBACK): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.on("error", reject);
      srv.listen({ host, port: 0, exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === "object" && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("freePort: could not find a free port");
}

export interface SimpleResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface SimpleRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** PEM file of the CA to trust for https URLs. */
  caFile?: string;
  /** Basic credentials "user:pass". */
  auth?: string;
  timeoutMs?: number;
}

/** One HTTP(S) request on a fresh connection (agent: false), body fully buffered. */
export function simpleRequest(url: string, opts: SimpleRequestOptions = {}): Promise<SimpleResponse> {
  const u = new URL(url);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
  const https = u.protocol === "https:";
  const fn = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = fn(
      u,
      {
        method: opts.method ?? "GET",
        headers,
        agent: false,
        ...(https && opts.caFile ? { ca: readFileSync(opts.caFile) } : {}),
        timeout: opts.timeoutMs ?? 10_000,
      },
      res => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("aborted", () =>
          reject(new Error(`response aborted after ${Buffer.concat(chunks).length} bytes`)),
        );
        res.on("end", () =>
          res.complete
            ? resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
            : reject(new Error(`incomplete response after ${Buffer.concat(chunks).length} bytes`)),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 10_000} ms: ${url}`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}
