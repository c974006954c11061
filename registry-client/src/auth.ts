/**
 * Registry authentication: the Docker / OCI bearer-token challenge flow and basic auth.
 *
 * The first 401 of a registry tells us its scheme (its WWW-Authenticate challenge is remembered), so later
 * requests authenticate up front instead of paying a 401 round trip each. Tokens are cached per registry, scope
 * and credential until shortly before they expire; concurrent requests for the same token share one fetch.
 *
 * A repository may have several candidate credentials (keys of several pull secrets match it). Each request
 * uses one candidate; the client moves on to the next when the registry or its token server rejects it, at most
 * {@link MAX_CANDIDATES} of them, and the candidate that worked is tried first next time. Every map here is bounded.
 */
import { createHash } from "node:crypto";
import { parseWwwAuthenticate } from "./auth-challenge";
import { RegistryError } from "./errors";
import type { AuthChallenge, Credentials } from "./types";

/** Returns the credentials to try for a repository, most specific first (see {@link Keyring}). */
export type CredentialsProvider = (registry: string, repository: string | undefined) => Credentials[];

/** How the authenticator performs its own HTTP requests (token fetches). */
export type TokenFetcher = (
  url: URL,
  init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string },
) => Promise<{ statusCode: number; body: string }>;

interface CachedToken {
  value: string;
  expiresAt: number;
}

/** Tokens are renewed this long before the server says they expire. */
const EXPIRY_MARGIN_MS = 10_000;
/** Docker's default when the token server gives no `expires_in`. */
const DEFAULT_TOKEN_LIFETIME_S = 60;

/** Tokens kept at most (one per registry × scope × credential). */
const MAX_CACHED_TOKENS = 1000;
/** Registries whose challenge is remembered at most (any name an image brings is a registry). */
export const MAX_CHALLENGES = 256;
/** Candidate credentials tried per request at most (each may cost a token fetch and a request). */
export const MAX_CANDIDATES = 4;
/** Repositories whose working candidate is remembered at most. */
const MAX_PREFERRED = 1000;

/** One authenticator per {@link RegistryClient}; all state is per instance. */
export class Authenticator {
  readonly #credentials: CredentialsProvider;
  readonly #fetchToken: TokenFetcher;
  readonly #now: () => number;
  readonly #challenges = new Map<string, AuthChallenge>();
  readonly #tokens = new Map<string, CachedToken>();
  readonly #inflight = new Map<string, Promise<string>>();
  /** The candidate that last worked, by registry, repository and candidate set. */
  readonly #preferred = new Map<string, number>();

  constructor(credentials: CredentialsProvider, fetchToken: TokenFetcher, now: () => number = Date.now) {
    this.#credentials = credentials;
    this.#fetchToken = fetchToken;
    this.#now = now;
  }

  /** How many challenges, tokens and preferred candidates are kept (each map is bounded). */
  sizes(): { challenges: number; tokens: number; preferred: number } {
    return { challenges: this.#challenges.size, tokens: this.#tokens.size, preferred: this.#preferred.size };
  }

  /**
   * Indexes of the candidate credentials to try for a request, in order: the one that worked last first, at most
   * {@link MAX_CANDIDATES}; `[0]` when there are none (anonymous).
   */
  candidateOrder(registry: string, repository: string | undefined): number[] {
    const candidates = this.#credentials(registry, repository);
    const count = Math.max(1, Math.min(candidates.length, MAX_CANDIDATES));
    const order = Array.from({ length: count }, (_, i) => i);
    const preferred = this.#preferred.get(preferenceKey(registry, repository, candidates));
    if (preferred === undefined || preferred === 0 || preferred >= count) return order;
    return [preferred, ...order.filter(i => i !== preferred)];
  }

  /** Remembers that `candidate` worked for this repository (see {@link candidateOrder}). */
  worked(registry: string, repository: string | undefined, candidate: number): void {
    const key = preferenceKey(registry, repository, this.#credentials(registry, repository));
    if (this.#preferred.get(key) === candidate) return;
    this.#preferred.delete(key);
    if (candidate === 0) return;
    boundedSet(this.#preferred, key, candidate, MAX_PREFERRED);
  }

  /**
   * The Authorization header for a request with candidate credential number `candidate`, when the registry's
   * challenge is already known. Returns undefined for registries that never challenged us (anonymous) or not yet.
   */
  async authorization(
    registry: string,
    repository: string | undefined,
    scope: string | undefined,
    candidate = 0,
  ): Promise<string | undefined> {
    const challenge = this.#challenges.get(registry);
    if (!challenge) return undefined;
    return this.#authorize(registry, repository, scope, challenge, false, candidate);
  }

  /**
   * Handle a 401: remember the challenge and return a fresh Authorization header to retry once with.
   * Throws UNAUTHORIZED when nothing can satisfy the challenge.
   */
  async onUnauthorized(
    registry: string,
    repository: string | undefined,
    scope: string | undefined,
    wwwAuthenticate: string | readonly string[] | undefined,
    candidate = 0,
  ): Promise<string> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate);
    const challenge =
      challenges.find(c => c.scheme === "bearer") ?? challenges.find(c => c.scheme === "basic");
    if (!challenge) {
      throw new RegistryError(
        "UNAUTHORIZED",
        `${registry} answered 401 without a usable WWW-Authenticate challenge`,
        {
          registry,
          statusCode: 401,
        },
      );
    }
    this.#challenges.delete(registry);
    boundedSet(this.#challenges, registry, challenge, MAX_CHALLENGES);
    const header = await this.#authorize(
      registry,
      repository,
      challenge.params.scope ?? scope,
      challenge,
      true,
      candidate,
    );
    if (!header) {
      throw new RegistryError(
        "UNAUTHORIZED",
        `${registry} requires authentication and no credentials match`,
        {
          registry,
          statusCode: 401,
        },
      );
    }
    return header;
  }

  async #authorize(
    registry: string,
    repository: string | undefined,
    scope: string | undefined,
    challenge: AuthChallenge,
    fresh: boolean,
    candidate: number,
  ): Promise<string | undefined> {
    const creds = this.#credentials(registry, repository)[candidate];
    // A docker config's `registrytoken` is a ready bearer token: no exchange at the realm.
    if (creds?.kind === "bearer") return `Bearer ${creds.token}`;
    if (challenge.scheme === "basic") {
      return creds?.kind === "basic"
        ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`
        : undefined;
    }
    const token = await this.#bearer(registry, scope, challenge, creds, fresh);
    return `Bearer ${token}`;
  }

  async #bearer(
    registry: string,
    scope: string | undefined,
    challenge: AuthChallenge,
    creds: Credentials | undefined,
    fresh: boolean,
  ): Promise<string> {
    const key = `${registry}\u0000${scope ?? ""}\u0000${credentialsKey(creds ? [creds] : [])}`;
    const cached = this.#tokens.get(key);
    if (cached && !fresh && cached.expiresAt > this.#now()) return cached.value;
    const running = this.#inflight.get(key);
    if (running) return running;
    const promise = this.#requestToken(registry, scope, challenge, creds)
      .then(token => {
        if (this.#tokens.size >= MAX_CACHED_TOKENS) this.#dropExpired();
        this.#tokens.set(key, token);
        return token.value;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, promise);
    return promise;
  }

  /**
   * Forgets expired tokens (a long-running proxy meets new scopes and credential sets for ever); when all are
   * still valid, the oldest inserted go, down to 3/4 of the bound.
   */
  #dropExpired(): void {
    const now = this.#now();
    for (const [key, token] of this.#tokens) if (token.expiresAt <= now) this.#tokens.delete(key);
    for (const key of this.#tokens.keys()) {
      if (this.#tokens.size < (MAX_CACHED_TOKENS * 3) / 4) break;
      this.#tokens.delete(key);
    }
  }

  async #requestToken(
    registry: string,
    scope: string | undefined,
    challenge: AuthChallenge,
    creds: Credentials | undefined,
  ): Promise<CachedToken> {
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? "");
    } catch {
      throw new RegistryError("AUTH_FAILED", `${registry} sent a bearer challenge without a valid realm`, {
        registry,
      });
    }
    const service = challenge.params.service;
    const response =
      creds?.kind === "token"
        ? await this.#fetchToken(url, oauthRefreshRequest(creds.token, service, scope))
        : await this.#fetchToken(withQuery(url, service, scope), basicTokenRequest(creds));
    if (response.statusCode === 401 || response.statusCode === 403) {
      throw new RegistryError(
        "UNAUTHORIZED",
        `token server ${url.host} rejected the credentials for ${registry}`,
        {
          registry,
          statusCode: response.statusCode,
        },
      );
    }
    if (response.statusCode !== 200) {
      throw new RegistryError(
        "AUTH_FAILED",
        `token server ${url.host} answered HTTP ${response.statusCode}`,
        {
          registry,
          statusCode: response.statusCode,
        },
      );
    }
    return this.#parseTokenResponse(registry, url, response.body);
  }

  #parseTokenResponse(registry: string, url: URL, body: string): CachedToken {
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      throw new RegistryError("AUTH_FAILED", `token server ${url.host} returned invalid JSON`, { registry });
    }
    // Docker's spec: `token`, with `access_token` accepted for OAuth 2 compatibility; `token` wins if both.
    const value = typeof parsed.token === "string" && parsed.token ? parsed.token : parsed.access_token;
    if (typeof value !== "string" || value === "") {
      throw new RegistryError("AUTH_FAILED", `token server ${url.host} returned no token`, { registry });
    }
    const lifetime =
      typeof parsed.expires_in === "number" && parsed.expires_in > 0
        ? parsed.expires_in
        : DEFAULT_TOKEN_LIFETIME_S;
    return { value, expiresAt: this.#now() + Math.max(0, lifetime * 1000 - EXPIRY_MARGIN_MS) };
  }
}

function withQuery(realm: URL, service: string | undefined, scope: string | undefined): URL {
  const url = new URL(realm);
  if (service) url.searchParams.set("service", service);
  // A challenge may carry several space-separated scopes; the token endpoint wants one parameter each.
  for (const s of (scope ?? "").split(" ").filter(Boolean)) url.searchParams.append("scope", s);
  return url;
}

function basicTokenRequest(creds: Credentials | undefined): {
  method: "GET";
  headers: Record<string, string>;
} {
  const headers: Record<string, string> = {};
  if (creds?.kind === "basic") {
    headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
  }
  return { method: "GET", headers };
}

function oauthRefreshRequest(
  refreshToken: string,
  service: string | undefined,
  scope: string | undefined,
): { method: "POST"; headers: Record<string, string>; body: string } {
  const form = new URLSearchParams({
    grant_type: "refresh_token",
    refresh_token: refreshToken,
    client_id: "kuik",
  });
  if (service) form.set("service", service);
  if (scope) form.set("scope", scope);
  return {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
  };
}

/** Sets `key` last in a Map used in insertion order, dropping the oldest entries beyond `max`. */
function boundedSet<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  for (const oldest of map.keys()) {
    if (map.size < max) break;
    map.delete(oldest);
  }
  map.set(key, value);
}

function preferenceKey(registry: string, repository: string | undefined, candidates: Credentials[]): string {
  return `${registry}\u0000${repository ?? ""}\u0000${credentialsKey(candidates)}`;
}

/** A cache key that tells credential sets apart without keeping secrets in clear in the map keys. */
function credentialsKey(candidates: Credentials[]): string {
  if (candidates.length === 0) return "anonymous";
  const hash = createHash("sha256");
  for (const c of candidates)
    hash.update(
      c.kind === "basic"
        ? `b\u0000${c.username}\u0000${c.password}\u0000`
        : `${c.kind}\u0000${c.token}\u0000`,
    );
  return hash.digest("hex").slice(0, 32);
}
