/**
 * Fault injection for registry tests.
 *
 * {@link startFaultProxy}: a TCP proxy (node:net, optionally terminating and re-originating TLS with the harness
 * CA) in front of a registry. It forwards bytes unchanged but frames HTTP/1.1 in both directions, so rules can
 * act on the response to a given request: reset or close the connection after N body bytes, throttle, delay the
 * head, stall, or answer with a synthetic status. The upstream still receives every request. `kill()` drops the
 * listener and every connection ("origin killed"), `restart()` listens again on the same port.
 *
 * {@link tamperBlob}: overwrite bytes of a blob in a registry's filesystem storage, keeping its size.
 */
import { closeSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { FaultProxyServer } from "./fault-proxy";
import type { RequestInfo } from "./http-stream";

export type { RequestInfo } from "./http-stream";

export type FaultAction =
  /** Forward the first `afterBytes` bytes of the response body, then send a TCP RST to the client. */
  | { type: "reset"; afterBytes: number }
  /** Forward the first `afterBytes` body bytes, then close the client connection cleanly (FIN): a short body. */
  | { type: "close"; afterBytes: number }
  /** Pace the response body to `bytesPerSecond`. */
  | { type: "throttle"; bytesPerSecond: number }
  /** Hold the response head for `ms` before forwarding it. */
  | { type: "delay"; ms: number }
  /** Forward the head and `afterBytes` body bytes (default 0), then send nothing more (for timeout tests). */
  | { type: "stall"; afterBytes?: number }
  /** Replace the response with this one (the upstream still got the request), then close the connection. */
  | { type: "respond"; status: number; body?: string; headers?: Record<string, string> };

export interface FaultRule {
  /** Which requests; default all. */
  match?: (req: RequestInfo) => boolean;
  action: FaultAction;
  /** Apply to this many matching responses, then retire; default unlimited. */
  times?: number;
}

export interface FaultTarget {
  host: string;
  tls: boolean;
  caFile?: string;
  username?: string;
  password?: string;
}

export interface FaultProxyOptions {
  /** Listen with TLS (harness server cert); default: same as the target. */
  tls?: boolean;
  rules?: FaultRule[];
  /** Pace every connection, both directions, to this rate (bytes/s). */
  throttleBytesPerSecond?: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly tls: boolean;
  readonly caFile?: string;
  readonly certDir?: string;
  /** Copied from the target, so the proxy can stand in for it in pushImage() & co. */
  readonly username?: string;
  readonly password?: string;
  readonly creds?: string;
  readonly target: FaultTarget;
  /** Every request seen, in order. */
  readonly requests: RequestInfo[];
  /** Connections accepted so far / open now. */
  readonly connectionsAccepted: number;
  readonly connectionsOpen: number;
  /** How many times each rule fired (same order as the rules). */
  readonly fired: number[];
  setRules(rules: FaultRule[]): void;
  addRule(rule: FaultRule): void;
  clearRules(): void;
  setThrottle(bytesPerSecond: number | undefined): void;
  /** Destroy every open connection (RST), keep listening. */
  resetConnections(): void;
  /** "Origin killed": stop listening and destroy every connection. */
  kill(): void;
  /** Listen again on the same port after kill(). */
  restart(): Promise<void>;
  /** Final cleanup; idempotent. */
  stop(): Promise<void>;
}

/** Path predicates for rules. */
export const match = {
  blobGet: (r: RequestInfo): boolean => r.method === "GET" && /\/blobs\/[a-z0-9]+:[a-f0-9]+/.test(r.path),
  manifestGet: (r: RequestInfo): boolean => r.method === "GET" && /\/manifests\//.test(r.path),
  path:
    (re: RegExp) =>
    (r: RequestInfo): boolean =>
      re.test(r.path),
  digest:
    (digest: string) =>
    (r: RequestInfo): boolean =>
      r.path.includes(digest),
};

/** Start a fault proxy in front of `target` (a StartedRegistry or anything with host/tls[/caFile]). */
export async function startFaultProxy(
  target: FaultTarget,
  opts: FaultProxyOptions = {},
): Promise<FaultProxy> {
  const p = new FaultProxyServer(
    {
      host: target.host,
      tls: target.tls,
      ...(target.caFile ? { caFile: target.caFile } : {}),
      ...(target.username !== undefined ? { username: target.username } : {}),
      ...(target.password !== undefined ? { password: target.password } : {}),
    },
    opts,
  );
  await p.init();
  return p;
}

export interface TamperOptions {
  /** Where to start overwriting; default the middle of the blob. */
  offset?: number;
  /** How many bytes; default 16 (clamped to the blob size). */
  length?: number;
}

/**
 * Corrupt a stored blob in place (same size, different bytes: each byte XOR 0xff), so the registry keeps serving
 * it under its digest. `storage` is a StartedRegistry (uses blobFile) or a storage root directory.
 */
export function tamperBlob(
  storage: { blobFile(digest: string): string } | string,
  digest: string,
  opts: TamperOptions = {},
): { path: string; size: number; offset: number; length: number } {
  const path =
    typeof storage === "string"
      ? (() => {
          const [alg, hex] = digest.split(":");
          if (!alg || !hex) throw new Error(`tamperBlob: bad digest ${digest}`);
          return `${storage}/docker/registry/v2/blobs/${alg}/${hex.slice(0, 2)}/${hex}/data`;
        })()
      : storage.blobFile(digest);
  const size = statSync(path).size;
  if (size === 0) throw new Error(`tamperBlob: ${path} is empty`);
  const length = Math.min(opts.length ?? 16, size);
  const offset = Math.min(opts.offset ?? Math.floor((size - length) / 2), size - length);
  const fd = openSync(path, "r+");
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    for (let i = 0; i < length; i++) buf[i] = (buf[i] ?? 0) ^ 0xff;
    writeSync(fd, buf, 0, length, offset);
  } finally {
    closeSync(fd);
  }
  return { path, size: statSync(path).size, offset, length };
}
