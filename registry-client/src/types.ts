/** Shared types of registry-client's public API. */

/** A parsed, normalised image reference (see {@link parseImageReference}). */
export interface ImageReference {
  /** Registry host with optional port, normalised: `docker.io` (never `index.docker.io`), `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/nginx`. */
  repository: string;
  /** Tag, when the reference has one (`latest` is added only when there is neither tag nor digest). */
  tag?: string;
  /** Digest (`sha256:<64 hex>`), when the reference has one. */
  digest?: string;
  /** `registry/repository`, e.g. `docker.io/library/nginx`. */
  name: string;
  /** Fully qualified string: `registry/repository[:tag][@digest]`, e.g. `docker.io/library/nginx:latest`. */
  canonical: string;
}

/** Credentials for one registry. */
export type Credentials =
  | { kind: "basic"; username: string; password: string }
  /**
   * An OAuth 2 refresh token (a docker config's `identitytoken`), exchanged at the token realm with
   * `grant_type=refresh_token`.
   */
  | { kind: "token"; token: string }
  /** A ready-made registry bearer token (a docker config's `registrytoken`), sent as `Authorization: Bearer` as is. */
  | { kind: "bearer"; token: string };

/** A parsed `WWW-Authenticate` challenge. */
export interface AuthChallenge {
  /** Lower-cased scheme: `bearer` or `basic` (others are kept as given, lower-cased). */
  scheme: string;
  /** Parameters with lower-cased names (`realm`, `service`, `scope`, `error`…), values unquoted and unescaped. */
  params: Record<string, string>;
}
