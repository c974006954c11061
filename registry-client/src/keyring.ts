/**
 * Registry credentials from Kubernetes pull secrets, matched to images with the kubelet's rules
 * (k8s.io/kubernetes pkg/credentialprovider `BasicDockerKeyring`), so kuik uses what the kubelet would:
 * - a key is `[http(s)://]host[:port][/path]`; a path of `/v1/` or `/v2/` means the whole host;
 * - each `*` matches within one host label (`*.example.com`: `a.example.com`, not `a.b.example.com`); a `?` starts
 *   a URL query, as for the kubelet's url.Parse; ports must be equal (no port ≠ any port);
 * - the key's path must be `/<repository>` or a leading run of its path segments (`host/team` matches
 *   `host/team/app`, never `host/team-b/app`);
 * - keys are tried in reverse lexical order (`quay.io/org` before `quay.io`), and every match is returned.
 *
 * Deliberate differences: the kubelet compares paths as plain string prefixes, so one tenant's `reg/team/app` key
 * would authenticate another's `reg/team/app-other` (issue #13): kuik matches whole segments; every Docker Hub alias (`docker.io`, `index.docker.io`, `registry-1.docker.io`,
 * `https://index.docker.io/v1/`) is one host (the kubelet serves `index.docker.io` entries to Docker Hub images
 * only through a fallback used when nothing else matched; here they merge in key order); hosts compare
 * case-insensitively; `[…]` glob classes are unsupported (they clash with IPv6 literals); identical credentials
 * matched through several keys are returned once.
 */
import { RegistryError } from "./errors";
import { DOCKER_HUB_REGISTRY, parseImageReference } from "./reference";
import type { Credentials } from "./types";

/** Secret type whose `.dockerconfigjson` key holds `{"auths": {...}}`. */
export const SECRET_TYPE_DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson";
/** Legacy secret type whose `.dockercfg` key holds the `{...}` map of entries directly. */
export const SECRET_TYPE_DOCKERCFG = "kubernetes.io/dockercfg";

const SECRET_KEYS: ReadonlyMap<string, string> = new Map([
  [SECRET_TYPE_DOCKER_CONFIG_JSON, ".dockerconfigjson"],
  [SECRET_TYPE_DOCKERCFG, ".dockercfg"],
]);
const HUB_ALIASES: ReadonlySet<string> = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
/** The kubelet's wording (decodeDockerConfigFieldAuth). */
const AUTH_FORMAT_ERROR = 'field "auth" must be formatted as base64(username:password)';
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const SCHEME_RE = /^https?:\/\//i;
const QUERY_OR_FRAGMENT_RE = /[?#]/;
/** Go's base64 decoders skip CR and LF. */
const NEWLINES_RE = /[\r\n]/g;
/** Registry keys we are willing to echo in an error message; anything else is named by its position. */
const PRINTABLE_KEY_RE = /^[A-Za-z0-9._\-:[\]/*?]{1,200}$/;

/** The subset of a Kubernetes Secret that {@link parsePullSecret} reads; `data` values are base64, as in the API. */
export interface PullSecret {
  metadata?: { name?: string; namespace?: string };
  type?: string;
  data?: Record<string, string>;
}

/** One credential of a docker config. */
export interface DockerConfigEntry {
  /** The key as written: `https://index.docker.io/v1/`, `registry.example.com:5000/team`, `*.example.com`. */
  registry: string;
  credentials: Credentials;
  /** Where it comes from, for diagnostics: `namespace/name` of the secret. Never a credential. */
  source: string;
}

/** What {@link Keyring.lookup} accepts: a reference string, an `ImageReference`, or a registry + path. */
export type KeyringTarget = string | { registry: string; repository?: string | undefined };

/**
 * Reads the credentials of a `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg` secret, in the
 * order of its entries. Entries without credentials (`{}`, as `docker login` writes with a credential store) are
 * skipped. Per entry, `registrytoken` wins over `identitytoken`, which wins over `auth`, which wins over
 * `username`/`password`.
 *
 * @throws {@link RegistryError} `INVALID_SECRET` naming the secret (`namespace/name`) and key, never any of
 * their content: wrong type, missing key, data that is not base64 or JSON, a malformed entry, or an `auth` that
 * is not base64(username:password).
 */
export function parsePullSecret(secret: PullSecret): DockerConfigEntry[] {
  const source = secretName(secret);
  const key = secret.type === undefined ? undefined : SECRET_KEYS.get(secret.type);
  if (key === undefined) {
    throw new RegistryError(
      "INVALID_SECRET",
      `pull secret "${source}" has type ${JSON.stringify(secret.type ?? "")}, ` +
        `expected ${SECRET_TYPE_DOCKER_CONFIG_JSON} or ${SECRET_TYPE_DOCKERCFG}`,
    );
  }
  const encoded: unknown = secret.data?.[key];
  if (typeof encoded !== "string" || encoded === "") {
    throw new RegistryError("INVALID_SECRET", `pull secret "${source}" has no "${key}" data`);
  }
  const text = decodeBase64(encoded);
  if (text === undefined) {
    throw new RegistryError("INVALID_SECRET", `pull secret "${source}": "${key}" is not valid base64`);
  }
  return readDockerConfig(text, source, `pull secret "${source}" key "${key}"`, key === ".dockercfg");
}

/**
 * Reads the credentials of a docker config file: `{"auths": {...}}` (config.json, `.dockerconfigjson`), or with
 * `legacy` the bare map of `.dockercfg`. `source` names the config in error messages and entries.
 *
 * @throws {@link RegistryError} `INVALID_SECRET`, never quoting the content.
 */
export function parseDockerConfig(
  text: string,
  options: { source: string; legacy?: boolean },
): DockerConfigEntry[] {
  return readDockerConfig(text, options.source, options.source, options.legacy ?? false);
}

function readDockerConfig(text: string, source: string, where: string, legacy: boolean): DockerConfigEntry[] {
  const fail = (reason: string): RegistryError => new RegistryError("INVALID_SECRET", `${where}: ${reason}`);
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    // No `cause`: V8's JSON error message quotes the text, which holds the credentials.
    throw fail("not valid JSON");
  }
  if (!isObject(root)) throw fail("not a JSON object");
  const auths = legacy ? root : root.auths;
  if (auths === undefined || auths === null) return [];
  if (!isObject(auths)) throw fail(`"auths" is not an object`);
  const entries: DockerConfigEntry[] = [];
  Object.entries(auths).forEach(([registry, value], i) => {
    const label = PRINTABLE_KEY_RE.test(registry) ? `entry ${JSON.stringify(registry)}` : `entry #${i + 1}`;
    const credentials = entryCredentials(value, reason => fail(`${label}: ${reason}`));
    if (credentials !== undefined) entries.push({ registry, credentials, source });
  });
  return entries;
}

function entryCredentials(value: unknown, fail: (reason: string) => RegistryError): Credentials | undefined {
  if (!isObject(value)) throw fail("is not an object");
  const field = (name: string): string => {
    const v = value[name];
    if (v === undefined || v === null) return "";
    if (typeof v !== "string") throw fail(`field "${name}" is not a string`);
    return v;
  };
  const registryToken = field("registrytoken");
  if (registryToken !== "") return { kind: "bearer", token: registryToken };
  const identityToken = field("identitytoken");
  if (identityToken !== "") return { kind: "token", token: identityToken };
  let username = field("username");
  let password = field("password");
  const auth = field("auth");
  if (auth !== "") {
    // The kubelet accepts padded and unpadded base64 here (decodeDockerConfigFieldAuth).
    const decoded = decodeBase64(auth, true);
    const colon = decoded?.indexOf(":") ?? -1;
    if (decoded === undefined || colon < 0) throw fail(AUTH_FORMAT_ERROR);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (username === "" && password === "") return undefined;
  return { kind: "basic", username, password };
}

/** A parsed key of the index; its host `labels` may hold `*`. */
interface IndexKey {
  key: string;
  labels: readonly string[];
  port: string;
  path: string;
  entries: DockerConfigEntry[];
}

/**
 * Credentials of several pull secrets, looked up per image as the kubelet does. Immutable and free of I/O.
 *
 * @example
 * const keyring = Keyring.fromPullSecrets([secretA, secretB]);
 * keyring.lookup("registry.example.com:5000/team/app:1.0"); // Credentials[], most specific first
 */
export class Keyring {
  readonly #index: readonly IndexKey[];

  /** Builds the index from entries in priority order (entries of the same key keep their order). */
  constructor(entries: Iterable<DockerConfigEntry>) {
    const byKey = new Map<string, IndexKey>();
    for (const entry of entries) {
      const parsed = parseKey(entry.registry);
      if (parsed === undefined) continue;
      const existing = byKey.get(parsed.key);
      if (existing) existing.entries.push(entry);
      else byKey.set(parsed.key, { ...parsed, entries: [entry] });
    }
    // Reverse lexical order puts `host/path` before `host` (kubelet: sort.Reverse(sort.StringSlice(index))).
    this.#index = [...byKey.values()].sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  }

  /** A keyring over all entries of `secrets`, in order. Throws like {@link parsePullSecret} on the first bad one. */
  static fromPullSecrets(secrets: Iterable<PullSecret>): Keyring {
    return new Keyring([...secrets].flatMap(parsePullSecret));
  }

  /** Number of distinct keys. */
  get size(): number {
    return this.#index.length;
  }

  /**
   * All credentials that apply to an image, most specific key first; `[]` means anonymous. Callers try them in
   * order, as the kubelet does. A string is parsed with {@link parseImageReference} (its tag/digest is ignored).
   *
   * @throws {@link RegistryError} `INVALID_REFERENCE` when a string target is not a valid reference.
   */
  lookup(target: KeyringTarget): Credentials[] {
    // A Map keeps the first position of each key; equal keys mean equal credentials.
    const unique = new Map(this.match(target).map(e => [JSON.stringify(e.credentials), e.credentials]));
    return [...unique.values()];
  }

  /** Like {@link Keyring.lookup} but returns the matching entries (with their `source`), duplicates included. */
  match(target: KeyringTarget): DockerConfigEntry[] {
    const ref = typeof target === "string" ? parseImageReference(target) : target;
    const { host, port } = splitHostPort(canonicalHost(ref.registry));
    const labels = host.split(".");
    const path = ref.repository === undefined ? "" : `/${ref.repository}`;
    return this.#index.filter(k => keyMatches(k, labels, port, path)).flatMap(k => k.entries);
  }
}

/** kubelet `urlsMatch`: same port, same number of labels, each label globbed; the key path on segment boundaries. */
function keyMatches(k: IndexKey, labels: readonly string[], port: string, path: string): boolean {
  if (k.port !== port || k.labels.length !== labels.length || !pathMatches(k.path, path)) return false;
  return k.labels.every((glob, i) => {
    const label = labels[i] ?? "";
    return glob.includes("*") ? globMatch(glob, label) : glob === label;
  });
}

/** Whether a key's path (`""`, `/team`, `/team/`) covers `/<repository>`: equal, or a prefix ending at a `/`. */
function pathMatches(keyPath: string, path: string): boolean {
  if (keyPath === "" || keyPath === path) return true;
  return path.startsWith(keyPath.endsWith("/") ? keyPath : `${keyPath}/`);
}

/** kubelet `BasicDockerKeyring.Add`: strip the scheme and a `/v1/` or `/v2/` path, keep `host[:port][/path]`. */
function parseKey(raw: string): Omit<IndexKey, "entries"> | undefined {
  const withoutScheme = raw.replace(SCHEME_RE, "");
  const end = withoutScheme.search(QUERY_OR_FRAGMENT_RE);
  const location = end < 0 ? withoutScheme : withoutScheme.slice(0, end);
  const slash = location.indexOf("/");
  const hostPort = canonicalHost(slash < 0 ? location : location.slice(0, slash));
  let path = slash < 0 ? "" : location.slice(slash);
  if (path.startsWith("/v1/") || path.startsWith("/v2/")) path = path.slice(3);
  if (path === "/") path = "";
  if (hostPort === "") return undefined;
  const { host, port } = splitHostPort(hostPort);
  return { key: hostPort + path, labels: host.split("."), port, path };
}

/**
 * `*` glob of one label, by the classic two-pointer walk: O(pattern × label) at worst. A regex would backtrack
 * exponentially on keys like `*a*a*a*a*b`, and keys come from secrets that any namespace user can write.
 */
function globMatch(pattern: string, label: string): boolean {
  let [p, l, star, resume] = [0, 0, -1, 0];
  while (l < label.length) {
    if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = l;
    } else if (p < pattern.length && pattern[p] === label[l]) {
      p++;
      l++;
    } else if (star >= 0) {
      p = star + 1;
      l = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** Lower-cased, with every Docker Hub alias folded into `docker.io`. */
function canonicalHost(hostPort: string): string {
  const lower = hostPort.toLowerCase();
  return HUB_ALIASES.has(lower) ? DOCKER_HUB_REGISTRY : lower;
}

/** Go's `net.SplitHostPort`, falling back to "no port" where it errs (as the kubelet does). */
function splitHostPort(hostPort: string): { host: string; port: string } {
  if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]:");
    if (close < 0) return { host: hostPort, port: "" };
    return { host: hostPort.slice(1, close), port: hostPort.slice(close + 2) };
  }
  const colon = hostPort.indexOf(":");
  if (colon < 0 || hostPort.indexOf(":", colon + 1) >= 0) return { host: hostPort, port: "" };
  return { host: hostPort.slice(0, colon), port: hostPort.slice(colon + 1) };
}

/** Strict base64 (Node's decoder silently skips bad characters). `unpadded` also accepts RFC 4648 §3.2 input. */
function decodeBase64(value: string, unpadded = false): string | undefined {
  const s = value.replace(NEWLINES_RE, "");
  if (!BASE64_RE.test(s)) return undefined;
  const padded = s.endsWith("=");
  if ((padded || !unpadded) && s.length % 4 !== 0) return undefined;
  if (!padded && unpadded && s.length % 4 === 1) return undefined;
  return Buffer.from(s, "base64").toString("utf8");
}

function secretName({ metadata = {} }: PullSecret): string {
  return (metadata.namespace ? `${metadata.namespace}/` : "") + (metadata.name ?? "<unnamed>");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
