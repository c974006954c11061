import { describe, expect, it } from "vitest";
import type { CachedImage, Repository } from "../crd";
import { ANNOTATION_FORCE_UPDATE } from "../shared/labels";
import { FakeTime } from "../testing/fake-registry";
import { FakeKube, silentLog } from "../testing/fakes";
import { maintainRepositories, parseGoDuration, refreshTargets } from "./maintenance";

const image = (name: string, sourceImage: string, phase?: string): CachedImage =>
  ({
    metadata: { name },
    spec: { sourceImage },
    ...(phase ? { status: { phase } } : {}),
  }) as unknown as CachedImage;

const repo = (
  spec: Partial<NonNullable<Repository["spec"]>>,
  status: Record<string, unknown> = {},
): Repository =>
  ({
    metadata: { name: "docker.io-library-nginx", generation: 1 },
    spec: { name: "docker.io/library/nginx", ...spec },
    status,
  }) as unknown as Repository;

describe("parseGoDuration", () => {
  it.each([
    ["90s", 90_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["250ms", 250],
    ["", undefined],
    ["10", undefined],
    ["-1h", undefined],
    ["0s", undefined],
    ["1d", undefined],
  ])("%j → %s", (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });
});

describe("refreshTargets", () => {
  const images = [image("a", "nginx:1.25"), image("b", "nginx:latest"), image("c", "nginx:1.26")];
  const now = new Date("2026-01-01T12:00:00Z");

  it("all images when no filter, once the interval elapsed since lastUpdate", () => {
    expect(refreshTargets(repo({ updateInterval: "1h" }), images, now).names).toEqual(["a", "b", "c"]);
    expect(
      refreshTargets(repo({ updateInterval: "1h" }, { lastUpdate: "2026-01-01T11:30:00Z" }), images, now).due,
    ).toBe(false);
    expect(
      refreshTargets(repo({ updateInterval: "1h" }, { lastUpdate: "2026-01-01T10:59:00Z" }), images, now).due,
    ).toBe(true);
  });

  it("only the images matching a filter; invalid settings are reported", () => {
    expect(
      refreshTargets(repo({ updateInterval: "1h", updateFilters: [":latest$", "("] }), images, now),
    ).toEqual({
      due: true,
      names: ["b"],
      problems: [expect.stringContaining("invalid updateFilter") as string],
    });
    expect(refreshTargets(repo({ updateInterval: "soon" }), images, now)).toMatchObject({
      due: false,
      problems: [expect.stringContaining("updateInterval")],
    });
    expect(refreshTargets(repo({}), images, now).due).toBe(false);
  });
});

describe("maintainRepositories", () => {
  it("writes image count, phase and Ready condition; annotates due images; writes nothing when unchanged", async () => {
    const kube = new FakeKube();
    const time = new FakeTime();
    const r = repo({ updateInterval: "1h", updateFilters: ["1\\.25"] });
    kube.repositories.set("docker.io-library-nginx", r);
    const images = [
      image("docker.io-library-nginx-1.25", "nginx:1.25", "Ready"),
      image("docker.io-library-nginx-1.26", "nginx:1.26", "ErrImagePull"),
    ];
    for (const ci of images) kube.cachedImages.set(ci.metadata?.name as string, structuredClone(ci));
    await maintainRepositories([r], images, { kube, clock: time, log: silentLog });
    expect(kube.repositories.get("docker.io-library-nginx")?.status).toMatchObject({
      images: 2,
      phase: "ErrImagePull",
      lastUpdate: time.now().toISOString(),
      conditions: [
        { type: "Ready", status: "False", reason: "ErrImagePull", message: "Some images in pull error" },
      ],
    });
    expect(kube.cachedImages.get("docker.io-library-nginx-1.25")?.metadata?.annotations).toEqual({
      [ANNOTATION_FORCE_UPDATE]: "true",
    });
    expect(kube.cachedImages.get("docker.io-library-nginx-1.26")?.metadata?.annotations).toBeUndefined();
    const calls = kube.calls.length;
    await maintainRepositories([kube.repositories.get("docker.io-library-nginx") as Repository], images, {
      kube,
      clock: time,
      log: silentLog,
    });
    expect(kube.calls.length).toBe(calls);
  });
});
