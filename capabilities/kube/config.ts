/**
 * Where and how the watcher reaches the Kubernetes API: server, TLS material and credentials, read ONCE per process
 * from the same sources kubernetes-fluent-client uses (`KubeConfig.loadFromDefault()` of @kubernetes/client-node:
 * `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster service account). KFC 3.11.6 re-reads all of it (and
 * builds a new TLS agent) on every call; here it is loaded at start and only the service-account token file is
 * re-read, at most every {@link TOKEN_REFRESH_MS}, because bound tokens rotate (client-go does the same).
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { KubeConfig, type Cluster, type User } from "@kubernetes/client-node";

/** How often a token file is re-read at most (client-go's cached file token source uses one minute). */
export const TOKEN_REFRESH_MS = 60_000;

/** TLS settings of the connection to the API server. */
export interface KubeTls {
  /** PEM of the cluster CA; `undefined` trusts Node's default CAs. */
  ca?: Buffer;
  /** Client certificate and key (PEM), when the user authenticates with one. */
  cert?: Buffer;
  key?: Buffer;
  /** `false` with the kubeconfig's `insecure-skip-tls-verify: true`. */
  rejectUnauthorized: boolean;
  /** The kubeconfig's `tls-server-name`. */
  servername?: string;
}

/** Produces the `Authorization` header of a request (`undefined`: none). */
export type Credentials = () => Promise<string | undefined>;

/** Everything needed to talk to one API server. */
export interface KubeConnection {
  /** `https://host:port` of the API server. */
  origin: string;
  /** Path prefix of the server URL (`""` usually; a kubeconfig server may carry one behind a proxy). */
  basePath: string;
  tls: KubeTls;
  authorization: Credentials;
}

/** Options of {@link connectionFromKubeConfig}. */
export interface ConnectionOptions {
  /** Clock of the token-file refresh (tests advance it). */
  now?: () => number;
  refreshMs?: number;
}

/** A configuration problem found at start (no current cluster, unreadable CA…). */
export class KubeConfigError extends Error {
  readonly code = "KUBE_CONFIG_INVALID";

  constructor(message: string) {
    super(message);
    this.name = "KubeConfigError";
  }
}

/**
 * A token file read at most every `refreshMs`; concurrent callers share one read. When a re-read fails, the last
 * token is kept (the file is replaced atomically by the kubelet, so a failure is transient); the first read's
 * failure rejects.
 */
export function tokenFileCredentials(path: string, options: ConnectionOptions = {}): Credentials {
  const now = options.now ?? Date.now;
  const refreshMs = options.refreshMs ?? TOKEN_REFRESH_MS;
  let token: string | undefined;
  let readAt = -Infinity;
  let reading: Promise<void> | undefined;
  const read = async (): Promise<void> => {
    try {
      token = (await readFile(path, "utf8")).trim();
      readAt = now();
    } catch (err) {
      if (token === undefined)
        throw new KubeConfigError(`cannot read the token file ${path}: ${String(err)}`);
    } finally {
      reading = undefined;
    }
  };
  return async () => {
    if (token === undefined || now() - readAt >= refreshMs) await (reading ??= read());
    return `Bearer ${token ?? ""}`;
  };
}

/** A file or inline (base64) PEM of a kubeconfig entry, read now (once, at start). */
function pem(what: string, file?: string, data?: string): Buffer | undefined {
  if (data) return Buffer.from(data, "base64");
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new KubeConfigError(`cannot read the ${what} ${file}: ${String(err)}`);
  }
}

/** The Authorization header source of a kubeconfig user. */
function credentialsOf(kc: KubeConfig, user: User | null, options: ConnectionOptions): Credentials {
  if (user?.token) {
    const header = `Bearer ${user.token}`;
    return () => Promise.resolve(header);
  }
  const tokenFile = (user?.authProvider as { name?: string; config?: { tokenFile?: string } } | undefined)
    ?.config?.tokenFile;
  if (tokenFile) return tokenFileCredentials(tokenFile, options);
  if (user?.username) {
    const header = `Basic ${Buffer.from(`${user.username}:${user.password ?? ""}`).toString("base64")}`;
    return () => Promise.resolve(header);
  }
  if (user?.exec || user?.authProvider) {
    // exec plugins, OIDC…: client-node's authenticators cache their own credentials; ask it per request (local
    // development only: in a cluster the service account's token file is used).
    return async () => {
      const opts: { headers: Record<string, string> } = { headers: {} };
      await kc.applyToHTTPSOptions(opts);
      return opts.headers.Authorization;
    };
  }
  return () => Promise.resolve(undefined);
}

/**
 * The {@link KubeConnection} of `kc`'s current context; reads the CA and client certificate files now.
 *
 * @throws KubeConfigError when there is no current cluster, its URL is invalid or a file cannot be read.
 */
export function connectionFromKubeConfig(kc: KubeConfig, options: ConnectionOptions = {}): KubeConnection {
  const cluster: Cluster | null = kc.getCurrentCluster();
  if (!cluster) throw new KubeConfigError("no current cluster in the Kubernetes configuration");
  const user = kc.getCurrentUser();
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    throw new KubeConfigError(`invalid API server URL ${JSON.stringify(cluster.server)}`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && cluster.skipTLSVerify)) {
    // client-node refuses plain HTTP unless TLS checks are off explicitly; so do we.
    throw new KubeConfigError(`${cluster.server}: plain HTTP needs insecure-skip-tls-verify`);
  }
  const tls: KubeTls = { rejectUnauthorized: !cluster.skipTLSVerify };
  const ca = pem("cluster CA", cluster.caFile, cluster.caData);
  const cert = pem("client certificate", user?.certFile, user?.certData);
  const key = pem("client key", user?.keyFile, user?.keyData);
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  if (cluster.tlsServerName) tls.servername = cluster.tlsServerName;
  return {
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ""),
    tls,
    authorization: credentialsOf(kc, user, options),
  };
}

/**
 * The process's connection, from the default sources (as KFC finds them).
 *
 * @throws KubeConfigError (see {@link connectionFromKubeConfig}).
 */
export function loadKubeConnection(options: ConnectionOptions = {}): KubeConnection {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return connectionFromKubeConfig(kc, options);
}
