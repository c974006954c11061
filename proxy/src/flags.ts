/**
 * The proxy's flags: one table from which `--help` is printed, config.ts reads values, and proxy/README.md is
 * checked (config.test.ts). Every flag `--foo-bar` has the environment twin `KUIK_PROXY_FOO_BAR`.
 */

/** How a flag's value is read. */
export type Kind = "string" | "list" | "duration" | "int" | "bool";

/** One flag: its kind, default and help line (README.md and --help are generated from this table). */
export interface OptionSpec {
  flag: string;
  kind: Kind;
  default?: string;
  help: string;
}

/** Every flag of the proxy. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    flag: "listen",
    kind: "list",
    default: "127.0.0.1:7439,[::1]:7439",
    help: "registry API addresses (repeatable)",
  },
  {
    flag: "ops-listen",
    kind: "string",
    default: "127.0.0.1:8080",
    help: "/healthz, /readyz and /metrics address",
  },
  { flag: "cache-registry", kind: "string", help: "cache registry URL or host:port (plain HTTP) — required" },
  { flag: "cache-connect-timeout", kind: "duration", default: "1s", help: "cache registry connect timeout" },
  {
    flag: "cache-headers-timeout",
    kind: "duration",
    default: "2s",
    help: "cache registry response-headers timeout",
  },
  { flag: "cache-body-timeout", kind: "duration", default: "30s", help: "cache registry idle body timeout" },
  {
    flag: "breaker-failures",
    kind: "int",
    default: "3",
    help: "consecutive cache failures that open the breaker",
  },
  {
    flag: "breaker-cooldown",
    kind: "duration",
    default: "5s",
    help: "wait before probing an open breaker's cache",
  },
  {
    flag: "breaker-max-cooldown",
    kind: "duration",
    default: "1m",
    help: "cap of the doubling probe interval",
  },
  {
    flag: "origin-connect-timeout",
    kind: "duration",
    default: "5s",
    help: "origin connect (TCP+TLS) timeout",
  },
  {
    flag: "origin-headers-timeout",
    kind: "duration",
    default: "30s",
    help: "origin response-headers timeout",
  },
  { flag: "origin-body-timeout", kind: "duration", default: "60s", help: "origin idle body timeout" },
  {
    flag: "origin-attempts",
    kind: "int",
    default: "3",
    help: "attempts per origin request, before the first byte",
  },
  {
    flag: "credentials-file",
    kind: "string",
    help: "dockerconfigjson file of origin credentials (reloaded)",
  },
  {
    flag: "credentials-poll-interval",
    kind: "duration",
    default: "10s",
    help: "stat fallback of the file watch",
  },
  { flag: "insecure-registry", kind: "list", help: "host[:port] without TLS verification (repeatable)" },
  {
    flag: "allowed-origin",
    kind: "list",
    help: "CIDR or host[:port] of origins on private addresses (repeatable)",
  },
  {
    flag: "max-concurrent-requests",
    kind: "int",
    default: "512",
    help: "requests served at once; 503 + Retry-After beyond",
  },
  { flag: "max-connections", kind: "int", default: "1024", help: "client connections; closed beyond" },
  { flag: "root-ca", kind: "list", help: "PEM file of a CA trusted for every origin (repeatable)" },
  { flag: "registry-ca", kind: "list", help: "host[:port]=PEM file, a CA for one origin (repeatable)" },
  {
    flag: "shutdown-timeout",
    kind: "duration",
    default: "25s",
    help: "SIGTERM: longest wait for in-flight pulls",
  },
  {
    flag: "client-idle-timeout",
    kind: "duration",
    default: "5m",
    help: "drop a client that reads nothing this long",
  },
  { flag: "log-level", kind: "string", default: "info", help: "fatal, error, warn, info, debug or trace" },
];

/** The environment variable of a flag: `--cache-registry` → `KUIK_PROXY_CACHE_REGISTRY`. */
export function envName(flag: string): string {
  return `KUIK_PROXY_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/** The `--help` text. */
export function usage(): string {
  const lines = OPTIONS.map(o => {
    const def = o.default === undefined ? "" : ` (default ${o.default})`;
    return `  --${o.flag.padEnd(26)} ${o.help}${def}\n  ${" ".repeat(28)} env ${envName(o.flag)}`;
  });
  return `usage: kuik-proxy --cache-registry URL [options]\n\n${lines.join("\n")}\n`;
}
