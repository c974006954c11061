/** Content digests: computing them and verifying streams against them. */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { RegistryError } from "./errors";

const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** True for a `sha256:`/`sha512:` digest with the right hex length. */
export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

/** The hash object for a digest's algorithm (throws DIGEST_MISMATCH-free INVALID_REFERENCE on others). */
function hasherFor(digest: string): Hash {
  if (!isDigest(digest))
    throw new RegistryError("INVALID_REFERENCE", `"${digest}" is not a valid sha256/sha512 digest`);
  return createHash(digest.startsWith("sha512:") ? "sha512" : "sha256");
}

/** Digest of bytes, with the algorithm of `like` (sha256 by default). */
export function digestOf(bytes: Buffer, like = "sha256:"): string {
  const algorithm = like.startsWith("sha512:") ? "sha512" : "sha256";
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
