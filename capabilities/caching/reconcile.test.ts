import { beforeEach, describe, expect, it } from "vitest";
import { Keyring } from "../../registry-client/src/keyring";
import type { CachedImage } from "../crd";
import type { CacheStatus } from "../shared/cached-image-status";
import { ANNOTATION_FORCE_UPDATE, FINALIZER_CACHED_IMAGE } from "../shared/labels";
import { FakeRegistry, FakeTime, RecordingEvents, RecordingMetrics } from "../testing/fake-registry";
import { FakeKube, silentLog } from "../testing/fakes";
import { reconcileCachedImage, type CacheDeps } from "./reconcile";
import { retryDelayMs } from "./status";

const NAME = "docker.io-library-nginx-1.25";
const CACHE = "cache.kuik:5000/docker.io/library/nginx";
const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const BASE = 10_000;

let kube: FakeKube;
let registry: FakeRegistry;
let time: FakeTime;
let events: RecordingEvents;
let metrics: RecordingMetrics;
let deps: CacheDeps;

beforeEach(() => {
  kube = new FakeKube();
  registry = new FakeRegistry();
  time = new FakeTime();
  events = new RecordingEvents();
  metrics = new RecordingMetrics();
  deps = {
    kube,
    registry,
    clock: time,
    events,
    metrics,
    log: silentLog,
    settings: {
      registryEndpoint: "cache.kuik:5000",
      retryBaseMs: BASE,
      retryMaxMs: 8 * BASE,
      progressIntervalMs: 5000,
    },
    keyringFor: async () => new Keyring([]),
    liveUsers: async () => 0,
    digestShared: () => false,
  };
  registry.upstream.set("docker.io/library/nginx:1.25", D1);
});

function addImage(
  fields: { status?: CacheStatus; annotations?: Record<string, string>; source?: string } = {},
): void {
  kube.cachedImages.set(NAME, {
    metadata: {
      name: NAME,
      uid: "u1",
      generation: 1,
      resourceVersion: "1",
      finalizers: [FINALIZER_CACHED_IMAGE],
      ...(fields.annotations ? { annotations: fields.annotations } : {}),
    },
    spec: { sourceImage: fields.source ?? "nginx:1.25" },
    ...(fields.status ? { status: fields.status } : {}),
  } as unknown as CachedImage);
}

const status = (): CacheStatus => kube.cachedImages.get(NAME)?.status as CacheStatus;
const statusPatches = (): number => kube.calls.filter(c => c === `patchCachedImageStatus ${NAME}`).length;

describe("reconcileCachedImage: phase transitions", () => {
  it("new image: adds the finalizer, copies, ends Ready with one final status patch after the progress patch", async () => {
    addImage();
    (kube.cachedImages.get(NAME)?.metadata as Record<string, unknown>).finalizers = [];
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
    expect(kube.cachedImages.get(NAME)?.metadata?.finalizers).toEqual([FINALIZER_CACHED_IMAGE]);
    expect(registry.cache.get(CACHE)?.get("1.25")).toBe(D1);
    expect(status()).toMatchObject({
      phase: "Ready",
      isCached: true,
      digest: D1,
      upstreamDigest: D1,
      upToDate: true,
      retryCount: 0,
      observedGeneration: 1,
      lastSuccessfulPull: time.now().toISOString(),
      conditions: [{ type: "Ready", status: "True", reason: "Cached" }],
    });
    expect(statusPatches()).toBe(2); // Synchronizing (progress) + the pass's one patch
    expect(events.reasons()).toEqual(["Caching", "Cached"]);
    expect(metrics.counts).toMatchObject({ cachingOk: 1, put: 1, copies: 1 });
  });

  it("already cached with the claimed digest: Ready without copying, and a second pass writes nothing", async () => {
    registry.cache.set(CACHE, new Map([["1.25", D1]]));
    addImage({ status: { digest: D1 } });
    await reconcileCachedImage(NAME, deps);
    expect(registry.calls.filter(c => c.startsWith("copyToCache"))).toEqual([]);
    expect(status()).toMatchObject({ phase: "Ready", isCached: true, digest: D1 });
    const before = kube.calls.length;
    await reconcileCachedImage(NAME, deps);
    expect(kube.calls.slice(before)).toEqual([`getCachedImage ${NAME}`]);
    expect(events.reasons()).toEqual([]);
  });

  it("origin failure: ErrImagePull, retryCount, nextRetry after the backoff, CacheFailed", async () => {
    registry.upstream.clear();
    addImage();
    expect(await reconcileCachedImage(NAME, deps)).toEqual({ requeueAfterMs: BASE });
    expect(status()).toMatchObject({
      phase: "ErrImagePull",
      isCached: false,
      retryCount: 1,
      nextRetry: new Date(time.now().getTime() + BASE).toISOString(),
      conditions: [{ type: "Ready", status: "False", reason: "ErrImagePull" }],
    });
    expect(status().lastError).toContain("MANIFEST_UNKNOWN");
    expect(events.reasons()).toEqual(["Caching", "CacheFailed"]);
    expect(metrics.counts.cachingFailed).toBe(1);
  });

  it("waits for nextRetry, then retries with the next delay, then recovers and clears the retry state", async () => {
    registry.upstream.clear();
    addImage();
    await reconcileCachedImage(NAME, deps);
    await time.advance(BASE / 2);
    const calls = kube.calls.length;
    expect(await reconcileCachedImage(NAME, deps)).toEqual({ requeueAfterMs: BASE / 2 });
    expect(kube.calls.length - calls).toBe(1); // read only
    await time.advance(BASE / 2);
    expect(await reconcileCachedImage(NAME, deps)).toEqual({ requeueAfterMs: 2 * BASE });
    expect(status().retryCount).toBe(2);
    registry.upstream.set("docker.io/library/nginx:1.25", D1);
    await time.advance(2 * BASE);
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
    expect(status()).toMatchObject({ phase: "Ready", retryCount: 0 });
    expect(status().nextRetry).toBeUndefined();
    expect(status().lastError).toBeUndefined();
  });

  it("forceUpdate with an unchanged origin: no copy, upToDate, annotation consumed", async () => {
    registry.cache.set(CACHE, new Map([["1.25", D1]]));
    addImage({ status: { digest: D1, phase: "Ready" }, annotations: { [ANNOTATION_FORCE_UPDATE]: "true" } });
    await reconcileCachedImage(NAME, deps);
    expect(registry.calls.some(c => c.startsWith("copyToCache"))).toBe(false);
    expect(status()).toMatchObject({ upstreamDigest: D1, upToDate: true, availableUpstream: true });
    expect(kube.cachedImages.get(NAME)?.metadata?.annotations).toEqual({});
  });

  it("forceUpdate with a moved tag: copies the new image", async () => {
    registry.cache.set(CACHE, new Map([["1.25", D1]]));
    registry.upstream.set("docker.io/library/nginx:1.25", D2);
    addImage({ status: { digest: D1, phase: "Ready" }, annotations: { [ANNOTATION_FORCE_UPDATE]: "true" } });
    await reconcileCachedImage(NAME, deps);
    expect(registry.cache.get(CACHE)?.get("1.25")).toBe(D2);
    expect(status()).toMatchObject({ phase: "Ready", digest: D2, upToDate: true });
  });

  it("image gone from the cache registry although the status says cached: copied again", async () => {
    addImage({ status: { digest: D1, phase: "Ready", isCached: true } });
    await reconcileCachedImage(NAME, deps);
    expect(registry.calls.filter(c => c.startsWith("copyToCache"))).toHaveLength(1);
    expect(status()).toMatchObject({ phase: "Ready", isCached: true });
  });

  it("digest-pinned image: checked and stored by digest, and by tag too", async () => {
    registry.upstream.set(`docker.io/library/nginx@${D2}`, D2);
    addImage({ source: `nginx:1.25@${D2}` });
    await reconcileCachedImage(NAME, deps);
    expect(registry.cache.get(CACHE)).toEqual(
      new Map([
        [D2, D2],
        ["1.25", D2],
      ]),
    );
    expect(registry.calls[0]).toBe(`headCache ${CACHE}:1.25@${D2}`);
  });

  it("invalid sourceImage: ErrImagePull without touching the registries", async () => {
    addImage({ source: "Not A Reference" });
    await reconcileCachedImage(NAME, deps);
    expect(status()).toMatchObject({ phase: "ErrImagePull", retryCount: 1 });
    expect(registry.calls).toEqual([]);
  });

  it("an object that is gone: nothing to do", async () => {
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
  });
});

describe("retry backoff", () => {
  it.each([
    [1, 10_000],
    [2, 20_000],
    [3, 40_000],
    [4, 80_000],
    [5, 80_000],
    [50, 80_000],
  ])("retry %i waits %i ms (base 10 s, max 80 s)", (count, delay) => {
    expect(retryDelayMs(count, BASE, 8 * BASE)).toBe(delay);
  });
});
