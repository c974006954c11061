import { describe, expect, it } from "vitest";
import { RegistryError, isRetryable } from "./errors";
import { backoffDelay, parseRetryAfter, toRegistryError, withRetries } from "./transport";

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it.each([
    ["120", 120_000],
    [" 3 ", 3_000],
    ["Thu, 01 Jan 2026 00:00:10 GMT", 10_000],
    ["Wed, 31 Dec 2025 23:00:00 GMT", 0],
    ["soon", undefined],
    ["", undefined],
    [undefined, undefined],
  ])("%s → %s ms", (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe("backoffDelay", () => {
  const policy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1_000 };
  it("doubles per attempt, with jitter, capped", () => {
    expect(backoffDelay(1, policy, undefined, () => 0.5)).toBe(100);
    expect(backoffDelay(3, policy, undefined, () => 0.5)).toBe(400);
    expect(backoffDelay(10, policy, undefined, () => 0.5)).toBe(1_000);
    expect(backoffDelay(1, policy, undefined, () => 0)).toBe(80);
  });
  it("waits at least what Retry-After asked, within the cap", () => {
    const tooMany = new RegistryError("TOOMANYREQUESTS", "slow down", { statusCode: 429, retryAfterMs: 700 });
    expect(backoffDelay(1, policy, tooMany, () => 0.5)).toBe(700);
    const long = new RegistryError("TOOMANYREQUESTS", "slow down", { statusCode: 429, retryAfterMs: 60_000 });
    expect(backoffDelay(1, policy, long, () => 0.5)).toBe(1_000);
  });
});

describe("isRetryable", () => {
  it.each([
    [new RegistryError("UPSTREAM_UNREACHABLE", "refused"), true],
    [new RegistryError("UPSTREAM_TIMEOUT", "slow"), true],
    [new RegistryError("TOOMANYREQUESTS", "", { statusCode: 429 }), true],
    [new RegistryError("HTTP_ERROR", "", { statusCode: 503 }), true],
    [new RegistryError("UNAUTHORIZED", "", { statusCode: 401 }), false],
    [new RegistryError("MANIFEST_UNKNOWN", "", { statusCode: 404 }), false],
    [new RegistryError("DENIED", "", { statusCode: 403 }), false],
    [new RegistryError("DIGEST_MISMATCH", ""), false],
    [new Error("plain"), false],
  ])("%s → %s", (err, expected) => {
    expect(isRetryable(err)).toBe(expected);
  });
});

describe("withRetries", () => {
  const fast = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
  it("retries retryable failures up to the attempt budget", async () => {
    let calls = 0;
    await expect(
      withRetries(fast, async () => {
        calls++;
        throw new RegistryError("UPSTREAM_UNREACHABLE", "down");
      }),
    ).rejects.toThrow("down");
    expect(calls).toBe(3);
  });
  it("never multiplies attempts when retry loops nest (an inner give-up is final)", async () => {
    let inner = 0;
    let outer = 0;
    await expect(
      withRetries(fast, async () => {
        outer++;
        return withRetries(fast, async () => {
          inner++;
          throw new RegistryError("UPSTREAM_UNREACHABLE", "down");
        });
      }),
    ).rejects.toSatisfy((e: RegistryError) => e.retriesSpent);
    expect([outer, inner]).toEqual([1, 3]);
  });
  it("marks a copy, never the error itself: another caller sharing it keeps its own retries", async () => {
    const shared = new RegistryError("UPSTREAM_UNREACHABLE", "token server down", { statusCode: 503 });
    const given = await withRetries(fast, async () => {
      throw shared;
    }).catch((e: unknown) => e as RegistryError);
    expect([given.retriesSpent, given.statusCode, given.cause]).toEqual([true, 503, shared]);
    expect(shared.retriesSpent).toBe(false);
    let calls = 0;
    await withRetries(fast, async () => {
      calls++;
      throw shared;
    }).catch(() => undefined);
    expect(calls).toBe(3);
  });
  it("lets an enclosing loop retry what an inner loop did not give up on (a failure mid-body)", async () => {
    let outer = 0;
    const value = await withRetries(fast, async () => {
      if (++outer < 3) throw new RegistryError("UPSTREAM_UNREACHABLE", "reset mid-blob");
      return "ok";
    });
    expect([value, outer]).toEqual(["ok", 3]);
  });
  it("does not retry a 4xx", async () => {
    let calls = 0;
    await expect(
      withRetries(fast, async () => {
        calls++;
        throw new RegistryError("UNAUTHORIZED", "no", { statusCode: 401 });
      }),
    ).rejects.toThrow("no");
    expect(calls).toBe(1);
  });
  it("returns the first success", async () => {
    let calls = 0;
    const value = await withRetries(fast, async () => {
      if (++calls < 2) throw new RegistryError("HTTP_ERROR", "502", { statusCode: 502 });
      return "ok";
    });
    expect([value, calls]).toEqual(["ok", 2]);
  });
});

describe("toRegistryError", () => {
  it.each([
    [{ code: "UND_ERR_HEADERS_TIMEOUT" }, "UPSTREAM_TIMEOUT"],
    [{ code: "UND_ERR_CONNECT_TIMEOUT" }, "UPSTREAM_TIMEOUT"],
    [{ code: "ECONNREFUSED" }, "UPSTREAM_UNREACHABLE"],
    [{ cause: { code: "ECONNRESET" } }, "UPSTREAM_UNREACHABLE"],
    [{ name: "AbortError" }, "ABORTED"],
  ])("%j → %s", (err, code) => {
    const mapped = toRegistryError(err, "r.example", "GET /v2/");
    expect(mapped.code).toBe(code);
    expect(mapped.registry).toBe("r.example");
  });
});
