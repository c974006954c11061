// capabilities/shared/: configuration, keys, names and Pod shapes used by every folder.
/**
 * kuik's configuration, read once at startup from environment variables named after kuik v1's Helm values
 * (`cachedImagesExpiryDelay` → `KUIK_CACHED_IMAGES_EXPIRY_DELAY`, see {@link ENV}). {@link loadConfig} checks
 * everything and throws one {@link ConfigError} listing every problem, so a bad install fails at once, whole.
 *
 * Lists are a JSON array of strings (what Helm's `toJson` renders) or, for convenience, comma- or
 * newline-separated values. Regex lists are never split on commas (`a{1,3}` is one regex): use JSON or newlines.
 */

/** Environment variable of each setting. */
export const ENV = {
  proxyPort: "KUIK_PROXY_HOST_PORT",
  namespace: "KUIK_NAMESPACE",
  expiryDelayDays: "KUIK_CACHED_IMAGES_EXPIRY_DELAY",
  ignoredNamespaces: "KUIK_WEBHOOK_IGNORED_NAMESPACES",
  ignoredImages: "KUIK_WEBHOOK_IGNORED_IMAGES",
  acceptedImages: "KUIK_WEBHOOK_ACCEPTED_IMAGES",
  ignorePullPolicyAlways: "KUIK_WEBHOOK_IGNORE_PULL_POLICY_ALWAYS",
  rewriteLoopbackRegistries: "KUIK_REWRITE_LOOPBACK_REGISTRIES",
  architectures: "KUIK_ARCHITECTURES",
  insecureRegistries: "KUIK_INSECURE_REGISTRIES",
  rootCertificateAuthorities: "KUIK_ROOT_CERTIFICATE_AUTHORITIES",
  registryEndpoint: "KUIK_REGISTRY_ENDPOINT",
  maxConcurrentCachedImageReconciles: "KUIK_MAX_CONCURRENT_CACHED_IMAGE_RECONCILES",
  bootstrap: "KUIK_BOOTSTRAP",
  peprFastClone: "KUIK_PEPR_FAST_CLONE",
  proxyGate: "KUIK_PROXY_GATE",
  allowedOrigins: "KUIK_ALLOWED_ORIGINS",
} as const;

/** kuik's validated configuration. */
export interface KuikConfig {
  /** Port of the node-local proxy, used in rewritten images `localhost:<port>/…` (Helm `proxy.hostPort`). */
  proxyPort: number;
  /** Namespace kuik runs in; its pods are never rewritten. */
  namespace: string;
  /** Days an unused CachedImage is kept (Helm `cachedImagesExpiryDelay`); fractions allowed. */
  expiryDelayDays: number;
  /** {@link expiryDelayDays} in milliseconds. */
  expiryDelayMs: number;
  /** Namespaces whose pods are never rewritten, besides {@link ALWAYS_IGNORED_NAMESPACES} and {@link namespace}. */
  ignoredNamespaces: string[];
  /** Regexes (source text) of images never rewritten (Helm `controllers.webhook.ignoredImages`). */
  ignoredImages: string[];
  /** Regexes (source text); when non-empty, only matching images are rewritten. */
  acceptedImages: string[];
  /** Leave images pulled with `imagePullPolicy: Always` to their origin (default true, see rewrite.ts). */
  ignorePullPolicyAlways: boolean;
  /**
   * Rewrite images of `127.0.0.0/8` registries. Off by default: from a proxy pod, the node's loopback registry is
   * out of reach (hostPort networking). Turn it on when the proxy shares the registry's network namespace
   * (`proxy.hostNetwork`, or the local cluster of `npm run up`).
   */
  rewriteLoopbackRegistries: boolean;
  /** Architectures whose images are copied into the cache (Helm `architectures`); empty means all. */
  architectures: string[];
  /** Registries (`host[:port]`, lower-cased) whose TLS certificate is not verified. */
  insecureRegistries: string[];
  /** Absolute paths of PEM files of extra root CAs trusted for registries. */
  rootCertificateAuthorities: string[];
  /** Cache registry `host:port`. */
  registryEndpoint: string;
  /** Cache registry base URL (`http://<registryEndpoint>` unless a scheme was given). */
  registryUrl: string;
  /** Maximum concurrent image copies (Helm `controllers.maxConcurrentCachedImageReconciles`). */
  maxConcurrentCachedImageReconciles: number;
  /**
   * The watcher applies kuik's CRDs, the kuik-system data plane and the webhook's selector at start (default false;
   * package.json sets it for the `npx pepr deploy` install: capabilities/bootstrap).
   */
  bootstrap: boolean;
  /** Swap Pepr's per-request `ramda.clone` for `structuredClone` on JSON data (default true: pepr-runtime.ts). */
  peprFastClone: boolean;
  /**
   * Rewrite Pods only while the proxy DaemonSet serves, and rescue Pods stuck on it (default true;
   * capabilities/proxy-gate). Turn it off only when the proxy runs outside Kubernetes (a node service).
   */
  proxyGate: boolean;
  /**
   * Origins the watcher may copy from although their address is loopback, private, link-local… (CIDRs, addresses or
   * `host[:port]` names; registry-client/src/address-policy.ts): in-cluster and test registries. Every other such
   * address is refused, so a Pod cannot make the watcher fetch from the cluster's or the node's network.
   */
  allowedOrigins: string[];
}

/** Thrown by {@link loadConfig} and `compilePolicy`: every problem found, not just the first. */
export class ConfigError extends Error {
  readonly code = "INVALID_CONFIG";
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid kuik configuration:\n${problems.map(p => `- ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Namespaces whose pods are never rewritten, besides kuik's own: the control plane's, and Pepr's (the admission
 * controller must never depend on the proxy it serves, or a restart would deadlock).
 */
export const ALWAYS_IGNORED_NAMESPACES: readonly string[] = ["kube-system", "pepr-system"];

const DEFAULT_PROXY_PORT = 7439;
const DEFAULT_NAMESPACE = "kuik-system";
const DEFAULT_EXPIRY_DELAY_DAYS = 30;
/** Every platform of an index: the index is stored byte-exact, so nodes of any architecture can use it. */
const DEFAULT_ARCHITECTURES: string[] = [];
/** The cache registry Service of deploy/, qualified: the watcher runs in pepr-system, not in kuik's namespace. */
const defaultRegistryEndpoint = (namespace: string): string =>
  `kube-image-keeper-registry.${namespace}.svc:5000`;
const DEFAULT_MAX_CONCURRENT = 3;
const DAY_MS = 24 * 60 * 60 * 1000;

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ARCH_RE = /^[a-z0-9]+$/;
const HOST_PORT_RE =
  /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*|\[[0-9a-f:]+\])(?::\d{1,5})?$/;
// Go's inline flags at the start of a regex, which JavaScript only knows as RegExp flags.
const GO_FLAGS_RE = /^\(\?([ims]+)\)/;

/**
 * Compiles an image regex the way kuik v1 (Go RE2) users write them: unanchored, a leading `(?i)`/`(?s)`/`(?m)`
 * becomes a RegExp flag, and no `u` flag so that v1's escapes such as `\:` keep working.
 *
 * @throws SyntaxError when the regex is invalid.
 */
export function compileImageRegex(source: string): RegExp {
  const flags = GO_FLAGS_RE.exec(source);
  if (flags === null) return new RegExp(source);
  return new RegExp(source.slice(flags[0].length), [...new Set(flags[1])].join(""));
}

/**
 * Reads and validates kuik's configuration.
 *
 * @param env - usually `process.env`.
 * @throws {@link ConfigError} listing every invalid or inconsistent variable.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): KuikConfig {
  const r = new Reader(env);
  const expiryDelayDays = r.number(ENV.expiryDelayDays, DEFAULT_EXPIRY_DELAY_DAYS, {
    min: 0,
    integer: false,
  });
  const namespace = r.matching(ENV.namespace, DEFAULT_NAMESPACE, DNS_LABEL_RE, "a namespace name");
  const endpoint = r.endpoint(ENV.registryEndpoint, defaultRegistryEndpoint(namespace));
  const config: KuikConfig = {
    proxyPort: r.number(ENV.proxyPort, DEFAULT_PROXY_PORT, { min: 1, max: 65535, integer: true }),
    namespace,
    expiryDelayDays,
    expiryDelayMs: expiryDelayDays * DAY_MS,
    ignoredNamespaces: r.list(ENV.ignoredNamespaces, [], { re: DNS_LABEL_RE, what: "a namespace name" }),
    ignoredImages: r.regexes(ENV.ignoredImages),
    acceptedImages: r.regexes(ENV.acceptedImages),
    ignorePullPolicyAlways: r.boolean(ENV.ignorePullPolicyAlways, true),
    rewriteLoopbackRegistries: r.boolean(ENV.rewriteLoopbackRegistries, false),
    architectures: r.list(ENV.architectures, DEFAULT_ARCHITECTURES, { re: ARCH_RE, what: "an architecture" }),
    insecureRegistries: r.list(ENV.insecureRegistries, [], {
      re: HOST_PORT_RE,
      what: "a host[:port]",
      map: toHost,
    }),
    rootCertificateAuthorities: r.list(ENV.rootCertificateAuthorities, [], {
      re: /^\//,
      what: "an absolute path",
    }),
    registryEndpoint: endpoint.hostPort,
    registryUrl: endpoint.url,
    maxConcurrentCachedImageReconciles: r.number(
      ENV.maxConcurrentCachedImageReconciles,
      DEFAULT_MAX_CONCURRENT,
      {
        min: 1,
        max: 1000,
        integer: true,
      },
    ),
    bootstrap: r.boolean(ENV.bootstrap, false),
    peprFastClone: r.boolean(ENV.peprFastClone, true),
    proxyGate: r.boolean(ENV.proxyGate, true),
    allowedOrigins: r.list(ENV.allowedOrigins, [], {
      re: /^[0-9a-z.:[\]/-]+$/i,
      what: "a CIDR, an address or a host[:port]",
    }),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/**
 * `https://Reg.example:5000/` → `reg.example:5000`: v1 compared the bare `host[:port]` only, so README-style URLs
 * never matched (docs/v1-differences.md, B8); both spellings are accepted now.
 */
function toHost(value: string): string {
  return value
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, "")
    .replace(/\/+$/, "")
    .toLowerCase();
}

/** Reads variables and collects problems instead of throwing at the first one. */
class Reader {
  readonly problems: string[] = [];

  constructor(private readonly env: Readonly<Record<string, string | undefined>>) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  }

  number(name: string, fallback: number, o: { min: number; max?: number; integer: boolean }): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    const max = o.max ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isFinite(n) || (o.integer && !Number.isInteger(n)) || n < o.min || n > max) {
      const kind = o.integer ? "an integer" : "a number";
      this.problems.push(`${name}=${JSON.stringify(raw)}: must be ${kind} between ${o.min} and ${max}`);
      return fallback;
    }
    return n;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.raw(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (["true", "1", "yes", "on"].includes(raw)) return true;
    if (["false", "0", "no", "off"].includes(raw)) return false;
    this.problems.push(`${name}=${JSON.stringify(raw)}: must be true or false`);
    return fallback;
  }

  matching(name: string, fallback: string, re: RegExp, what: string): string {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (re.test(raw)) return raw;
    this.problems.push(`${name}=${JSON.stringify(raw)}: must be ${what}`);
    return fallback;
  }

  /** A list: JSON array, or comma/newline-separated unless `splitCommas` is false. */
  private items(name: string, splitCommas: boolean): string[] | undefined {
    const raw = this.raw(name);
    if (raw === undefined) return undefined;
    if (!raw.startsWith("[")) {
      return raw
        .split(splitCommas ? /[,\n]/ : /\n/)
        .map(s => s.trim())
        .filter(s => s !== "");
    }
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed) && parsed.every(item => typeof item === "string")) return parsed as string[];
    } catch {
      // reported below
    }
    this.problems.push(`${name}: must be a JSON array of strings or a comma-separated list`);
    return undefined;
  }

  list(
    name: string,
    fallback: string[],
    o: { re: RegExp; what: string; map?: (value: string) => string },
  ): string[] {
    const items = this.items(name, true);
    if (items === undefined) return fallback;
    const values = items.map(item => (o.map ? o.map(item) : item));
    for (const value of values) {
      if (!o.re.test(value)) this.problems.push(`${name}: ${JSON.stringify(value)} is not ${o.what}`);
    }
    return [...new Set(values)];
  }

  regexes(name: string): string[] {
    const items = this.items(name, false) ?? [];
    for (const source of items) {
      try {
        compileImageRegex(source);
      } catch (e) {
        this.problems.push(`${name}: invalid regex ${JSON.stringify(source)}: ${(e as Error).message}`);
      }
    }
    return items;
  }

  endpoint(name: string, fallback: string): { hostPort: string; url: string } {
    const raw = this.raw(name) ?? fallback;
    const scheme = /^(https?):\/\//i.exec(raw);
    const hostPort = (scheme ? raw.slice(scheme[0].length) : raw).replace(/\/+$/, "").toLowerCase();
    if (!HOST_PORT_RE.test(hostPort)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: must be host[:port] or http(s)://host[:port]`);
      return { hostPort: fallback, url: `http://${fallback}` };
    }
    return { hostPort, url: `${scheme?.[1]?.toLowerCase() ?? "http"}://${hostPort}` };
  }
}
