/**
 * Names kuik derives from images: CachedImage and Repository object names and the Repository label.
 *
 * Short names are kuik v1's, character for character, so objects created by v1 keep their names. What v1 got
 * wrong is fixed: names are length-limited and digests get a name (docs/v1-differences.md).
 */
import { createHash } from "node:crypto";
import { parseImageReference } from "../../registry-client/src/reference";
import type { ImageReference } from "../../registry-client/src/types";
import { LABEL_REPOSITORY } from "./labels";

/** The proxy DaemonSet in kuik's namespace (deploy/base/proxy.yaml), read by the proxy gate. */
export const PROXY_DAEMONSET = "kube-image-keeper-proxy";

/** Longest Kubernetes object name (DNS-1123 subdomain). */
export const MAX_OBJECT_NAME_LENGTH = 253;
/** Longest label value, and longest name part of an annotation key. */
export const MAX_LABEL_LENGTH = 63;
/** Hex characters of the hash suffix added to names that had to be shortened. */
const HASH_SUFFIX_LENGTH = 16;

// kuik v1's regex: every maximal DNS-1123-subdomain-looking run of the lower-cased input.
const SANITIZE_RE = /[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/g;

/**
 * kuik v1's `SanitizeName`: lower-cases `s` and joins with `-` every run of characters allowed in a DNS-1123
 * subdomain. `docker.io/library/alpine` → `docker.io-library-alpine`, `abc123++@++yx.z` → `abc123-yx.z`.
 * Not length-limited (see {@link cachedImageName}); returns "" when nothing is left.
 */
export function sanitizeName(s: string): string {
  return s.toLowerCase().match(SANITIZE_RE)?.join("-") ?? "";
}

/** First `length` hex characters of the SHA-256 of `s`. */
function hashHex(s: string, length = HASH_SUFFIX_LENGTH): string {
  return createHash("sha256").update(s).digest("hex").slice(0, length);
}

/**
 * Shortens a sanitised name to `max` characters, keeping a readable head and appending `-<16 hex>` of the
 * SHA-256 of `identity` (the unsanitised value, so two long inputs that sanitise alike still differ).
 */
function fitName(name: string, identity: string, max: number): string {
  if (name.length <= max) return name;
  const head = name.slice(0, max - HASH_SUFFIX_LENGTH - 1).replace(/[-.]+$/, "");
  return `${head}-${hashHex(identity)}`;
}

/**
 * Name of the CachedImage of an image: the sanitised canonical reference, e.g. `nginx` and `nginx:latest` →
 * `docker.io-library-nginx-latest`, `alpine:3.16.3` → `docker.io-library-alpine-3.16.3` (v1's names).
 *
 * Unlike v1:
 * - digests are named: `nginx:1.25@sha256:<hex>` → `docker.io-library-nginx-1.25-sha256-<all 64 hex>`. The
 *   whole digest is kept, so two digests never share a name and the name can be searched by digest;
 * - an untagged image on a registry with a port gets `-latest` too (`reg.example:5000/app` →
 *   `reg.example-5000-app-latest`; v1 looked for a `:` in the raw string and forgot it);
 * - names longer than 253 characters are cut and suffixed with a hash of the canonical reference.
 *
 * @throws RegistryError `INVALID_REFERENCE` when `sourceImage` is not an image reference.
 */
export function cachedImageName(sourceImage: string | ImageReference): string {
  const ref = typeof sourceImage === "string" ? parseImageReference(sourceImage) : sourceImage;
  // Registry hosts are case-insensitive; nothing else of a reference is.
  const identity = ref.registry.toLowerCase() + ref.canonical.slice(ref.registry.length);
  return fitName(sanitizeName(ref.canonical), identity, MAX_OBJECT_NAME_LENGTH);
}

/**
 * Name of the Repository object of a normalised repository name (`docker.io/library/nginx` →
 * `docker.io-library-nginx`), cut with a hash suffix beyond 253 characters.
 */
export function repositoryName(name: string): string {
  return fitName(sanitizeName(name), name, MAX_OBJECT_NAME_LENGTH);
}

/**
 * Value of the `kuik.enix.io/repository` label of the CachedImages of a repository: v1's `RepositoryLabel`,
 * the sanitised name or, beyond 63 characters, the hex SHA-224 of the sanitised name.
 *
 * The hash is one-way, so (fixing v1's label-to-name mapping, docs/v1-differences.md B6) never derive a Repository from a label value: select a
 * Repository's CachedImages with {@link repositorySelector}, and find a CachedImage's Repository with
 * {@link repositoryOf} on its `spec.sourceImage`.
 */
export function repositoryLabel(name: string): string {
  const sanitized = sanitizeName(name);
  if (sanitized.length <= MAX_LABEL_LENGTH) return sanitized;
  return createHash("sha224").update(sanitized).digest("hex");
}

/** Label selector matching the CachedImages of the repository `name` (its `spec.name`). */
export function repositorySelector(name: string): Record<string, string> {
  return { [LABEL_REPOSITORY]: repositoryLabel(name) };
}

/** The repository of an image: normalised name, Repository object name and label value. */
export interface RepositoryIdentity {
  /** Normalised repository name, the Repository's `spec.name` (`docker.io/library/nginx`). */
  name: string;
  /** Repository object name. */
  objectName: string;
  /** Value of the `kuik.enix.io/repository` label of its CachedImages. */
  label: string;
}

/**
 * The Repository an image belongs to.
 *
 * @throws RegistryError `INVALID_REFERENCE` when `sourceImage` is not an image reference.
 */
export function repositoryOf(sourceImage: string | ImageReference): RepositoryIdentity {
  const ref = typeof sourceImage === "string" ? parseImageReference(sourceImage) : sourceImage;
  return { name: ref.name, objectName: repositoryName(ref.name), label: repositoryLabel(ref.name) };
}
