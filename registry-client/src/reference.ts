/**
 * Image references: the distribution/reference grammar with Docker's normalisation, as Go's
 * `reference.ParseNormalizedNamed` (github.com/distribution/reference v0.6.0) + `TagNameOnly` do it, so that
 * kuik names an image exactly as the kubelet and containerd do.
 *
 * Normalisation rules (checked against the Go implementation, see reference.test.ts):
 * - a single-component name is a Docker Hub official image: `nginx` → `docker.io/library/nginx:latest`;
 * - the first `/`-separated component is a registry only if it contains `.` or `:`, is `localhost`, or contains an
 *   upper-case letter (registry hosts may be upper-case, repositories may not); otherwise it is a Docker Hub
 *   namespace: `bitnami/redis` → `docker.io/bitnami/redis`;
 * - only `index.docker.io` is rewritten to `docker.io`; `registry-1.docker.io` (Docker Hub's real API host) is
 *   kept as written and gets no `library/` prefix, as in Go;
 * - `library/` is added only on Docker Hub and only to single-component repositories (`docker.io/ubuntu`);
 * - `latest` is added only when there is neither a tag nor a digest; a reference with both keeps both.
 *
 * Deliberate deviations from Go, all on inputs no registry serves:
 * - Go accepts `foo_bar.com/x` as a name with an *empty* domain (the first component fails the host grammar but
 *   the whole string passes the path grammar); we reject it as an invalid registry host;
 * - the digest algorithms are sha256, sha384 and sha512 (those containerd registers); any other is rejected;
 * - inputs longer than {@link MAX_REFERENCE_LENGTH} are rejected before any matching.
 */
import { DIGEST_HEX_LENGTH } from "./digest";
import { RegistryError } from "./errors";
import type { ImageReference } from "./types";

/** Docker Hub's canonical registry name. */
export const DOCKER_HUB_REGISTRY = "docker.io";
/** The legacy Docker Hub name that normalisation rewrites to {@link DOCKER_HUB_REGISTRY}. */
export const LEGACY_DOCKER_HUB_REGISTRY = "index.docker.io";
/** The tag added to references that have neither a tag nor a digest. */
export const DEFAULT_TAG = "latest";
/** Longest repository path accepted (the registry host is not counted, as in Go since reference v0.6.0). */
export const MAX_REPOSITORY_LENGTH = 255;
/**
 * Longest input accepted. Go has no such cap; ours bounds the regex work on hostile input. A valid reference is
 * far shorter: host (≤ 253) + path (≤ 255) + tag (≤ 128) + sha512 digest (135).
 */
export const MAX_REFERENCE_LENGTH = 1024;

const OFFICIAL_PREFIX = "library/";
const LOCALHOST = "localhost";

// The grammar of distribution/reference regexp.go, restated. Each regex is anchored and applied to one
// already-split part, so there is no backtracking across parts.
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const REPOSITORY_PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
// IPv6 in brackets, compressed or not; zones (%eth0) and IPv4-mapped forms are excluded, as in Go.
const HOST_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const TAG_RE = /^\w[\w.-]{0,127}$/;
// Go requires 32+ hex digits here; we take any length so that a short digest gets the precise length message.
const DIGEST_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]+$/;
const IMAGE_ID_RE = /^[a-f0-9]{64}$/;
const SCHEME_RE = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;
const WHITESPACE_RE = /\s/;
/** A `.` or `:` in the first component makes it a registry host (Docker's rule). */
const HOST_HINT_RE = /[.:]/;

const LOWER_HEX_RE = /^[a-f0-9]+$/;

/** The parts of a reference before validation. */
interface SplitReference {
  registry: string;
  /** Repository path, with `library/` when normalisation added it. */
  repository: string;
  /** Repository path as the user wrote it, for error messages. */
  writtenRepository: string;
  tag: string | undefined;
  digest: string | undefined;
}

function invalid(input: string, reason: string): RegistryError {
  return new RegistryError(
    "INVALID_REFERENCE",
    `invalid image reference ${JSON.stringify(input)}: ${reason}`,
  );
}

/**
 * Parses an image reference as the kubelet does and returns it normalised.
 *
 * @example
 * parseImageReference("nginx");
 * // { registry: "docker.io", repository: "library/nginx", tag: "latest",
 * //   name: "docker.io/library/nginx", canonical: "docker.io/library/nginx:latest" }
 * parseImageReference("[::1]:5000/app@sha256:…"); // registry "[::1]:5000", digest only, no tag
 *
 * @throws {@link RegistryError} `INVALID_REFERENCE`, whose message quotes the input and says what is wrong.
 */
export function parseImageReference(input: string): ImageReference {
  checkRawInput(input);
  const parts = splitReference(input);
  validateParts(input, parts);
  const { registry, repository, digest } = parts;
  const tag = parts.tag ?? (digest === undefined ? DEFAULT_TAG : undefined);
  const name = `${registry}/${repository}`;
  const ref: ImageReference = {
    registry,
    repository,
    name,
    canonical: formatImageReference({ name, tag, digest }),
  };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/**
 * Parses a repository name (no tag, no digest), e.g. the `spec.name` of a Repository object, with the same
 * normalisation as {@link parseImageReference}: `nginx` → `docker.io/library/nginx`.
 *
 * @throws {@link RegistryError} `INVALID_REFERENCE`, also when the input carries a tag or a digest.
 */
export function parseRepositoryName(input: string): Pick<ImageReference, "registry" | "repository" | "name"> {
  checkRawInput(input);
  const parts = splitReference(input);
  validateParts(input, parts);
  if (parts.tag !== undefined || parts.digest !== undefined) {
    throw invalid(input, "a repository name must not have a tag or a digest");
  }
  return {
    registry: parts.registry,
    repository: parts.repository,
    name: `${parts.registry}/${parts.repository}`,
  };
}

/**
 * Formats a reference as `registry/repository[:tag][@digest]` (both kept when both are set).
 * Accepts an {@link ImageReference} or any object with `name` or `registry` + `repository`.
 */
export function formatImageReference(
  ref: ({ name: string } | { registry: string; repository: string }) & { tag?: string; digest?: string },
): string {
  const name = "name" in ref ? ref.name : `${ref.registry}/${ref.repository}`;
  return (
    name + (ref.tag === undefined ? "" : `:${ref.tag}`) + (ref.digest === undefined ? "" : `@${ref.digest}`)
  );
}

/** True when `path` is a valid repository path (`library/nginx`, no registry, tag or digest). */
export function isRepositoryPath(path: string): boolean {
  return path.length <= MAX_REPOSITORY_LENGTH && REPOSITORY_PATH_RE.test(path);
}

/** Rejections that do not depend on the grammar, with messages a human can act on. */
function checkRawInput(input: string): void {
  if (input.length === 0) throw invalid(input, "must not be empty");
  if (input.length > MAX_REFERENCE_LENGTH) {
    throw invalid(input, `longer than ${MAX_REFERENCE_LENGTH} characters`);
  }
  if (WHITESPACE_RE.test(input)) throw invalid(input, "must not contain whitespace");
  if (SCHEME_RE.test(input)) throw invalid(input, "must not start with a URL scheme such as https://");
  if (IMAGE_ID_RE.test(input)) {
    throw invalid(input, "a 64-character hexadecimal string is an image ID, not a repository name");
  }
}

/**
 * Go's `splitDockerDomain`, then the tag/digest split. A repository path never contains `:` or `@`, so the tag
 * starts at the first `:` after the registry and the digest at the first `@`.
 */
function splitReference(input: string): SplitReference {
  const slash = input.indexOf("/");
  let registry = DOCKER_HUB_REGISTRY;
  let rest = input;
  if (slash >= 0) {
    const first = input.slice(0, slash);
    if (first === LOCALHOST || HOST_HINT_RE.test(first) || first.toLowerCase() !== first) {
      registry = first === LEGACY_DOCKER_HUB_REGISTRY ? DOCKER_HUB_REGISTRY : first;
      rest = input.slice(slash + 1);
    }
  }
  const at = rest.indexOf("@");
  const beforeDigest = at < 0 ? rest : rest.slice(0, at);
  const colon = beforeDigest.indexOf(":");
  const written = colon < 0 ? beforeDigest : beforeDigest.slice(0, colon);
  const addLibrary = registry === DOCKER_HUB_REGISTRY && !written.includes("/");
  return {
    registry,
    repository: addLibrary ? OFFICIAL_PREFIX + written : written,
    writtenRepository: written,
    tag: colon < 0 ? undefined : beforeDigest.slice(colon + 1),
    digest: at < 0 ? undefined : rest.slice(at + 1),
  };
}

function validateParts(input: string, parts: SplitReference): void {
  const { registry, repository, writtenRepository, tag, digest } = parts;
  // Docker's own wording, checked first as Go does, so `Nginx` says "lowercase" rather than "invalid".
  if (writtenRepository.toLowerCase() !== writtenRepository) {
    throw invalid(input, `repository name must be lowercase (${JSON.stringify(writtenRepository)})`);
  }
  if (!HOST_RE.test(registry)) throw invalid(input, `invalid registry host ${JSON.stringify(registry)}`);
  if (writtenRepository.length === 0) throw invalid(input, "missing repository name");
  if (!REPOSITORY_PATH_RE.test(repository)) {
    throw invalid(
      input,
      `invalid repository name ${JSON.stringify(writtenRepository)}: each "/"-separated component must be ` +
        `lowercase letters and digits, separated by ".", "_", "__" or dashes`,
    );
  }
  if (repository.length > MAX_REPOSITORY_LENGTH) {
    throw invalid(input, `repository name must not be more than ${MAX_REPOSITORY_LENGTH} characters`);
  }
  if (tag !== undefined && !TAG_RE.test(tag)) {
    throw invalid(input, `invalid tag ${JSON.stringify(tag)}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }
  if (digest !== undefined) validateDigest(input, digest);
}

/** go-digest's `Digest.Validate` for the algorithms we support. */
function validateDigest(input: string, digest: string): void {
  if (!DIGEST_RE.test(digest)) {
    throw invalid(input, `invalid digest ${JSON.stringify(digest)}: expected <algorithm>:<hex>`);
  }
  const colon = digest.indexOf(":");
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const expected = DIGEST_HEX_LENGTH.get(algorithm);
  if (expected === undefined) {
    throw invalid(
      input,
      `unsupported digest algorithm ${JSON.stringify(algorithm)} (sha256, sha384, sha512)`,
    );
  }
  if (hex.length !== expected) {
    throw invalid(input, `invalid digest: ${algorithm} needs ${expected} hex characters, got ${hex.length}`);
  }
  if (!LOWER_HEX_RE.test(hex)) throw invalid(input, "invalid digest: the hex part must be lower-case");
}
