/** Manifest verbs: GET/HEAD (every OCI and Docker v2 type, schema 1 refused), byte-exact PUT, DELETE by digest. */
import type { RegistryClient } from "./client";
import { headerValue } from "./client";
import { digestOf, isDigest } from "./digest";
import { RegistryError } from "./errors";
import { MANIFEST_ACCEPT, baseMediaType, isIndexMediaType, isSchema1MediaType } from "./media-types";
import type { ImageReference } from "./types";

/** A manifest exactly as the registry served it. */
export interface Manifest {
  mediaType: string;
  /** Digest of {@link bytes}: the manifest's identity. */
  digest: string;
  size: number;
  /** The exact bytes: store these, never a re-serialisation, or the digest changes. */
  bytes: Buffer;
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  urls?: string[];
}

/** A manifest's references: children of an index, or config and layers of an image. */
export type ParsedManifest =
  | { kind: "index"; manifests: Descriptor[] }
  | { kind: "image"; config: Descriptor; layers: Descriptor[] };

/** Distribution refuses manifests over 4 MiB; so do we. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

interface Options {
  signal?: AbortSignal;
}

function manifestPath(repository: string, reference: string): string {
  return `/v2/${repository}/manifests/${reference}`;
}

function referenceOf(ref: ImageReference): string {
  const reference = ref.digest ?? ref.tag;
  if (!reference) throw new RegistryError("INVALID_REFERENCE", `${ref.canonical} has neither tag nor digest`);
  return reference;
}

/** GET a manifest, verifying its digest (against the reference's digest and Docker-Content-Digest). */
export async function getManifest(
  client: RegistryClient,
  ref: ImageReference,
  options: Options = {},
): Promise<Manifest> {
  const { response, bytes } = await client.requestBuffer(
    {
      registry: ref.registry,
      repository: ref.repository,
      method: "GET",
      path: manifestPath(ref.repository, referenceOf(ref)),
      headers: { accept: MANIFEST_ACCEPT },
      expect: [200],
      notFound: "MANIFEST_UNKNOWN",
      ...(options.signal ? { signal: options.signal } : {}),
    },
    MAX_MANIFEST_BYTES,
  );
  const mediaType = mediaTypeOf(headerValue(response.headers["content-type"]), bytes, ref);
  const announced = headerValue(response.headers["docker-content-digest"]);
  const digest = digestOf(bytes, ref.digest ?? announced ?? "sha256:");
  if (ref.digest && ref.digest !== digest) {
    throw new RegistryError(
      "DIGEST_MISMATCH",
      `${ref.canonical}: the registry served a manifest hashing to ${digest}`,
      {
        registry: ref.registry,
      },
    );
  }
  const sameAlgorithm = announced?.split(":")[0] === digest.split(":")[0];
  // When the algorithms agree, compare with the digest already computed: hash a 4 MiB manifest once, not twice.
  if (
    announced &&
    isDigest(announced) &&
    (sameAlgorithm ? digest : digestOf(bytes, announced)) !== announced
  ) {
    throw new RegistryError(
      "DIGEST_MISMATCH",
      `${ref.canonical}: Docker-Content-Digest ${announced} does not match the body`,
      {
        registry: ref.registry,
      },
    );
  }
  return { mediaType, digest, size: bytes.length, bytes };
}

/** HEAD a manifest: its descriptor without the body (a tag → digest resolution costs no pull quota on Docker Hub). */
export async function headManifest(
  client: RegistryClient,
  ref: ImageReference,
  options: Options = {},
): Promise<Descriptor> {
  const response = await client.request({
    registry: ref.registry,
    repository: ref.repository,
    method: "HEAD",
    path: manifestPath(ref.repository, referenceOf(ref)),
    headers: { accept: MANIFEST_ACCEPT },
    expect: [200],
    notFound: "MANIFEST_UNKNOWN",
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await response.body.dump();
  const digest = headerValue(response.headers["docker-content-digest"]) ?? ref.digest;
  const mediaType = baseMediaType(headerValue(response.headers["content-type"]));
  if (!digest || !isDigest(digest)) {
    throw new RegistryError("PROTOCOL_ERROR", `${ref.canonical}: HEAD gave no Docker-Content-Digest`, {
      registry: ref.registry,
    });
  }
  if (isSchema1MediaType(mediaType)) throw schema1Error(ref);
  return { mediaType, digest, size: Number(headerValue(response.headers["content-length"]) ?? 0) };
}

/** PUT a manifest's exact bytes under a tag or digest; returns the digest the registry stored it under. */
export async function putManifest(
  client: RegistryClient,
  registry: string,
  repository: string,
  reference: string,
  manifest: Pick<Manifest, "mediaType" | "bytes">,
  options: Options = {},
): Promise<string> {
  const response = await client.request({
    registry,
    repository,
    actions: ["pull", "push"],
    method: "PUT",
    path: manifestPath(repository, reference),
    headers: { "content-type": manifest.mediaType },
    body: manifest.bytes,
    expect: [201, 200],
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await response.body.dump();
  const announced = headerValue(response.headers["docker-content-digest"]);
  // The registry may answer in another algorithm (sha512): hash what we sent with the same one.
  const expected = digestOf(manifest.bytes, announced ?? "sha256:");
  const stored = announced ?? expected;
  if (stored !== expected) {
    throw new RegistryError(
      "DIGEST_MISMATCH",
      `${registry}/${repository}: stored manifest as ${stored}, sent ${expected}`,
      {
        registry,
      },
    );
  }
  return stored;
}

/** DELETE a manifest by digest. Resolves false when it was already gone. */
export async function deleteManifest(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  options: Options = {},
): Promise<boolean> {
  if (!isDigest(digest))
    throw new RegistryError("INVALID_REFERENCE", `manifests are deleted by digest, not "${digest}"`);
  const response = await client.request({
    registry,
    repository,
    actions: ["delete"],
    method: "DELETE",
    path: manifestPath(repository, digest),
    expect: [202, 200, 404],
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await response.body.dump();
  return response.statusCode !== 404;
}

function schema1Error(ref: ImageReference): RegistryError {
  return new RegistryError(
    "UNSUPPORTED_MEDIA_TYPE",
    `${ref.canonical} is a Docker schema 1 manifest: deprecated, not content-addressable, and not supported; rebuild or re-push the image`,
    { registry: ref.registry },
  );
}

function mediaTypeOf(contentType: string | undefined, bytes: Buffer, ref: ImageReference): string {
  let mediaType = baseMediaType(contentType);
  let parsed: { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown } = {};
  try {
    parsed = JSON.parse(bytes.toString("utf8")) as typeof parsed;
  } catch {
    throw new RegistryError("MANIFEST_INVALID", `${ref.canonical}: the manifest is not JSON`, {
      registry: ref.registry,
    });
  }
  if (parsed.schemaVersion === 1 || (isSchema1MediaType(mediaType) && typeof parsed.mediaType !== "string"))
    throw schema1Error(ref);
  // Some registries send a generic Content-Type; the manifest's own mediaType field then decides.
  if (!mediaType.startsWith("application/vnd.") && typeof parsed.mediaType === "string")
    mediaType = parsed.mediaType;
  if (!mediaType.startsWith("application/vnd.")) {
    mediaType = Array.isArray(parsed.manifests)
      ? "application/vnd.oci.image.index.v1+json"
      : "application/vnd.oci.image.manifest.v1+json";
  }
  return mediaType;
}

/** Parse the references out of a manifest (index children, or config + layers). */
export function parseManifest(manifest: Pick<Manifest, "mediaType" | "bytes">): ParsedManifest {
  const doc = JSON.parse(manifest.bytes.toString("utf8")) as {
    manifests?: Descriptor[];
    config?: Descriptor;
    layers?: Descriptor[];
  };
  if (isIndexMediaType(manifest.mediaType) || (Array.isArray(doc.manifests) && !doc.config)) {
    return { kind: "index", manifests: (doc.manifests ?? []).map(checkDescriptor) };
  }
  if (!doc.config) throw new RegistryError("MANIFEST_INVALID", "image manifest without a config descriptor");
  return {
    kind: "image",
    config: checkDescriptor(doc.config),
    layers: (doc.layers ?? []).map(checkDescriptor),
  };
}

function checkDescriptor(d: Descriptor): Descriptor {
  if (typeof d?.digest !== "string" || !isDigest(d.digest) || typeof d.size !== "number" || d.size < 0) {
    throw new RegistryError("MANIFEST_INVALID", `invalid descriptor ${JSON.stringify(d)?.slice(0, 200)}`);
  }
  return d;
}
