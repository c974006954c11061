/**
 * Configuration from flags and environment. Every flag `--foo-bar` has the environment twin `KUIK_PROXY_FOO_BAR`
 * (lists comma-separated); a flag wins over its variable. Parsing is pure: files named here (CAs, credentials) are
 * read by main.ts. Every problem is reported at once in one `CONFIG_INVALID` error.
 */
import { parseArgs } from "node:util";
import { parseAllowEntry } from "../../registry-client/src/address-policy";
import { ProxyError } from "./errors";
import { envName, OPTIONS, type OptionSpec } from "./flags";

/** A `host:port` to listen on; `host` undefined means every interface. */
export interface ListenAddress {
  host: string | undefined;
  port: number;
}

/** Timeouts of one upstream, in ms. */
export interface UpstreamTimeouts {
  connectMs: number;
  headersMs: number;
  /** Longest silence between two body chunks (never the whole transfer). */
  bodyMs: number;
}

/** The proxy's whole configuration. */
export interface ProxyConfig {
  listen: ListenAddress[];
  /** True when `listen` is the built-in default: a missing IPv6 loopback is then tolerated. */
  listenIsDefault: boolean;
  opsListen: ListenAddress;
  /** Base URL of the cache registry, e.g. `http://kuik-registry.kuik-system.svc:5000`. */
  cacheRegistry: URL;
  cacheTimeouts: UpstreamTimeouts;
  breaker: { failureThreshold: number; cooldownMs: number; maxCooldownMs: number };
  originTimeouts: UpstreamTimeouts;
  /** Attempts per origin request before the first byte (1 = no retry). */
  originAttempts: number;
  credentialsFile: string | undefined;
  credentialsPollMs: number;
  /** `host[:port]` of registries reached without TLS verification (plain HTTP when they do not speak TLS). */
  insecureRegistries: string[];
  /**
   * CIDRs and `host[:port]` names of origins allowed on special-purpose addresses (loopback, private, link-local…),
   * which are refused otherwise (registry-client's AddressPolicy). The cache registry is always allowed.
   */
  allowedOrigins: string[];
  /** Requests served at once; beyond, 503 with Retry-After. */
  maxConcurrentRequests: number;
  /** Client connections at once; beyond, new connections are closed. */
  maxConnections: number;
  /** PEM files of CAs trusted for every origin. */
  rootCaFiles: string[];
  /** PEM files of CAs trusted for one origin, by `host[:port]`. */
  registryCaFiles: Record<string, string[]>;
  shutdownTimeoutMs: number;
  clientIdleTimeoutMs: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
}

/** What the command line asks for. */
export type ParsedCommand =
  | { action: "run"; config: ProxyConfig }
  | { action: "help" }
  | { action: "version" };

const LOG_LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace"]);
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const HOST_PORT_RE = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/;
const REGISTRY_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;

/** Parses `500ms`, `2s`, `1.5m`, `1h` into ms. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_RE.exec(text.trim());
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  return Math.round(Number(match[1]) * (UNIT_MS[match[2]] ?? 0));
}

/** Parses `host:port`, `[::1]:port` or `:port` (every interface). */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const match = HOST_PORT_RE.exec(text.trim());
  if (!match?.[3]) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  const host = match[1] ?? match[2];
  return { host: host === "" || host === undefined ? undefined : host, port };
}

/** `host[:port]` of a registry given as written or as a URL (`https://host:5000/`), lower-cased. */
export function normaliseRegistryHost(text: string): string | undefined {
  const bare = text
    .trim()
    .replace(/^https?:\/\//i, "")
    .replace(/\/+$/, "")
    .toLowerCase();
  return REGISTRY_RE.test(bare) ? bare : undefined;
}

/**
 * Parses argv (without the node and script entries) and the environment.
 *
 * @throws {@link ProxyError} `CONFIG_INVALID` listing every problem, one per line.
 */
export function parseCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ParsedCommand {
  const problems: string[] = [];
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
    version: { type: "boolean" },
  };
  for (const o of OPTIONS)
    options[o.flag] = { type: "string", ...(o.kind === "list" ? { multiple: true } : {}) };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined> = {};
  try {
    values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ProxyError("CONFIG_INVALID", err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) return { action: "help" };
  if (values.version === true) return { action: "version" };
  const raw = (o: OptionSpec): string[] => {
    const flag = values[o.flag];
    if (Array.isArray(flag)) return flag.map(String);
    if (typeof flag === "string") return [flag];
    const fromEnv = env[envName(o.flag)];
    if (fromEnv !== undefined && fromEnv !== "") return o.kind === "list" ? splitList(fromEnv) : [fromEnv];
    return o.default === undefined ? [] : o.kind === "list" ? splitList(o.default) : [o.default];
  };
  const get = (flag: string): string[] => raw(OPTIONS.find(o => o.flag === flag) as OptionSpec);
  const reader = new Reader(problems, get);
  const config = readConfig(reader, values.listen !== undefined || env[envName("listen")] !== undefined);
  if (problems.length > 0) {
    throw new ProxyError("CONFIG_INVALID", `invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
  return { action: "run", config };
}

function readConfig(r: Reader, listenGiven: boolean): ProxyConfig {
  const config: ProxyConfig = {
    listen: r.list("listen", parseListenAddress, "expected host:port, [v6]:port or :port"),
    listenIsDefault: !listenGiven,
    opsListen: r.one("ops-listen", parseListenAddress, "expected host:port") ?? {
      host: "127.0.0.1",
      port: 8080,
    },
    cacheRegistry:
      r.one("cache-registry", parseRegistryUrl, "expected http(s)://host:port or host:port") ??
      new URL("http://invalid"),
    cacheTimeouts: r.timeouts("cache"),
    breaker: {
      failureThreshold: r.int("breaker-failures", 1),
      cooldownMs: r.duration("breaker-cooldown"),
      maxCooldownMs: r.duration("breaker-max-cooldown"),
    },
    originTimeouts: r.timeouts("origin"),
    originAttempts: r.int("origin-attempts", 1),
    credentialsFile: r.get("credentials-file")[0],
    credentialsPollMs: r.duration("credentials-poll-interval"),
    insecureRegistries: r.list("insecure-registry", normaliseRegistryHost, "expected host[:port]"),
    allowedOrigins: r.list(
      "allowed-origin",
      v => (parseAllowEntry(v) === undefined ? undefined : v.trim()),
      "expected a CIDR (10.0.0.0/8, fd00::/8), an address or host[:port]",
    ),
    maxConcurrentRequests: r.int("max-concurrent-requests", 1),
    maxConnections: r.int("max-connections", 1),
    rootCaFiles: r.get("root-ca"),
    registryCaFiles: r.registryCas(),
    shutdownTimeoutMs: r.duration("shutdown-timeout"),
    clientIdleTimeoutMs: r.duration("client-idle-timeout"),
    logLevel:
      r.one(
        "log-level",
        v => (LOG_LEVELS.has(v) ? (v as ProxyConfig["logLevel"]) : undefined),
        "unknown level",
      ) ?? "info",
  };
  if (r.get("cache-registry").length === 0)
    r.problem(`--cache-registry (${envName("cache-registry")}) is required`);
  if (r.get("listen").length === 0) r.problem("--listen: at least one address is required");
  return config;
}

/** Typed access to raw values, collecting problems instead of throwing. */
class Reader {
  constructor(
    readonly problems: string[],
    readonly get: (flag: string) => string[],
  ) {}

  problem(text: string): void {
    this.problems.push(text);
  }

  one<T>(flag: string, parse: (v: string) => T | undefined, expected: string): T | undefined {
    const value = this.get(flag)[0];
    if (value === undefined) return undefined;
    const parsed = parse(value);
    if (parsed === undefined) this.problem(`--${flag} ${JSON.stringify(value)}: ${expected}`);
    return parsed;
  }

  list<T>(flag: string, parse: (v: string) => T | undefined, expected: string): T[] {
    const out: T[] = [];
    for (const value of this.get(flag)) {
      const parsed = parse(value);
      if (parsed === undefined) this.problem(`--${flag} ${JSON.stringify(value)}: ${expected}`);
      else out.push(parsed);
    }
    return out;
  }

  duration(flag: string): number {
    return this.one(flag, parseDuration, "expected a duration such as 500ms, 2s, 1m") ?? 0;
  }

  int(flag: string, min: number): number {
    const parse = (v: string): number | undefined =>
      /^\d+$/.test(v) && Number(v) >= min ? Number(v) : undefined;
    return this.one(flag, parse, `expected an integer >= ${min}`) ?? min;
  }

  timeouts(prefix: "cache" | "origin"): UpstreamTimeouts {
    return {
      connectMs: this.duration(`${prefix}-connect-timeout`),
      headersMs: this.duration(`${prefix}-headers-timeout`),
      bodyMs: this.duration(`${prefix}-body-timeout`),
    };
  }

  registryCas(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const value of this.get("registry-ca")) {
      const eq = value.indexOf("=");
      const host = eq > 0 ? normaliseRegistryHost(value.slice(0, eq)) : undefined;
      const file = eq > 0 ? value.slice(eq + 1) : "";
      if (host === undefined || file === "")
        this.problem(`--registry-ca ${JSON.stringify(value)}: expected host[:port]=file`);
      else (out[host] ??= []).push(file);
    }
    return out;
  }
}

function splitList(text: string): string[] {
  return text
    .split(",")
    .map(s => s.trim())
    .filter(s => s !== "");
}

function parseRegistryUrl(text: string): URL | undefined {
  const withScheme = /^https?:\/\//i.test(text) ? text : `http://${text}`;
  try {
    const url = new URL(withScheme);
    return url.pathname === "/" && url.search === "" && url.username === "" ? new URL(url.origin) : undefined;
  } catch {
    return undefined;
  }
}
