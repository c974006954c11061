/**
 * Real CNCF distribution registries on free loopback ports, each in its own temp dir:
 *   cache        plain HTTP, delete enabled (what kuik copies images into);
 *   origin-basic HTTPS (harness CA) + htpasswd basic auth (bcrypt cost 4);
 *   origin-token HTTPS + Docker-Hub-style bearer tokens from a Node token issuer (token-issuer.ts);
 *   pull-through distribution's proxy mode in front of an upstream (benchmark peer).
 * Binary: $KUIK_REGISTRY_BIN, else ~/.cache/kuik/bin/registry (v3, scripts/build-components.sh), else Debian's
 * docker-registry (2.8). Processes run in their own process group; stop() kills the group and awaits the exit.
 * Leftovers die with the Node process: a process-exit hook SIGKILLs them and, if Node itself is killed,
 * `setpriv --pdeathsig KILL` does. Config is written as JSON (valid YAML) to `<dir>/config.yml`.
 */
import type { SigningAlg } from "./pki";
import { RegistryProcess } from "./registry-process";
import type { KidFormat, TokenAclRule, TokenIssuer } from "./token-issuer";
import type { RegistryBinaryInfo } from "./tools";

export type RegistryKind = "cache" | "origin-basic" | "origin-token" | "pull-through";

export interface RegistryOptions {
  /** Label used in the temp dir name and the log's service field; default the kind. */
  name?: string;
  /** Serve HTTPS with the harness CA. Default: true for origins, false for cache and pull-through. */
  tls?: boolean;
  /** Storage root to use instead of `<dir>/data` (kept on stop; lets a test pre-seed or share storage). */
  dataDir?: string;
  /** storage.delete.enabled; default true. */
  deleteEnabled?: boolean;
  /** Registry log level; default $KUIK_REGISTRY_LOG_LEVEL or "info". */
  logLevel?: "error" | "warn" | "info" | "debug";
  /** Registry binary; default {@link findTool}("registry"). */
  binary?: string;
  /** Extra environment for the registry process. */
  env?: Record<string, string>;
  /** Last word on the generated config (plain object written as JSON, which YAML parsers accept). */
  configPatch?: (config: RegistryConfig) => void;
  /** Readiness timeout; default 30 s. */
  readyTimeoutMs?: number;
  /** Address to listen on; default 127.0.0.1 (net.ts NODE_IP: an origin the local node's Pods can reach). */
  host?: string;
}

export interface AuthOptions {
  /** Default "kuik" / "kuik-secret". */
  username?: string;
  password?: string;
  /** Further accounts, user -> password (origin-token: pull-only under the default ACL). */
  users?: Record<string, string>;
}

export interface OriginTokenOptions extends RegistryOptions, AuthOptions {
  /** Token auth `service` / `aud`; default "kuik-harness-registry". */
  service?: string;
  /** Token `iss`; default "kuik-harness-token-issuer". */
  issuer?: string;
  /** Repository patterns anybody (anonymous included) may pull, e.g. ["library/*", "public/*"]. */
  publicRepos?: string[];
  /** Full access rules; default {@link defaultAcl}(username, other users, publicRepos): the main user may do
   * everything, the other users may pull, anybody may pull `publicRepos`. */
  acl?: TokenAclRule[];
  tokenTtlSeconds?: number;
  signingAlg?: SigningAlg;
  /** JWS header key hint; default "x5c". */
  keyHint?: "x5c" | "kid" | "x5c+kid";
  /** kid flavour; default by registry major version (2: libtrust, 3: jwk-thumbprint). */
  kidFormat?: KidFormat;
  /** Answer OAuth2 POST /token; default true. */
  allowPost?: boolean;
  /**
   * "separate" (default): the issuer listens on its own port, like auth.docker.io vs registry-1.docker.io.
   * "same-host": a Node front on the registry's public port serves /token and proxies everything else to the
   * registry on an internal port. Needed behind a distribution >= 3.1 pull-through, which only sends upstream
   * credentials to a realm on the upstream's own host:port (or registrable domain, impossible with IP literals).
   */
  realm?: "separate" | "same-host";
}

export interface UpstreamSpec {
  url: string;
  username?: string;
  password?: string;
  caFile?: string;
  /** Whether the upstream uses bearer tokens (decides how distribution 2.x is given the credentials). */
  tokenAuth?: boolean;
}

export interface PullThroughOptions extends RegistryOptions {
  upstream: StartedRegistry | UpstreamSpec;
  /** proxy.ttl (distribution >= 3 only), e.g. "168h"; omitted = the binary's default. */
  ttl?: string;
}

export type StartOptions =
  | ({ kind: "cache" } & RegistryOptions)
  | ({ kind: "origin-basic" } & RegistryOptions & AuthOptions)
  | ({ kind: "origin-token" } & OriginTokenOptions)
  | ({ kind: "pull-through" } & PullThroughOptions);

/** The registry config (a subset of distribution's configuration.Configuration, as YAML-able data). */
export interface RegistryConfig {
  version: "0.1";
  log: Record<string, unknown>;
  storage: Record<string, unknown>;
  http: {
    addr: string;
    secret: string;
    headers?: Record<string, string[]>;
    tls?: { certificate: string; key: string };
  } & Record<string, unknown>;
  auth?: Record<string, unknown>;
  proxy?: Record<string, unknown>;
  health?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface StartedRegistry {
  readonly kind: RegistryKind;
  readonly name: string;
  /** "127.0.0.1:PORT": the registry host as clients write it in image references. */
  readonly host: string;
  readonly port: number;
  /** "http(s)://127.0.0.1:PORT". */
  readonly url: string;
  readonly tls: boolean;
  /** PEM of the CA to trust (TLS registries). */
  readonly caFile?: string;
  /** Directory holding ca.crt for this host (skopeo --*-cert-dir; docker certs.d/<host>). */
  readonly certDir?: string;
  readonly username?: string;
  readonly password?: string;
  /** All accounts (origins). */
  readonly users?: Readonly<Record<string, string>>;
  /** This instance's temp dir (config, logs, data unless dataDir was given). */
  readonly dir: string;
  /** storage.filesystem.rootdirectory. */
  readonly dataDir: string;
  readonly logFile: string;
  readonly configFile: string;
  readonly binary: RegistryBinaryInfo;
  /** origin-token: the issuer (request log, counters, fault injection) and its realm URL. */
  readonly tokenIssuer?: TokenIssuer;
  readonly realm?: string;
  /** pull-through: what it proxies. */
  readonly upstream?: UpstreamSpec;
  /** "user:pass" or undefined. */
  readonly creds?: string;
  /** PID of the registry process while it runs. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Stop (SIGTERM, then SIGKILL after 10 s), await the exit, close the issuer, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Fault injection: signal the registry's process group now (default SIGKILL); does not wait. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the current registry process has exited. */
  exited(): Promise<void>;
  /** (Re)start the registry process on the same port and storage; waits until /v2/ answers. */
  restart(): Promise<void>;
  /** Path of a blob's data file in filesystem storage. */
  blobFile(digest: string): string;
  /** The registry log so far. */
  readLog(): string;
}

/** Start a registry of the given kind; see {@link StartOptions}. Always `await stop()` it (afterAll). */
export async function startRegistry(opts: StartOptions): Promise<StartedRegistry> {
  const r = new RegistryProcess(opts);
  try {
    await r.init();
    await r.startProcess(false);
  } catch (e) {
    await r.stop().catch(() => undefined);
    throw e;
  }
  return r;
}

export function startCache(opts: RegistryOptions = {}): Promise<StartedRegistry> {
  return startRegistry({ kind: "cache", ...opts });
}

export function startOriginBasic(opts: RegistryOptions & AuthOptions = {}): Promise<StartedRegistry> {
  return startRegistry({ kind: "origin-basic", ...opts });
}

export function startOriginToken(opts: OriginTokenOptions = {}): Promise<StartedRegistry> {
  return startRegistry({ kind: "origin-token", ...opts });
}

export function startPullThrough(opts: PullThroughOptions): Promise<StartedRegistry> {
  return startRegistry({ kind: "pull-through", ...opts });
}

/** Stop several registries (ignores undefined, for afterAll with partially started fixtures). */
export async function stopAll(...regs: Array<{ stop(): Promise<void> } | undefined>): Promise<void> {
  await Promise.all(regs.map(r => r?.stop()));
}
