import { describe, expect, it } from "vitest";
import { mapLimit, platformWanted } from "./copy";
import type { Descriptor } from "./manifests";

const d = (architecture: string, variant?: string, os = "linux"): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: "sha256:" + "0".repeat(64),
  size: 1,
  platform: { architecture, os, ...(variant ? { variant } : {}) },
});

describe("platformWanted", () => {
  it.each([
    [d("amd64"), undefined, true],
    [d("amd64"), [], true],
    [d("amd64"), ["amd64"], true],
    [d("amd64"), ["linux/amd64"], true],
    [d("amd64"), ["windows/amd64"], false],
    [d("arm64"), ["amd64"], false],
    [d("arm", "v7"), ["linux/arm/v7"], true],
    [d("arm", "v7"), ["arm/v7"], true],
    [d("arm", "v6"), ["arm/v7"], false],
    [d("arm", "v7"), ["arm"], true],
    [{ ...d("amd64"), platform: undefined }, ["amd64"], false],
    [{ ...d("amd64"), platform: undefined }, undefined, true],
  ] as [Descriptor, string[] | undefined, boolean][])(
    "%j with %j → %s",
    (descriptor, platforms, expected) => {
      expect(platformWanted(descriptor, platforms)).toBe(expected);
    },
  );
});

describe("mapLimit", () => {
  it("keeps order and never runs more than the limit at once", async () => {
    let running = 0;
    let peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async n => {
      running++;
      peak = Math.max(peak, running);
      await new Promise(r => setTimeout(r, n));
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });

  it("stops starting work after the first failure and rejects with it", async () => {
    const started: number[] = [];
    await expect(
      mapLimit([1, 2, 3, 4, 5, 6], 1, async n => {
        started.push(n);
        if (n === 2) throw new Error("boom");
        return n;
      }),
    ).rejects.toThrow("boom");
    expect(started).toEqual([1, 2]);
  });

  it("handles an empty list", async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });
});
