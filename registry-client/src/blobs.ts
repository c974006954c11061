/** Blob verbs: streamed GET (redirects, Range), existence check, cross-repository mount, streamed uploads. */
import { Readable } from "node:stream";
import type { RegistryClient, RegistryResponse } from "./client";
import { headerValue } from "./client";
import { verifyingStream } from "./digest";
import { RegistryError } from "./errors";

interface Options {
  signal?: AbortSignal;
}

/** A blob being downloaded. Consume or destroy {@link stream}; it applies backpressure to the registry. */
export interface BlobDownload {
  /** 200, or 206 for a Range request the registry honoured. */
  statusCode: number;
  /** Bytes in this response (Content-Length), when announced. */
  length: number | undefined;
  headers: RegistryResponse["headers"];
  stream: Readable;
}

function blobPath(repository: string, digest: string): string {
  return `/v2/${repository}/blobs/${digest}`;
}

/**
 * GET a blob as a stream, following redirects (S3-style 307, without forwarding credentials to another host).
 * With `range`, asks for bytes `start..end` (inclusive); check {@link BlobDownload.statusCode} for 206.
 */
export async function getBlob(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  options: Options & { range?: { start: number; end?: number } } = {},
): Promise<BlobDownload> {
  const headers: Record<string, string> = {};
  if (options.range) headers.range = `bytes=${options.range.start}-${options.range.end ?? ""}`;
  const response = await client.request({
    registry,
    repository,
    method: "GET",
    path: blobPath(repository, digest),
    headers,
    expect: [200, 206],
    notFound: "BLOB_UNKNOWN",
    followRedirects: true,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const length = headerValue(response.headers["content-length"]);
  return {
    statusCode: response.statusCode,
    length: length === undefined ? undefined : Number(length),
    headers: response.headers,
    stream: response.body,
  };
}

/** HEAD a blob: its size when present, undefined when not. */
export async function blobExists(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  options: Options & { actions?: ("pull" | "push")[] } = {},
): Promise<number | undefined> {
  const response = await client.request({
    registry,
    repository,
    actions: options.actions ?? ["pull"],
    method: "HEAD",
    path: blobPath(repository, digest),
    expect: [200, 404],
    followRedirects: true,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await response.body.dump();
  if (response.statusCode === 404) return undefined;
  return Number(headerValue(response.headers["content-length"]) ?? 0);
}

/**
 * Cross-repository mount: make `digest` of `fromRepository` available in `repository` without transferring
 * it. Resolves false when the registry declined (it then opened an upload session, which we cancel).
 */
export async function mountBlob(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  fromRepository: string,
  options: Options = {},
): Promise<boolean> {
  const query = new URLSearchParams({ mount: digest, from: fromRepository });
  const response = await client.request({
    registry,
    repository,
    actions: ["pull", "push"],
    extraScopes: [`repository:${fromRepository}:pull`],
    method: "POST",
    path: `/v2/${repository}/blobs/uploads/?${query.toString()}`,
    expect: [201, 202],
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await response.body.dump();
  if (response.statusCode === 201) return true;
  await cancelUpload(client, registry, repository, headerValue(response.headers.location));
  return false;
}

/** Upload options: monolithic (one streamed PUT, the default) or chunked (PATCHes of `chunkSize` bytes). */
export interface UploadOptions extends Options {
  /** When set, upload in chunks of this many bytes (for registries behind request-size limits). */
  chunkSize?: number;
  /** Called with the size of each chunk as it is sent (progress). */
  onBytes?: (n: number) => void;
}

/** An upload's content: bytes, a stream, or a function opening the stream once the upload session exists. */
export type UploadBody = Buffer | Readable | (() => Promise<Readable>);

/**
 * Upload a blob from a stream without buffering it, verifying `digest` and `size` on the way: a mismatch
 * aborts the upload before its last bytes are sent, so the registry never commits bad content.
 */
export async function uploadBlob(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  size: number,
  body: UploadBody,
  options: UploadOptions = {},
): Promise<void> {
  let location = await startUpload(client, registry, repository, options);
  let source: Readable | undefined;
  let verified: Readable | undefined;
  try {
    // Open the source only now: a download left unread while the upload session opens could time out.
    source = Buffer.isBuffer(body) ? Readable.from([body]) : typeof body === "function" ? await body() : body;
    const checker = verifyingStream(digest, size, registry, options.onBytes);
    verified = source.pipe(checker);
    source.once("error", err => checker.destroy(err));
    if (options.chunkSize !== undefined) {
      location = await uploadChunks(
        client,
        registry,
        repository,
        location,
        verified,
        options.chunkSize,
        options,
      );
      await finishUpload(client, registry, repository, location, digest, undefined, 0, options);
    } else {
      await finishUpload(client, registry, repository, location, digest, verified, size, options);
    }
  } catch (err) {
    verified?.destroy();
    source?.destroy();
    await cancelUpload(client, registry, repository, location);
    throw err;
  }
}

async function startUpload(
  client: RegistryClient,
  registry: string,
  repository: string,
  options: Options,
): Promise<string> {
  const response = await client.request({
    registry,
    repository,
    actions: ["pull", "push"],
    method: "POST",
    path: `/v2/${repository}/blobs/uploads/`,
    expect: [202],
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await response.body.dump();
  return absoluteLocation(response, registry);
}

async function uploadChunks(
  client: RegistryClient,
  registry: string,
  repository: string,
  firstLocation: string,
  stream: Readable,
  chunkSize: number,
  options: Options,
): Promise<string> {
  let location = firstLocation;
  let offset = 0;
  for await (const chunk of rechunk(stream, chunkSize)) {
    const response = await client.request({
      registry,
      repository,
      actions: ["pull", "push"],
      method: "PATCH",
      path: location,
      headers: {
        "content-type": "application/octet-stream",
        "content-range": `${offset}-${offset + chunk.length - 1}`,
        "content-length": String(chunk.length),
      },
      body: chunk,
      expect: [202],
      ...(options.signal ? { signal: options.signal } : {}),
    });
    await response.body.dump();
    offset += chunk.length;
    location = absoluteLocation(response, registry);
  }
  return location;
}

async function finishUpload(
  client: RegistryClient,
  registry: string,
  repository: string,
  location: string,
  digest: string,
  body: Readable | undefined,
  size: number,
  options: Options,
): Promise<void> {
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  const response = await client.request({
    registry,
    repository,
    actions: ["pull", "push"],
    method: "PUT",
    path: url.toString(),
    headers: { "content-type": "application/octet-stream", "content-length": String(size) },
    ...(body ? { body } : {}),
    expect: [201, 204],
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await response.body.dump();
}

async function cancelUpload(
  client: RegistryClient,
  registry: string,
  repository: string,
  location: string | undefined,
): Promise<void> {
  if (!location) return;
  try {
    const response = await client.request({
      registry,
      repository,
      actions: ["pull", "push"],
      method: "DELETE",
      path: new URL(location, client.baseUrl(registry)).toString(),
      expect: [204, 202, 200, 404],
    });
    await response.body.dump();
  } catch {
    // Best effort: the registry purges abandoned uploads on its own.
  }
}

function absoluteLocation(response: RegistryResponse, registry: string): string {
  const location = headerValue(response.headers.location);
  if (!location)
    throw new RegistryError("PROTOCOL_ERROR", `${registry} opened an upload without a Location header`, {
      registry,
    });
  return new URL(location, response.url).toString();
}

/** Regroup a stream into buffers of exactly `size` bytes (the last one shorter). Memory: one chunk. */
async function* rechunk(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  for await (const data of stream) {
    let buf = data as Buffer;
    while (buf.length > 0) {
      const take = Math.min(size - length, buf.length);
      parts.push(buf.subarray(0, take));
      length += take;
      buf = buf.subarray(take);
      if (length === size) {
        yield Buffer.concat(parts);
        parts = [];
        length = 0;
      }
    }
  }
  if (length > 0) yield Buffer.concat(parts);
}

/** Stream a blob from one registry to another: GET → verify → PUT, never buffered. */
export async function transferBlob(
  source: { client: RegistryClient; registry: string; repository: string },
  destination: { client: RegistryClient; registry: string; repository: string },
  blob: { digest: string; size: number },
  options: UploadOptions = {},
): Promise<void> {
  const open = async (): Promise<Readable> =>
    (await getBlob(source.client, source.registry, source.repository, blob.digest, options)).stream;
  await uploadBlob(
    destination.client,
    destination.registry,
    destination.repository,
    blob.digest,
    blob.size,
    open,
    options,
  );
}
