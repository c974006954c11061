/**
 * copyImage: a byte-exact image copy between registries. Manifests and indexes are stored exactly as fetched,
 * so every digest is preserved and a digest-pinned reference pulls from the copy. Blobs stream from source to
 * destination, verified on the way, with bounded parallelism; blobs the destination already has are skipped.
 */
import type { RegistryClient } from "./client";
import { blobExists, mountBlob, transferBlob } from "./blobs";
import { RegistryError } from "./errors";
import { getManifest, parseManifest, putManifest, type Descriptor, type Manifest } from "./manifests";
import { parseImageReference } from "./reference";
import { DEFAULT_RETRY, withRetries, type RetryOptions } from "./transport";
import type { ImageReference } from "./types";

/** Progress of a copy, in bytes of blobs (skipped blobs count as done). */
export interface CopyProgress {
  bytesDone: number;
  bytesTotal: number;
  blobsDone: number;
  blobsTotal: number;
}

/** Options of {@link copyImage}. */
export interface CopyOptions {
  /**
   * Platforms to copy from an index, as `os/arch[/variant]` (e.g. `linux/arm/v7`) or just `arch`. Default: all.
   * The whole original index is stored anyway, so its digest is preserved (the destination registry must then
   * accept an index whose other children are absent).
   */
  platforms?: string[];
  /** Blobs transferred at once (default 4). */
  concurrency?: number;
  /** Called as bytes flow; keep it cheap. */
  onProgress?: (progress: CopyProgress) => void;
  signal?: AbortSignal;
  /** Client for the destination when it needs other settings or credentials (default: the source client). */
  destinationClient?: RegistryClient;
  /** Upload in chunks of this many bytes instead of one streamed PUT per blob. */
  chunkSize?: number;
  /** Retries of a whole blob transfer after a transport error, 429 or 5xx. */
  retry?: Partial<RetryOptions>;
}

/** What {@link copyImage} did. */
export interface CopyResult {
  /** Digest of the top manifest or index: identical at source and destination. */
  digest: string;
  mediaType: string;
  /** Image manifests copied (1 for a single-arch image, the chosen platforms' for an index). */
  manifests: number;
  blobsCopied: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesCopied: number;
}

interface Endpoint {
  client: RegistryClient;
  ref: ImageReference;
}

/** Copy an image (manifest or index with the chosen platforms) from `source` to `destination`. */
export async function copyImage(
  client: RegistryClient,
  source: ImageReference | string,
  destination: ImageReference | string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const src: Endpoint = { client, ref: typeof source === "string" ? parseImageReference(source) : source };
  const dst: Endpoint = {
    client: options.destinationClient ?? client,
    ref: typeof destination === "string" ? parseImageReference(destination) : destination,
  };
  const signalOpt = options.signal ? { signal: options.signal } : {};
  const top = await getManifest(src.client, src.ref, signalOpt);
  if (dst.ref.digest && !dst.ref.tag && dst.ref.digest !== top.digest) {
    throw new RegistryError(
      "DIGEST_MISMATCH",
      `${src.ref.canonical} is ${top.digest}, not the destination's ${dst.ref.digest}`,
    );
  }
  const images = await resolveImages(src, top, options);
  const blobs = uniqueBlobs(images.map(i => i.blobs).flat());
  const stats = await copyBlobs(src, dst, blobs, options);
  for (const image of images) {
    if (image.manifest !== top)
      await putManifest(
        dst.client,
        dst.ref.registry,
        dst.ref.repository,
        image.manifest.digest,
        image.manifest,
        signalOpt,
      );
  }
  const reference = dst.ref.tag ?? top.digest;
  await putManifest(dst.client, dst.ref.registry, dst.ref.repository, reference, top, signalOpt);
  const manifests = images.length === 1 ? 1 : images.length - 1; // an index counts its image manifests
  return { digest: top.digest, mediaType: top.mediaType, manifests, ...stats };
}

interface ImageToCopy {
  manifest: Manifest;
  blobs: Descriptor[];
}

async function resolveImages(src: Endpoint, top: Manifest, options: CopyOptions): Promise<ImageToCopy[]> {
  const parsed = parseManifest(top);
  if (parsed.kind === "image") return [{ manifest: top, blobs: [parsed.config, ...parsed.layers] }];
  const wanted = parsed.manifests.filter(d => platformWanted(d, options.platforms));
  if (wanted.length === 0) {
    throw new RegistryError(
      "MANIFEST_UNKNOWN",
      `${src.ref.canonical} has no manifest for platforms ${options.platforms?.join(", ")}`,
    );
  }
  const children = await mapLimit(wanted, options.concurrency ?? 4, async d => {
    const child = await getManifest(
      src.client,
      { ...src.ref, digest: d.digest },
      options.signal ? { signal: options.signal } : {},
    );
    const inner = parseManifest(child);
    if (inner.kind === "index") return [] as ImageToCopy[]; // nested indexes are rare; they stay referenced only
    return [{ manifest: child, blobs: [inner.config, ...inner.layers] }];
  });
  return [...children.flat(), { manifest: top, blobs: [] }];
}

/** `linux/arm/v7`, `arm/v7`, `arm64` or `linux/amd64` against a descriptor's platform. */
export function platformWanted(descriptor: Descriptor, platforms: string[] | undefined): boolean {
  if (!platforms || platforms.length === 0) return true;
  const p = descriptor.platform;
  if (!p) return false;
  return platforms.some(spec => {
    const parts = spec.split("/");
    const [os, arch, variant] =
      parts.length === 1 || (parts.length === 2 && parts[0] !== "linux" && parts[0] !== "windows")
        ? [undefined, parts[0], parts[1]]
        : [parts[0], parts[1], parts[2]];
    return (
      (os === undefined || os === p.os) &&
      arch === p.architecture &&
      (variant === undefined || variant === p.variant)
    );
  });
}

function uniqueBlobs(descriptors: Descriptor[]): Descriptor[] {
  const seen = new Map<string, Descriptor>();
  for (const d of descriptors) {
    // Foreign (non-distributable) layers live at their URLs, not in registries: skopeo skips them too.
    if (d.urls && d.urls.length > 0) continue;
    if (!seen.has(d.digest)) seen.set(d.digest, d);
  }
  return [...seen.values()];
}

async function copyBlobs(
  src: Endpoint,
  dst: Endpoint,
  blobs: Descriptor[],
  options: CopyOptions,
): Promise<Omit<CopyResult, "digest" | "mediaType" | "manifests">> {
  const progress: CopyProgress = {
    bytesDone: 0,
    bytesTotal: blobs.reduce((n, b) => n + b.size, 0),
    blobsDone: 0,
    blobsTotal: blobs.length,
  };
  const stats = { blobsCopied: 0, blobsSkipped: 0, blobsMounted: 0, bytesCopied: 0 };
  const report = (): void => options.onProgress?.({ ...progress });
  report();
  await mapLimit(blobs, options.concurrency ?? 4, async blob => {
    const how = await copyBlob(src, dst, blob, options, progress, report);
    stats[how]++;
    if (how === "blobsCopied") stats.bytesCopied += blob.size;
    else progress.bytesDone += blob.size;
    progress.blobsDone++;
    report();
  });
  return stats;
}

/**
 * One blob: skipped when the destination has it, mounted from the source repository when both are in the same
 * registry, otherwise transferred with retries (each retry starts the blob over, and its bytes leave `progress`).
 */
async function copyBlob(
  src: Endpoint,
  dst: Endpoint,
  blob: Descriptor,
  options: CopyOptions,
  progress: CopyProgress,
  report: () => void,
): Promise<"blobsSkipped" | "blobsMounted" | "blobsCopied"> {
  const signalOpt = options.signal ? { signal: options.signal } : {};
  const exists = await blobExists(dst.client, dst.ref.registry, dst.ref.repository, blob.digest, {
    ...signalOpt,
    actions: ["pull", "push"],
  });
  if (exists !== undefined) return "blobsSkipped";
  const sameRegistry = src.ref.registry === dst.ref.registry && src.client === dst.client;
  const { registry, repository } = dst.ref;
  if (
    sameRegistry &&
    (await mountBlob(dst.client, registry, repository, blob.digest, src.ref.repository, signalOpt))
  )
    return "blobsMounted";
  const transfer = async (): Promise<void> => {
    let sent = 0;
    try {
      await transferBlob(
        { client: src.client, registry: src.ref.registry, repository: src.ref.repository },
        { client: dst.client, registry, repository },
        blob,
        {
          ...signalOpt,
          ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
          onBytes: n => {
            sent += n;
            progress.bytesDone += n;
            report();
          },
        },
      );
    } catch (err) {
      progress.bytesDone -= sent; // the retry starts the blob over
      throw err;
    }
  };
  await withRetries({ ...DEFAULT_RETRY, ...options.retry }, transfer, signalOpt);
  return "blobsCopied";
}

/** Map with at most `limit` promises in flight; rejects with the first error after in-flight work settles. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
  return results;
}
