/**
 * `WWW-Authenticate` parsing (RFC 7235 §4.1, RFC 9110 §11.6.1) and token scopes (the distribution token spec,
 * docs/spec/auth/scope.md).
 *
 * kuik v1 split the header with `strings.SplitN(h, " ", 2)[1]` and panicked on a bare `Bearer`; this is a small
 * linear scanner instead: no regex backtracking, no unchecked index, and a typed error on malformed input.
 */
import { RegistryError } from "./errors";
import { isRepositoryPath } from "./reference";
import type { AuthChallenge } from "./types";

/** Longest header we parse; real challenges are a few hundred bytes. */
const MAX_HEADER_LENGTH = 8192;
/** RFC 9110 tchar. */
const TCHAR_RE = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
/** RFC 7235 token68 (letters, digits, -._~+/ then padding), which must end the challenge. */
const TOKEN68_RE = /^[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))/;
const LIST_SEPARATOR_RE = /[ \t,]/;

/** A repository action of a token scope. */
export type ScopeAction = "pull" | "push" | "delete" | "*";

/** Canonical action order, so equal scopes are equal strings (they key the token cache). */
const ACTION_ORDER: readonly string[] = ["pull", "push", "delete", "*"];

/**
 * Parses a `WWW-Authenticate` header value (or several, as undici returns repeated headers) into challenges.
 *
 * Handles several challenges in one value, parameters in any order, quoted strings with `\"` escapes and commas
 * inside, unquoted token values, and case-insensitive scheme and parameter names (both lower-cased). A token68
 * (`Negotiate abc==`) is accepted and ignored. An empty or absent header gives `[]`. When a parameter is repeated,
 * the first value wins.
 *
 * @example
 * parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"');
 * // [{ scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io",
 * //                                scope: "repository:library/nginx:pull" } }]
 *
 * @throws {@link RegistryError} `AUTH_FAILED` when the header is malformed (e.g. an unterminated quoted string).
 */
export function parseWwwAuthenticate(header: string | readonly string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  if (typeof header !== "string") return header.flatMap(h => parseWwwAuthenticate(h));
  if (header.length > MAX_HEADER_LENGTH) {
    throw new RegistryError(
      "AUTH_FAILED",
      `WWW-Authenticate header longer than ${MAX_HEADER_LENGTH} characters`,
    );
  }
  return new ChallengeScanner(header).parse();
}

/** One pass over the header: `pos` moves forward, except that a parameter list re-reads the next scheme once. */
class ChallengeScanner {
  readonly #s: string;
  #pos = 0;

  constructor(s: string) {
    this.#s = s;
  }

  parse(): AuthChallenge[] {
    const challenges: AuthChallenge[] = [];
    for (;;) {
      this.#skipListSeparators();
      if (this.#pos >= this.#s.length) return challenges;
      const scheme = this.#token();
      if (scheme === "") this.#fail("expected an auth scheme");
      const params: Record<string, string> = {};
      challenges.push({ scheme: scheme.toLowerCase(), params });
      if (!this.#skipSpaces()) continue; // a bare scheme, then a comma or the end
      if (this.#skipToken68()) continue;
      this.#params(params);
    }
  }

  /** `#auth-param` until the next challenge (a token not followed by `=`) or the end. */
  #params(params: Record<string, string>): void {
    for (;;) {
      this.#skipListSeparators();
      if (this.#pos >= this.#s.length) return;
      const start = this.#pos;
      const name = this.#token();
      if (name === "") this.#fail("expected a parameter name");
      this.#skipSpaces();
      if (this.#s[this.#pos] !== "=") {
        this.#pos = start; // it was the scheme of the next challenge
        return;
      }
      this.#pos++;
      this.#skipSpaces();
      const quoted = this.#s[this.#pos] === '"';
      const value = quoted ? this.#quotedString() : this.#token();
      if (!quoted && value === "") this.#fail(`parameter "${name}" has no value`);
      const key = name.toLowerCase();
      // defineProperty, not `params[key] =`: a parameter named `__proto__` must stay a plain own property.
      if (!Object.hasOwn(params, key)) {
        Object.defineProperty(params, key, { value, enumerable: true, writable: true, configurable: true });
      }
      this.#skipSpaces();
      const next = this.#s[this.#pos];
      if (next !== undefined && next !== ",") this.#fail(`expected "," after parameter "${name}"`);
    }
  }

  #token(): string {
    const start = this.#pos;
    while (this.#pos < this.#s.length && TCHAR_RE.test(this.#s.charAt(this.#pos))) this.#pos++;
    return this.#s.slice(start, this.#pos);
  }

  /** `"…"` with `\x` quoted pairs; the opening quote is at `pos`. */
  #quotedString(): string {
    let out = "";
    for (this.#pos++; this.#pos < this.#s.length; this.#pos++) {
      const c = this.#s.charAt(this.#pos);
      if (c === '"') {
        this.#pos++;
        return out;
      }
      if (c === "\\") {
        this.#pos++;
        if (this.#pos >= this.#s.length) break;
        out += this.#s.charAt(this.#pos);
      } else {
        out += c;
      }
    }
    return this.#fail("unterminated quoted string");
  }

  /** A token68 must be all that follows the scheme: `abc==` is one, `name=value` is a parameter. */
  #skipToken68(): boolean {
    const m = TOKEN68_RE.exec(this.#s.slice(this.#pos));
    if (m === null) return false;
    this.#pos += m[0].length;
    return true;
  }

  /** Skips spaces and tabs; true when something other than a comma or the end follows. */
  #skipSpaces(): boolean {
    while (this.#s[this.#pos] === " " || this.#s[this.#pos] === "\t") this.#pos++;
    return this.#pos < this.#s.length && this.#s[this.#pos] !== ",";
  }

  /** RFC 9110 §5.6.1: empty list elements (`a, , b`) are allowed. */
  #skipListSeparators(): void {
    while (this.#pos < this.#s.length && LIST_SEPARATOR_RE.test(this.#s.charAt(this.#pos))) this.#pos++;
  }

  #fail(reason: string): never {
    const shown = this.#s.length > 200 ? `${this.#s.slice(0, 200)}…` : this.#s;
    throw new RegistryError(
      "AUTH_FAILED",
      `malformed WWW-Authenticate header ${JSON.stringify(shown)}: ${reason} at offset ${this.#pos}`,
    );
  }
}

/**
 * Builds the token scope for a repository: `repository:<name>:<actions>`, actions de-duplicated and in the
 * order pull, push, delete, `*`.
 *
 * @example scopeForRepository("library/nginx", ["push", "pull"]) // "repository:library/nginx:pull,push"
 * @throws {@link RegistryError} `INVALID_REFERENCE` when `repository` is not a valid repository path.
 */
export function scopeForRepository(
  repository: string,
  actions: readonly [ScopeAction, ...ScopeAction[]],
): string {
  if (!isRepositoryPath(repository)) {
    throw new RegistryError(
      "INVALID_REFERENCE",
      `invalid repository name ${JSON.stringify(repository)} for a scope`,
    );
  }
  if (actions.length === 0) throw new TypeError("scopeForRepository needs at least one action");
  return `repository:${repository}:${sortActions(actions).join(",")}`;
}

/**
 * Merges scopes: the actions of scopes on the same resource are united (`repository:a:pull` +
 * `repository:a:push` → `repository:a:pull,push`), resources keep their first-seen order, and each input may
 * itself be a space-separated list (as in a challenge's `scope` parameter). Strings that are not
 * `type:name:actions` are kept as they are, once.
 *
 * @returns one scope per resource; join with `" "` for a single `scope` value, or send one parameter each.
 */
export function mergeScopes(...scopes: readonly (string | undefined)[]): string[] {
  // resource → its actions, or null for a string that is not `type:name:actions`
  const merged = new Map<string, Set<string> | null>();
  for (const scope of scopes.flatMap(s => (s ?? "").split(" "))) {
    if (scope === "") continue;
    const first = scope.indexOf(":");
    const last = scope.lastIndexOf(":");
    if (first <= 0 || last === first) {
      if (!merged.has(scope)) merged.set(scope, null);
      continue;
    }
    // The resource name may hold a `host:port`, so the actions follow the last colon.
    const resource = scope.slice(0, last);
    const actions = merged.get(resource) ?? new Set<string>();
    merged.set(resource, actions);
    for (const a of scope.slice(last + 1).split(",")) if (a !== "") actions.add(a);
  }
  return [...merged].map(([resource, actions]) =>
    actions === null ? resource : `${resource}:${sortActions([...actions]).join(",")}`,
  );
}

/** Known actions in canonical order, then any others alphabetically. */
function sortActions(actions: readonly string[]): string[] {
  const rank = (a: string): number => {
    const i = ACTION_ORDER.indexOf(a);
    return i < 0 ? ACTION_ORDER.length : i;
  };
  return [...new Set(actions)].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}
