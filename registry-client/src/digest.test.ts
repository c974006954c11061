import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { isRegistryError } from "./errors";
import { digestOf, isDigest, verifyingStream } from "./digest";

const sha = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Pipe chunks through the verifier; return what reached the consumer and the error, if any. */
async function run(
  chunks: Buffer[],
  digest: string,
  size?: number,
): Promise<{ received: Buffer; error?: unknown }> {
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      received.push(chunk);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(chunks), verifyingStream(digest, size), sink);
    return { received: Buffer.concat(received) };
  } catch (error) {
    return { received: Buffer.concat(received), error };
  }
}

describe("verifyingStream", () => {
  const chunks = [Buffer.from("hello "), Buffer.from("registry "), Buffer.from("world")];
  const whole = Buffer.concat(chunks);

  it("passes content that matches its digest and size through unchanged", async () => {
    const { received, error } = await run(chunks, sha(whole), whole.length);
    expect(error).toBeUndefined();
    expect(received.equals(whole)).toBe(true);
  });

  it("never delivers the last chunk of content that does not match", async () => {
    const { received, error } = await run(chunks, sha(Buffer.from("something else")));
    expect(isRegistryError(error, "DIGEST_MISMATCH")).toBe(true);
    expect(received.length).toBeLessThan(whole.length);
  });

  it.each([
    ["shorter than announced", whole.length + 1],
    ["longer than announced", whole.length - 1],
  ])("fails content %s", async (_name, size) => {
    const { error } = await run(chunks, sha(whole), size);
    expect(isRegistryError(error, "DIGEST_MISMATCH")).toBe(true);
  });

  it.each(["sha384", "sha512"])("supports %s", async algorithm => {
    const digest = `${algorithm}:${createHash(algorithm).update(whole).digest("hex")}`;
    expect((await run(chunks, digest)).error).toBeUndefined();
  });

  it("rejects a malformed digest up front", () => {
    expect(() => verifyingStream("sha256:abc")).toThrow(/not a valid/);
  });
});

describe("digestOf / isDigest", () => {
  it("computes sha256 by default and sha512 on request", () => {
    expect(digestOf(Buffer.from(""))).toBe(
      "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    expect(digestOf(Buffer.from(""), "sha512:").startsWith("sha512:cf83e1357eefb8bd")).toBe(true);
    expect(digestOf(Buffer.from(""), `sha384:${"0".repeat(96)}`).startsWith("sha384:38b060a751ac9638")).toBe(
      true,
    );
    expect(digestOf(Buffer.from(""), "md5:").startsWith("sha256:")).toBe(true);
  });

  it.each([
    ["sha256:" + "a".repeat(64), true],
    ["sha256:" + "A".repeat(64), false],
    ["sha256:" + "a".repeat(63), false],
    ["sha512:" + "0".repeat(128), true],
    ["sha384:" + "0".repeat(96), true],
    ["sha384:" + "0".repeat(64), false],
    ["sha256:" + "a".repeat(64) + "\n", false],
    ["md5:" + "0".repeat(32), false],
    ["", false],
  ])("isDigest(%s) = %s", (value, expected) => {
    expect(isDigest(value)).toBe(expected);
  });
});
