/** Content digests: computing them and verifying streams against them. */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { RegistryError } from "./errors";

/**
 * Hex length of each digest algorithm kuik accepts: go-digest's registered ones, which are also containerd's.
 * The one table behind reference parsing, content verification and the proxy's routes.
 */
export const DIGEST_HEX_LENGTH: ReadonlyMap<string, number> = new Map([
  ["sha256", 64],
  ["sha384", 96],
  ["sha512", 128],
]);

const DIGEST_RE = /^([a-z0-9]+):([a-f0-9]+)$/;

/** The algorithm of a well-formed digest (`<algorithm>:<lower-case hex of the right length>`), else undefined. */
function algorithmOf(value: string): string | undefined {
  const match = DIGEST_RE.exec(value);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  return DIGEST_HEX_LENGTH.get(match[1]) === match[2].length ? match[1] : undefined;
}

/** True for a sha256/sha384/sha512 digest with lower-case hex of the right length. */
export function isDigest(value: string): boolean {
  return algorithmOf(value) !== undefined;
}

/** The hash object for a digest's algorithm (INVALID_REFERENCE for anything but a valid digest). */
function hasherFor(digest: string): Hash {
  const algorithm = algorithmOf(digest);
  if (algorithm === undefined)
    throw new RegistryError("INVALID_REFERENCE", `"${digest}" is not a valid sha256/sha384/sha512 digest`);
  return createHash(algorithm);
}

/** Digest of bytes, with the algorithm of the digest `like` (sha256 when `like` names no known algorithm). */
export function digestOf(bytes: Buffer, like = "sha256:"): string {
  const prefix = like.slice(0, like.indexOf(":"));
  const algorithm = DIGEST_HEX_LENGTH.has(prefix) ? prefix : "sha256";
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

/**
 * A pass-through stream that hashes what flows through it and fails with DIGEST_MISMATCH when the content does
 * not match `digest` (or `size`, when given). It holds back the last chunk until the hash is checked, so a
 * consumer never receives the complete (bad) content: an upload fed by it cannot be committed with bad bytes.
 */
export function verifyingStream(
  digest: string,
  size?: number,
  registry?: string,
  onBytes?: (n: number) => void,
): Transform {
  const hash = hasherFor(digest);
  let held: Buffer | undefined;
  let seen = 0;
  const fail = (message: string): RegistryError =>
    new RegistryError("DIGEST_MISMATCH", message, registry === undefined ? {} : { registry });
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      seen += chunk.length;
      if (size !== undefined && seen > size) {
        callback(fail(`blob ${digest} is longer than its announced ${size} bytes`));
        return;
      }
      hash.update(chunk);
      onBytes?.(chunk.length);
      const previous = held;
      held = chunk;
      callback(null, previous);
    },
    flush(callback: TransformCallback): void {
      if (size !== undefined && seen !== size) {
        callback(fail(`blob ${digest}: got ${seen} bytes, expected ${size}`));
        return;
      }
      const actual = `${digest.slice(0, digest.indexOf(":"))}:${hash.digest("hex")}`;
      if (actual !== digest) {
        callback(fail(`blob content hashes to ${actual}, not ${digest}`));
        return;
      }
      callback(null, held);
    },
  });
}
