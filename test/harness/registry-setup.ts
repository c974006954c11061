/**
 * The kind-specific parts of a harness registry's configuration: htpasswd basic auth, bearer-token auth (a Node
 * token issuer, optionally fronting the registry on the same port), and pull-through (proxy) settings.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import {
  Agent,
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { join } from "node:path";
import { LOOPBACK } from "./net";
import { createSigningCert, type HarnessPki } from "./pki";
import type { OriginTokenOptions, StartedRegistry, UpstreamSpec } from "./registries";
import { defaultAcl, TokenIssuer } from "./token-issuer";
import { findTool, type RegistryBinaryInfo } from "./tools";

/** Write an htpasswd file (bcrypt cost 4: the cost is paid on every request) and return `auth:` config. */
export function htpasswdAuth(dir: string, users: Record<string, string>): Record<string, unknown> {
  const htpasswd = findTool("htpasswd");
  const lines = Object.entries(users).map(([user, password]) => {
    const r = spawnSync(htpasswd, ["-nbB", "-C", "4", user, password], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
    return r.stdout.trim();
  });
  const path = join(dir, "htpasswd");
  writeFileSync(path, `${lines.join("\n")}\n`, { mode: 0o600 });
  return { htpasswd: { realm: "kuik-harness", path } };
}

export function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : 0);
    });
  });
}

export interface TokenSetup {
  issuer: TokenIssuer;
  realm: string;
  /** Servers to close on stop. */
  servers: Server[];
  /** `auth:` config for the registry. */
  auth: Record<string, unknown>;
  /** Same-host mode: the public port (the Node front); the registry must then set http.host to the public URL. */
  frontPort?: number;
}

export interface TokenSetupArgs {
  opts: OriginTokenOptions;
  dir: string;
  pki: HarnessPki;
  binary: RegistryBinaryInfo;
  tls: boolean;
  username: string;
  users: Record<string, string>;
  /** Port the registry process listens on (read when proxying; may change before the first request). */
  internalPort: () => number;
}

/** Create the issuer (and its signing cert), start its server (or the same-host front), build `auth.token`. */
export async function setupTokenAuth(a: TokenSetupArgs): Promise<TokenSetup> {
  const o = a.opts;
  const signing = await createSigningCert(join(a.dir, "token"), o.signingAlg ?? "ES256");
  const service = o.service ?? "kuik-harness-registry";
  const issuerName = o.issuer ?? "kuik-harness-token-issuer";
  const others = Object.keys(a.users).filter(u => u !== a.username);
  const issuer = new TokenIssuer({
    service,
    issuer: issuerName,
    users: a.users,
    acl: o.acl ?? defaultAcl(a.username, others, o.publicRepos),
    signingKey: signing.keyFile,
    signingCert: signing.certFile,
    keyHint: o.keyHint ?? "x5c",
    kidFormat: o.kidFormat ?? (a.binary.major >= 3 ? "jwk-thumbprint" : "libtrust"),
    ...(o.tokenTtlSeconds !== undefined ? { ttlSeconds: o.tokenTtlSeconds } : {}),
    ...(o.allowPost !== undefined ? { allowPost: o.allowPost } : {}),
  });
  const scheme = a.tls ? "https" : "http";
  const same = o.realm === "same-host";
  const handler = same ? frontHandler(issuer, a.internalPort, scheme) : issuer.handle;
  const tlsOpts = { cert: readFileSync(a.pki.serverCert), key: readFileSync(a.pki.serverKey) };
  const server = a.tls ? createHttpsServer(tlsOpts, handler) : createHttpServer(handler);
  const port = await listen(server);
  const realm = `${scheme}://${LOOPBACK}:${port}/token`;
  return {
    issuer,
    realm,
    servers: [server],
    auth: { token: { realm, service, issuer: issuerName, rootcertbundle: signing.certFile } },
    ...(same ? { frontPort: port } : {}),
  };
}

/** The same-host front: /token* goes to the issuer, everything else to the registry's internal plain-HTTP port. */
function frontHandler(
  issuer: TokenIssuer,
  internalPort: () => number,
  scheme: string,
): (req: IncomingMessage, res: ServerResponse) => void {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  return (req, res) => {
    if ((req.url ?? "").startsWith("/token")) return issuer.handle(req, res);
    // the registry builds absolute Location URLs from X-Forwarded-Proto (it only sees plain HTTP)
    const headers = { ...req.headers, "x-forwarded-proto": scheme };
    const up = httpRequest(
      { host: LOOPBACK, port: internalPort(), method: req.method, path: req.url, headers, agent },
      ur => {
        res.writeHead(ur.statusCode ?? 502, ur.rawHeaders);
        ur.pipe(res);
      },
    );
    up.on("error", e => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end(String(e));
      else res.destroy();
    });
    req.pipe(up);
  };
}

/** Normalize a pull-through upstream (a started registry, a fault proxy, or a plain spec). */
export function upstreamSpec(u: StartedRegistry | UpstreamSpec): UpstreamSpec {
  if (!("kind" in u)) return u;
  return {
    url: u.url,
    ...(u.username !== undefined ? { username: u.username } : {}),
    ...(u.password !== undefined ? { password: u.password } : {}),
    ...(u.caFile ? { caFile: u.caFile } : {}),
    tokenAuth: u.kind === "origin-token",
  };
}

/**
 * `proxy:` config and extra environment for a pull-through registry. Throws when the combination cannot work:
 * distribution >= 3.1 only sends upstream credentials to a token realm on the upstream's own host:port (or
 * registrable domain, which IP literals do not have).
 */
export function pullThroughConfig(
  binary: RegistryBinaryInfo,
  upstream: StartedRegistry | UpstreamSpec,
  ttl: string | undefined,
): { proxy: Record<string, unknown>; env: Record<string, string>; spec: UpstreamSpec } {
  const up = upstreamSpec(upstream);
  const v31 = binary.major > 3 || (binary.major === 3 && binary.minor >= 1);
  if (
    "kind" in upstream &&
    upstream.realm &&
    new URL(upstream.realm).host !== new URL(upstream.url).host &&
    v31
  ) {
    throw new Error(
      `distribution ${binary.version} in proxy mode only sends credentials to a token realm on the upstream's ` +
        `own host:port; start the origin-token upstream with { realm: "same-host" }`,
    );
  }
  const proxy: Record<string, unknown> = { remoteurl: up.url };
  if (up.username !== undefined) {
    if (binary.major < 3 && !up.tokenAuth) {
      // distribution 2.8 only answers *bearer* challenges with proxy.username/password; against a basic-auth
      // upstream it gets 401. Userinfo in the URL works (Go's client sends it as basic auth) but 2.8 logs it.
      const u = new URL(up.url);
      u.username = encodeURIComponent(up.username);
      u.password = encodeURIComponent(up.password ?? "");
      proxy.remoteurl = u.toString().replace(/\/$/, "");
    } else {
      proxy.username = up.username;
      proxy.password = up.password ?? "";
    }
  }
  if (ttl !== undefined) proxy.ttl = ttl;
  // Go on Linux: SSL_CERT_FILE replaces the system roots
  const env: Record<string, string> = up.caFile ? { SSL_CERT_FILE: up.caFile } : {};
  return { proxy, env, spec: up };
}
