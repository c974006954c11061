/**
 * The proxy's listeners and lifecycle: one HTTP server per registry API address (127.0.0.1 and ::1 by default,
 * so that nodes resolving `localhost` to ::1 pull too — kuik v1 issues #529/#511), the ops server, and the
 * graceful shutdown (stop accepting, let in-flight pulls finish within a bound, then cut what is left).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { ListenAddress, ProxyConfig } from "./config";
import { ProxyError, sendError } from "./errors";
import { API_VERSION_HEADER } from "./headers";
import { createRequestHandler, type HandlerDeps } from "./handler";
import { createOpsHandler } from "./ops";

/** Everything {@link createProxyServer} needs. */
export interface ProxyDeps extends HandlerDeps {
  config: Pick<
    ProxyConfig,
    | "listen"
    | "listenIsDefault"
    | "opsListen"
    | "shutdownTimeoutMs"
    | "clientIdleTimeoutMs"
    | "maxConcurrentRequests"
    | "maxConnections"
  >;
  log: Logger;
}

/** A running (or startable) proxy. */
export interface ProxyServer {
  /** Binds every listener; rejects with `LISTEN_FAILED` when an address cannot be bound. */
  start(): Promise<void>;
  /** Bound registry API addresses (after start). */
  readonly addresses: AddressInfo[];
  /** Bound ops address (after start). */
  readonly opsAddress: AddressInfo | undefined;
  /** Requests being served. */
  readonly inflight: number;
  /**
   * Stops accepting, waits up to `timeoutMs` (default: config.shutdownTimeoutMs) for in-flight requests, then
   * closes every connection. Resolves with the number of requests cut short.
   */
  shutdown(timeoutMs?: number): Promise<{ interrupted: number }>;
}

/** Errors of `listen` that mean "this machine has no such address" (no IPv6 loopback), not "port taken". */
const MISSING_ADDRESS_CODES = new Set(["EADDRNOTAVAIL", "EAFNOSUPPORT"]);
/** What a request beyond `maxConcurrentRequests` is told: come back in a second (the kubelet retries pulls). */
const BUSY = {
  statusCode: 503,
  code: "TOOMANYREQUESTS",
  message: "the kuik proxy is serving too many requests; retry later",
  headers: { "retry-after": "1" },
} as const;

/** Builds the proxy from its dependencies; nothing listens until {@link ProxyServer.start}. */
export function createProxyServer(deps: ProxyDeps): ProxyServer {
  const { config, log } = deps;
  const handle = createRequestHandler(deps);
  const servers: Server[] = [];
  const addresses: AddressInfo[] = [];
  let opsServer: Server | undefined;
  let opsAddress: AddressInfo | undefined;
  let draining = false;
  let ready = false;
  const inflight = new InflightCounter();

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Each request may hold an origin connection, a token fetch and buffers: past the cap, refuse at once (cheap)
    // rather than queue, so one client flooding the proxy cannot starve the node's pulls for long.
    if (inflight.count >= config.maxConcurrentRequests) {
      deps.metrics.requestRejected();
      res.shouldKeepAlive = false;
      sendError(res, BUSY, API_VERSION_HEADER);
      return;
    }
    inflight.track(res);
    // While draining, keep answering requests that arrive on open connections, but close them afterwards.
    if (draining) res.shouldKeepAlive = false;
    handle(req, res);
  };

  const closeAll = async (): Promise<void> => {
    const all = [...servers, ...(opsServer ? [opsServer] : [])];
    servers.length = 0;
    opsServer = undefined;
    await Promise.all(all.map(closeServer));
  };

  const start = async (): Promise<void> => {
    try {
      await listenApi(config, onRequest, log, servers, addresses);
      const ops = createServer(createOpsHandler({ metrics: deps.metrics, ready: () => ready && !draining }));
      opsAddress = await listenOrFail(ops, config.opsListen);
      opsServer = ops;
    } catch (err) {
      await closeAll();
      throw err;
    }
    ready = true;
    log.info(
      { listen: addresses.map(formatAddressInfo), ops: formatAddressInfo(opsAddress) },
      "proxy listening",
    );
  };

  const shutdown = async (timeoutMs = config.shutdownTimeoutMs): Promise<{ interrupted: number }> => {
    draining = true;
    for (const s of servers) {
      s.close();
      s.closeIdleConnections();
    }
    if (inflight.count > 0) {
      log.info({ inflight: inflight.count, timeoutMs }, "draining in-flight requests");
      await inflight.idle(timeoutMs);
    }
    const interrupted = inflight.count;
    await closeAll();
    return { interrupted };
  };

  return {
    start,
    shutdown,
    get addresses() {
      return addresses;
    },
    get opsAddress() {
      return opsAddress;
    },
    get inflight() {
      return inflight.count;
    },
  };
}

/** The requests being served, and a wait until there are none. */
class InflightCounter {
  count = 0;
  #onIdle: (() => void) | undefined;

  /** Counts `res` until it closes. */
  track(res: ServerResponse): void {
    this.count++;
    res.once("close", () => {
      this.count--;
      if (this.count === 0) this.#onIdle?.();
    });
  }

  /** Resolves when no request is in flight, or after `timeoutMs`. */
  idle(timeoutMs: number): Promise<void> {
    return new Promise<void>(resolve => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * Binds one registry API server per address of `config.listen` into `servers`/`addresses`. A default `::1` on a
 * node without IPv6 loopback is skipped with a warning; any other failure rejects (the caller closes what is bound).
 */
async function listenApi(
  config: ProxyDeps["config"],
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  log: Logger,
  servers: Server[],
  addresses: AddressInfo[],
): Promise<void> {
  for (const address of config.listen) {
    const server = newServer(onRequest, config.clientIdleTimeoutMs, config.maxConnections);
    try {
      addresses.push(await listen(server, address));
      servers.push(server);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      if (config.listenIsDefault && MISSING_ADDRESS_CODES.has(code) && address.host === "::1") {
        log.warn(
          { address: formatAddress(address), code },
          "no IPv6 loopback on this node; listening on IPv4 only",
        );
        continue;
      }
      throw listenFailed(address, err);
    }
  }
}

/** {@link listen}, failing with `LISTEN_FAILED`. */
async function listenOrFail(server: Server, address: ListenAddress): Promise<AddressInfo> {
  try {
    return await listen(server, address);
  } catch (err) {
    throw listenFailed(address, err);
  }
}

function listenFailed(address: ListenAddress, err: unknown): ProxyError {
  const code = (err as NodeJS.ErrnoException).code || String(err);
  return new ProxyError("LISTEN_FAILED", `cannot listen on ${formatAddress(address)}: ${code}`, {
    cause: err,
  });
}

function newServer(
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  idleTimeoutMs: number,
  maxConnections: number,
): Server {
  const server = createServer({ noDelay: true, keepAliveTimeout: 5000, requestTimeout: 60_000 }, onRequest);
  // Node closes every connection accepted beyond this: idle keep-alive sockets cannot pile up without bound.
  server.maxConnections = maxConnections;
  // A client that reads nothing for this long (its socket stays unwritable) is dropped, releasing the upstream.
  server.timeout = idleTimeoutMs;
  return server;
}

function listen(server: Server, address: ListenAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(
      { port: address.port, ...(address.host === undefined ? {} : { host: address.host }) },
      () => {
        server.off("error", onError);
        resolve(server.address() as AddressInfo);
      },
    );
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise(resolve => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** `host:port`, with brackets for IPv6 and `*` for every interface. */
function formatAddress(address: ListenAddress): string {
  const host =
    address.host === undefined ? "*" : address.host.includes(":") ? `[${address.host}]` : address.host;
  return `${host}:${address.port}`;
}

function formatAddressInfo(info: AddressInfo | undefined): string {
  return info === undefined ? "" : formatAddress({ host: info.address, port: info.port });
}
