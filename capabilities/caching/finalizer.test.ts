import { beforeEach, describe, expect, it } from "vitest";
import { RegistryError } from "../../registry-client/src/errors";
import { Keyring } from "../../registry-client/src/keyring";
import type { CachedImage } from "../crd";
import { KubeApiError } from "../kube/ports";
import { FINALIZER_CACHED_IMAGE } from "../shared/labels";
import { FakeRegistry, FakeTime, RecordingEvents, RecordingMetrics } from "../testing/fake-registry";
import { FakeKube, silentLog } from "../testing/fakes";
import { reconcileCachedImage, type CacheDeps } from "./reconcile";

const NAME = "docker.io-library-nginx-1.25";
const CACHE = "cache.kuik:5000/docker.io/library/nginx";
const D1 = `sha256:${"1".repeat(64)}`;

let kube: FakeKube;
let registry: FakeRegistry;
let time: FakeTime;
let events: RecordingEvents;
let metrics: RecordingMetrics;
let users: number;
let shared: boolean;
let deps: CacheDeps;

beforeEach(() => {
  kube = new FakeKube();
  registry = new FakeRegistry();
  time = new FakeTime();
  events = new RecordingEvents();
  metrics = new RecordingMetrics();
  users = 0;
  shared = false;
  deps = {
    kube,
    registry,
    clock: time,
    events,
    metrics,
    log: silentLog,
    settings: {
      registryEndpoint: "cache.kuik:5000",
      retryBaseMs: 1000,
      retryMaxMs: 60_000,
      progressIntervalMs: 5000,
    },
    keyringFor: async () => new Keyring([]),
    liveUsers: async () => users,
    digestShared: () => shared,
  };
  registry.cache.set(
    CACHE,
    new Map([
      ["1.25", D1],
      [D1, D1],
    ]),
  );
  kube.cachedImages.set(NAME, {
    metadata: {
      name: NAME,
      uid: "u1",
      generation: 2,
      resourceVersion: "7",
      deletionTimestamp: "2026-01-01T00:00:00Z",
      finalizers: ["other.example/keep", FINALIZER_CACHED_IMAGE],
    },
    spec: { sourceImage: "nginx:1.25" },
    status: { phase: "Ready", isCached: true, digest: D1 },
  } as unknown as CachedImage);
});

const finalizers = (): string[] | undefined => kube.cachedImages.get(NAME)?.metadata?.finalizers as string[];

describe("kuik's finalizer", () => {
  it("removes the manifest by digest, then its own finalizer only", async () => {
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
    expect(registry.calls).toEqual([`deleteFromCache ${CACHE}@${D1}`]);
    expect(registry.cache.get(CACHE)?.size).toBe(0);
    expect(finalizers()).toEqual(["other.example/keep"]);
    expect(events.reasons()).toEqual(["CleaningUp", "CleanedUp"]);
    expect(metrics.counts.removed).toBe(1);
  });

  it("is idempotent: re-run after it finished (Pepr re-delivers terminating objects) does nothing", async () => {
    await reconcileCachedImage(NAME, deps);
    const calls = [...registry.calls];
    const kubeCalls = kube.calls.length;
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
    expect(registry.calls).toEqual(calls);
    expect(kube.calls.slice(kubeCalls)).toEqual([`getCachedImage ${NAME}`]);
  });

  it("is idempotent: a manifest already gone (404) still lets the finalizer go", async () => {
    registry.cache.clear();
    await reconcileCachedImage(NAME, deps);
    expect(finalizers()).toEqual(["other.example/keep"]);
    expect(events.recorded.at(-1)?.message).toContain("already absent");
    expect(metrics.counts.removed).toBe(0);
  });

  it("the object disappears once kuik's was the last finalizer", async () => {
    (kube.cachedImages.get(NAME)?.metadata as Record<string, unknown>).finalizers = [FINALIZER_CACHED_IMAGE];
    await reconcileCachedImage(NAME, deps);
    expect(kube.cachedImages.has(NAME)).toBe(false);
  });

  it("keeps the manifest of an image a pod uses right now (live count)", async () => {
    users = 2;
    await reconcileCachedImage(NAME, deps);
    expect(registry.calls).toEqual([]);
    expect(finalizers()).toEqual(["other.example/keep"]);
    expect(events.recorded.at(-1)?.message).toContain("used by 2 pod(s)");
  });

  it("keeps a manifest another CachedImage also points at (delete by digest drops every tag)", async () => {
    shared = true;
    await reconcileCachedImage(NAME, deps);
    expect(registry.calls).toEqual([]);
    expect(registry.cache.get(CACHE)?.get("1.25")).toBe(D1);
  });

  it("keeps the finalizer when the registry fails, retries with backoff, then succeeds", async () => {
    registry.failures.set("deleteFromCache", new RegistryError("UPSTREAM_UNREACHABLE", "connection refused"));
    expect(await reconcileCachedImage(NAME, deps)).toEqual({ requeueAfterMs: 1000 });
    expect(finalizers()).toContain(FINALIZER_CACHED_IMAGE);
    expect(kube.cachedImages.get(NAME)?.status).toMatchObject({ phase: "Terminating", retryCount: 1 });
    expect(events.reasons()).toEqual(["CleaningUp", "CleanupFailed"]);
    // Before nextRetry, a re-delivered event does nothing.
    expect(await reconcileCachedImage(NAME, deps)).toEqual({ requeueAfterMs: 1000 });
    await time.advance(1000);
    expect(await reconcileCachedImage(NAME, deps)).toEqual({ requeueAfterMs: 2000 });
    registry.failures.clear();
    await time.advance(2000);
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
    expect(finalizers()).toEqual(["other.example/keep"]);
    expect(events.reasons().filter(r => r === "CleaningUp")).toHaveLength(1);
  });

  it("gives up on a registry that refuses deletes (405): manifest kept, deletion not blocked", async () => {
    registry.failures.set(
      "deleteFromCache",
      new RegistryError("UNSUPPORTED", "deletes disabled", { statusCode: 405 }),
    );
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
    expect(finalizers()).toEqual(["other.example/keep"]);
    expect(events.recorded.at(-1)?.message).toContain("refuses deletes");
  });

  it("a concurrent change of the finalizer list makes the removal retry instead of overwriting it", async () => {
    const original = kube.patchCachedImage.bind(kube);
    kube.patchCachedImage = async () => {
      kube.patchCachedImage = original;
      throw new KubeApiError(422, "test failed");
    };
    expect(await reconcileCachedImage(NAME, deps)).toEqual({ requeueAfterMs: 1000 });
    expect(finalizers()).toContain(FINALIZER_CACHED_IMAGE);
    expect(await reconcileCachedImage(NAME, deps)).toEqual({});
    expect(finalizers()).toEqual(["other.example/keep"]);
  });
});
