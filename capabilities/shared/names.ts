/**
 * Names kuik derives from images: CachedImage and Repository object names, the Repository label, the
 * original-image annotation keys, and the `localhost:<port>/…` form of a rewritten image.
 *
 * Short names are kuik v1's, character for character (docs/kuik-v1-reference.md §2.4), so objects created by v1
 * keep their names. What v1 got wrong is fixed: names are length-limited, digests get a name, and the proxy
 * form of an image is refused when the proxy could not read it back (Appendix B #6 and #7).
 */
import { createHash } from "node:crypto";
import { fromProxyPath } from "../../registry-client/src/proxy-path";
import { parseImageReference } from "../../registry-client/src/reference";
import type { ImageReference } from "../../registry-client/src/types";
import {
  ANNOTATION_PREFIX_ORIGINAL_EPHEMERAL_IMAGE,
  ANNOTATION_PREFIX_ORIGINAL_IMAGE,
  ANNOTATION_PREFIX_ORIGINAL_INIT_IMAGE,
  LABEL_REPOSITORY,
} from "./labels";

/** Longest Kubernetes object name (DNS-1123 subdomain). */
export const MAX_OBJECT_NAME_LENGTH = 253;
/** Longest label value, and longest name part of an annotation key. */
export const MAX_LABEL_LENGTH = 63;
/** Longest repository path of an image reference (distribution/reference). */
const MAX_REPOSITORY_PATH_LENGTH = 255;
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
 * The hash is one-way, so (fixing v1's Appendix B #6) never derive a Repository from a label value: select a
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

/** The three lists of containers of a pod. */
export type ContainerKind = "container" | "init" | "ephemeral";

/** The pod-spec field holding each {@link ContainerKind}. */
export const CONTAINER_LIST_FIELD = {
  container: "containers",
  init: "initContainers",
  ephemeral: "ephemeralContainers",
} as const satisfies Record<ContainerKind, string>;

/** The container fields kuik reads (a `V1Container` or `V1EphemeralContainer` fits). */
export interface ContainerLike {
  readonly name: string;
  readonly image?: string;
  readonly imagePullPolicy?: string;
}

/** The pod fields kuik reads (a `kind.Pod` / `V1Pod` fits); admission and watch payloads both qualify. */
export interface PodLike {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly deletionTimestamp?: Date | string;
  };
  readonly spec?: {
    readonly containers?: readonly ContainerLike[];
    readonly initContainers?: readonly ContainerLike[];
    readonly ephemeralContainers?: readonly ContainerLike[];
    readonly imagePullSecrets?: readonly { readonly name?: string }[];
    readonly serviceAccountName?: string;
  };
}

/** One container of a pod with its kind and position in its list. */
export interface PodContainer {
  kind: ContainerKind;
  /** Index in the pod-spec list of its kind ({@link CONTAINER_LIST_FIELD}). */
  index: number;
  container: ContainerLike;
}

/** Every container of a pod: containers, then init containers, then ephemeral containers (v1's order). */
export function podContainers(pod: PodLike): PodContainer[] {
  const out: PodContainer[] = [];
  for (const kind of ["container", "init", "ephemeral"] as const) {
    const list = pod.spec?.[CONTAINER_LIST_FIELD[kind]] ?? [];
    list.forEach((container, index) => out.push({ kind, index, container }));
  }
  return out;
}

/** The annotation-key prefix of each container kind. */
const ANNOTATION_PREFIX = {
  container: ANNOTATION_PREFIX_ORIGINAL_IMAGE,
  init: ANNOTATION_PREFIX_ORIGINAL_INIT_IMAGE,
  ephemeral: ANNOTATION_PREFIX_ORIGINAL_EPHEMERAL_IMAGE,
} as const;

/**
 * Key of the pod annotation recording a container's original image (v1's `ContainerAnnotationKey`):
 * `original-image-<name>`, `original-init-image-<name>` or `original-ephem-image-<name>`; when that would exceed
 * 63 characters, `<name>` is replaced by the hex SHA-1 of the container name.
 */
export function containerAnnotationKey(containerName: string, kind: ContainerKind): string {
  const prefix = ANNOTATION_PREFIX[kind];
  if (prefix.length + containerName.length <= MAX_LABEL_LENGTH) return prefix + containerName;
  return prefix + createHash("sha1").update(containerName).digest("hex");
}

/** Why an image cannot be written as `localhost:<port>/…` in a way the proxy reads back unambiguously. */
export type ProxyImageProblem =
  /** `localhost`, `127.0.0.0/8` or `[::1]`: a node-local registry the cache cannot reach. */
  | "loopback-registry"
  /** A dot-less host (`registry:5000`), or one ending in `-<digits>`, would read back as something else. */
  | "ambiguous-registry"
  /** An IPv6 host: brackets cannot appear in a repository path. */
  | "unsupported-registry"
  /** The rewritten repository path would exceed 255 characters. */
  | "name-too-long";

/** The `localhost:<port>/` prefix of images served by the proxy on `port`. */
export function proxyPrefix(port: number): string {
  return `localhost:${port}/`;
}

/**
 * The proxy form of an image as v1 writes it: `localhost:<port>/` + the image as written, with the registry's
 * `host:port` turned into `host-port` (`185.145.250.247:30042/alpine` → `localhost:7439/185.145.250.247-30042/alpine`)
 * and lower-cased. Docker Hub images keep their short form (`nginx:1.25` → `localhost:7439/nginx:1.25`).
 *
 * The proxy reads a first path segment ending in `-<digits>` back as `host:port` (registry-client's
 * `fromProxyPath`); registries a proxy could not reach or that v1 would have misread (dotless hosts, loopback) are
 * refused with a {@link ProxyImageProblem} instead of being broken (v1 broke them).
 */
export function toProxyImage(
  written: string,
  ref: ImageReference,
  port: number,
  options: { allowLoopback?: boolean } = {},
): { image: string } | { problem: ProxyImageProblem } {
  const slash = written.indexOf("/");
  const first = slash > 0 ? written.slice(0, slash) : "";
  const explicitRegistry =
    first !== "" && (first === ref.registry || first.toLowerCase() === "index.docker.io");
  let path = written;
  if (explicitRegistry) {
    const problem = registryProblem(first, options.allowLoopback === true);
    if (problem !== undefined) return { problem };
    path = first.toLowerCase().replace(":", "-") + written.slice(slash);
  } else {
    // A Docker Hub namespace ending in `-<digits>` (`user-2/app`) would read back as `host:port`: name the registry.
    const read = fromProxyPath(path);
    if (!("written" in read) || read.written !== path) path = `docker.io/${path}`;
  }
  const repositoryLength = path.search(/[:@]/) < 0 ? path.length : path.search(/[:@]/);
  if (repositoryLength > MAX_REPOSITORY_PATH_LENGTH) return { problem: "name-too-long" };
  return { image: proxyPrefix(port) + path };
}

/** The problem, if any, of writing registry `host[:port]` as a path segment. */
function registryProblem(registry: string, allowLoopback: boolean): ProxyImageProblem | undefined {
  if (registry.startsWith("["))
    return registry.startsWith("[::1]") ? "loopback-registry" : "unsupported-registry";
  const colon = registry.lastIndexOf(":");
  const host = (colon < 0 ? registry : registry.slice(0, colon)).toLowerCase();
  // A 127.x address is dotted, so the proxy reads it back; `localhost` is not, and stays refused.
  if (allowLoopback && /^127\.\d+\.\d+\.\d+$/.test(host)) return undefined;
  if (host === "localhost" || host.endsWith(".localhost") || /^127\.\d+\.\d+\.\d+$/.test(host)) {
    return "loopback-registry";
  }
  if (!host.includes(".")) return "ambiguous-registry";
  if (colon < 0 && /-\d+$/.test(host)) return "ambiguous-registry";
  return undefined;
}

/**
 * The inverse of {@link toProxyImage}: the original image of a `localhost:<port>/…` image (with the registry's
 * port restored), or `undefined` when `image` is not in the proxy form for `port`. Used for ephemeral
 * containers, whose original-image annotation the API server drops (see desired.ts).
 */
export function fromProxyImage(image: string, port: number): string | undefined {
  const prefix = proxyPrefix(port);
  if (!image.startsWith(prefix) || image.length === prefix.length) return undefined;
  const restored = fromProxyPath(image.slice(prefix.length)); // the proxy's own reading (registry-client)
  return "written" in restored ? restored.written : undefined;
}
