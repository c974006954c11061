import { describe, expect, expectTypeOf, it } from "vitest";
import type { CachedImage } from "../crd";
import { computeExpiry, shouldDelete, type ExpiringImage } from "./rules";

const DAY = 24 * 3600 * 1000;
const NOW = new Date("2025-01-01T00:00:00Z");

it("accepts the generated CachedImage", () => {
  expectTypeOf<CachedImage>().toMatchTypeOf<ExpiringImage>();
});

describe("computeExpiry", () => {
  const later = "2025-01-20T00:00:00.000Z";
  it.each([
    ["unused, no expiry → set", {}, 0, { action: "set", expiresAt: "2025-01-31T00:00:00.000Z" }],
    ["unused, expiry set → keep (never pushed back)", { expiresAt: later }, 0, { action: "keep" }],
    ["unused, Date expiry → keep", { expiresAt: new Date(later) }, 0, { action: "keep" }],
    [
      "unused, garbage expiry → set afresh",
      { expiresAt: "soon" },
      0,
      { action: "set", expiresAt: "2025-01-31T00:00:00.000Z" },
    ],
    ["used, expiry set → clear", { expiresAt: later }, 2, { action: "clear" }],
    ["used, no expiry → keep", {}, 1, { action: "keep" }],
    ["retained, expiry set → clear", { retain: true, expiresAt: later }, 0, { action: "clear" }],
    ["retained, no expiry → keep", { retain: true }, 0, { action: "keep" }],
  ] as const)("%s", (_, spec, used, expected) => {
    expect(computeExpiry({ spec }, used, NOW, 30 * DAY)).toEqual(expected);
  });
});

describe("shouldDelete", () => {
  const past = "2024-12-31T00:00:00Z";
  it.each([
    ["expired and unused", { spec: { expiresAt: past } }, 0, true],
    ["expired exactly now", { spec: { expiresAt: NOW.toISOString() } }, 0, true],
    ["expired but used again (fresh count)", { spec: { expiresAt: past } }, 1, false],
    ["not yet expired", { spec: { expiresAt: "2025-02-01T00:00:00Z" } }, 0, false],
    ["no expiry", { spec: {} }, 0, false],
    ["unparsable expiry", { spec: { expiresAt: "soon" } }, 0, false],
    ["retained", { spec: { retain: true, expiresAt: past } }, 0, false],
    ["already being deleted", { metadata: { deletionTimestamp: past }, spec: { expiresAt: past } }, 0, false],
  ] as const)("%s → %s", (_, ci, used, expected) => {
    expect(shouldDelete(ci as ExpiringImage, used, NOW)).toBe(expected);
  });
});
