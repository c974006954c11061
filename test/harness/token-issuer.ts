/**
 * A Docker-Hub-style bearer token issuer for `auth.token` registries (distribution docs/spec/auth/token.md):
 *   GET  /token?service=S&scope=repository:NAME:pull,push[&scope=…][&offline_token=true]  (Basic auth optional)
 *   POST /token  (OAuth2 form: grant_type=password|refresh_token, service, scope, client_id, access_type)
 * Wrong credentials get 401; a scope the account may not have is silently dropped (the token then carries an
 * empty or partial `access`, and the registry answers 401 insufficient_scope), as Docker Hub does.
 * Tokens are compact JWS (ES256 or RS256) whose header carries `x5c` (the signing certificate, which is the
 * registry's rootcertbundle: works with distribution 2.x and 3.x) and/or a `kid` (2.x: libtrust key ID; 3.x: JWK
 * thumbprint). Every request is recorded so tests can count token round trips.
 */
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { keyId, signJwt, type AccessEntry, type JwtClaims, type KidFormat } from "./jwt";
import { authorize, type TokenAclRule } from "./token-acl";

export { authorize, defaultAcl, parseScope, type TokenAclRule } from "./token-acl";

export {
  decodeJwt,
  jwkThumbprint,
  libtrustKeyId,
  type AccessEntry,
  type JwtClaims,
  type KidFormat,
} from "./jwt";

export interface TokenIssuerOptions {
  /** `service` of the registry (token `aud`). */
  service: string;
  /** Token `iss`, must equal the registry's auth.token.issuer. */
  issuer: string;
  /** user -> password. */
  users: Record<string, string>;
  /** Access rules; see {@link defaultAcl}. */
  acl: TokenAclRule[];
  /** Signing key (EC P-256 -> ES256, RSA -> RS256): a KeyObject, or a PEM file path. */
  signingKey: KeyObject | string;
  /** Its certificate (the registry's rootcertbundle), PEM text or file path; required unless keyHint is "kid". */
  signingCert?: string;
  /** Which key hints to put in the JWS header. Default "x5c". */
  keyHint?: "x5c" | "kid" | "x5c+kid";
  /** kid flavour when keyHint includes kid: 2.x registries want libtrust, 3.x the JWK thumbprint. */
  kidFormat?: KidFormat;
  /** `expires_in` (and exp - iat); default 300. distribution adds 60 s of leeway when checking exp. */
  ttlSeconds?: number;
  /** Answer POST /token (OAuth2). Default true; false answers 405 as registries without OAuth2 do. */
  allowPost?: boolean;
}

export interface TokenRequestRecord {
  time: number;
  method: string;
  path: string;
  /** Authenticated account; "" when anonymous; undefined when authentication failed. */
  account: string | undefined;
  grantType?: string;
  scopes: string[];
  granted: AccessEntry[];
  status: number;
}

export interface TokenResponseBody {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
  /** POST only. */
  scope?: string;
}

/** The outcome of authenticating one token request. */
type Authn =
  | {
      ok: true;
      account: string;
      scopes: string[];
      service: string | null;
      refresh: boolean;
      grantType?: string;
    }
  | { ok: false; status: number; body: unknown };

const UNAUTHORIZED = (message: string): Authn => ({
  ok: false,
  status: 401,
  body: { errors: [{ code: "UNAUTHORIZED", message }], error: "invalid_grant" },
});

export class TokenIssuer {
  readonly options: Required<Omit<TokenIssuerOptions, "signingCert">>;
  /** Every request, in order. */
  readonly requests: TokenRequestRecord[] = [];
  private readonly key: KeyObject;
  private readonly x5c: string[] = [];
  private readonly kid: string;
  private readonly refreshTokens = new Map<string, string>();
  private failures: { status: number; remaining: number } | undefined;

  constructor(opts: TokenIssuerOptions) {
    this.options = { keyHint: "x5c", kidFormat: "libtrust", ttlSeconds: 300, allowPost: true, ...opts };
    this.key =
      typeof opts.signingKey === "string" ? createPrivateKey(readFileSync(opts.signingKey)) : opts.signingKey;
    if (opts.signingCert) {
      const pem = opts.signingCert.includes("-----BEGIN")
        ? opts.signingCert
        : readFileSync(opts.signingCert, "utf8");
      this.x5c = [new X509Certificate(pem).raw.toString("base64")];
    } else if (this.options.keyHint !== "kid") {
      throw new Error('TokenIssuer: signingCert is required unless keyHint is "kid"');
    }
    this.kid = keyId(createPublicKey(this.key), this.options.kidFormat);
  }

  /** Number of requests, optionally only those to `path` (e.g. "/token") and/or with `method`. */
  count(path?: string, method?: string): number {
    return this.requests.filter(r => (!path || r.path === path) && (!method || r.method === method)).length;
  }

  /** Requests per path, e.g. `{ "/token": 3 }`. */
  countsByPath(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.requests) out[r.path] = (out[r.path] ?? 0) + 1;
    return out;
  }

  resetCounters(): void {
    this.requests.length = 0;
  }

  /** Fault injection: answer the next `times` token requests with `status` (e.g. 500, 503). */
  failNext(status: number, times = 1): void {
    this.failures = { status, remaining: times };
  }

  /** Mint a token for `account` ("" = anonymous) with exactly the given (already authorized) access. */
  mint(account: string, access: AccessEntry[], ttlSeconds = this.options.ttlSeconds): string {
    const now = Math.floor(Date.now() / 1000);
    const header: Record<string, unknown> = {};
    if (this.options.keyHint !== "kid") header.x5c = this.x5c;
    if (this.options.keyHint !== "x5c") header.kid = this.kid;
    const claims: JwtClaims = {
      iss: this.options.issuer,
      sub: account,
      aud: this.options.service, // a string: distribution 2.x does not accept an array here
      exp: now + ttlSeconds,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(12).toString("hex"),
      access,
    };
    return signJwt(this.key, header, claims);
  }

  /** What `account` may do for the requested scopes (requested ∩ allowed; scopes with nothing left dropped). */
  authorize(account: string, scopes: string[]): AccessEntry[] {
    return authorize(this.options.acl, account, scopes);
  }

  /** node:http handler; mount it on any server (the realm's path is not checked). */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      try {
        this.answer(req, res, Buffer.concat(chunks).toString("utf8"));
      } catch (e) {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(String(e));
      }
    });
  };

  private checkPassword(user: string, pass: string): boolean {
    return (
      Object.prototype.hasOwnProperty.call(this.options.users, user) && this.options.users[user] === pass
    );
  }

  /** Docker token flow: GET with optional Basic credentials; no credentials = anonymous. */
  private authnGet(req: IncomingMessage, url: URL): Authn {
    const base = {
      scopes: url.searchParams.getAll("scope").flatMap(s => s.split(" ").filter(Boolean)),
      service: url.searchParams.get("service"),
      refresh: url.searchParams.get("offline_token") === "true",
    };
    const h = req.headers.authorization ?? "";
    if (!/^basic /i.test(h)) return { ok: true, account: "", ...base };
    const dec = Buffer.from(h.slice(6).trim(), "base64").toString("utf8");
    const i = dec.indexOf(":");
    const user = i < 0 ? dec : dec.slice(0, i);
    if (i < 0 || !this.checkPassword(user, dec.slice(i + 1)))
      return UNAUTHORIZED("invalid username or password");
    return { ok: true, account: user, ...base };
  }

  /** OAuth2 flow: POST form with grant_type password or refresh_token. */
  private authnPost(body: string): Authn {
    if (!this.options.allowPost) return { ok: false, status: 405, body: { error: "unsupported" } };
    const form = new URLSearchParams(body);
    const grantType = form.get("grant_type") ?? "";
    const base = {
      scopes: (form.get("scope") ?? "").split(" ").filter(Boolean),
      service: form.get("service"),
      refresh: form.get("access_type") === "offline",
      grantType,
    };
    if (grantType === "password") {
      const user = form.get("username") ?? "";
      if (!this.checkPassword(user, form.get("password") ?? ""))
        return UNAUTHORIZED("invalid username or password");
      return { ok: true, account: user, ...base };
    }
    if (grantType === "refresh_token") {
      const user = this.refreshTokens.get(form.get("refresh_token") ?? "");
      if (user === undefined) return UNAUTHORIZED("invalid refresh token");
      return { ok: true, account: user, ...base };
    }
    return { ok: false, status: 400, body: { error: "unsupported_grant_type" } };
  }

  private answer(req: IncomingMessage, res: ServerResponse, body: string): void {
    const url = new URL(req.url ?? "/", "http://issuer");
    const method = req.method ?? "GET";
    const rec: TokenRequestRecord = {
      time: Date.now(),
      method,
      path: url.pathname,
      account: undefined,
      scopes: [],
      granted: [],
      status: 0,
    };
    this.requests.push(rec);
    const reply = (status: number, obj: unknown): void => {
      rec.status = status;
      const text = JSON.stringify(obj);
      const headers: Record<string, string | number> = {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      };
      if (status === 401) headers["www-authenticate"] = 'Basic realm="kuik-harness-token-issuer"';
      if (status === 405) headers.allow = this.options.allowPost ? "GET, POST" : "GET";
      res.writeHead(status, headers);
      res.end(text);
    };
    if (this.failures && this.failures.remaining > 0) {
      this.failures.remaining--;
      return reply(this.failures.status, { errors: [{ code: "UNAVAILABLE", message: "injected failure" }] });
    }
    const a: Authn =
      method === "GET"
        ? this.authnGet(req, url)
        : method === "POST"
          ? this.authnPost(body)
          : { ok: false, status: 405, body: {} };
    if (!a.ok) return reply(a.status, a.body);
    Object.assign(rec, {
      account: a.account,
      scopes: a.scopes,
      ...(a.grantType !== undefined ? { grantType: a.grantType } : {}),
    });
    if (a.service !== null && a.service !== this.options.service) {
      return reply(400, {
        errors: [{ code: "DENIED", message: `unknown service ${a.service}` }],
        error: "invalid_request",
      });
    }
    rec.granted = this.authorize(a.account, a.scopes);
    const token = this.mint(a.account, rec.granted);
    const out: TokenResponseBody = {
      token,
      access_token: token,
      expires_in: this.options.ttlSeconds,
      issued_at: new Date().toISOString(),
    };
    if (a.refresh && a.account) {
      out.refresh_token = randomBytes(16).toString("hex");
      this.refreshTokens.set(out.refresh_token, a.account);
    }
    if (method === "POST") out.scope = a.scopes.join(" ");
    reply(200, out);
  }
}
