import { beforeEach, describe, expect, it } from "vitest";
import { admissionRules } from "../testing/admission";
import type { CachedImage } from "../crd";
import { FINALIZER_CACHED_IMAGE } from "../shared/labels";
import { FakeTime, RecordingEvents } from "../testing/fake-registry";
import { FakeKube, silentLog } from "../testing/fakes";
import { managedPod } from "../testing/pods";
import { LivePods, sweepExpired, type SweepDeps } from "./sweep";

const NAME = "docker.io-library-nginx-1.25";

let kube: FakeKube;
let time: FakeTime;
let events: RecordingEvents;
let deps: SweepDeps;

function expiring(name: string, spec: Record<string, unknown>, finalizers: string[] = []): CachedImage {
  const ci = {
    metadata: { name, uid: `uid-${name}`, generation: 1, finalizers },
    spec: { sourceImage: "nginx:1.25", ...spec },
  } as unknown as CachedImage;
  kube.cachedImages.set(name, structuredClone(ci));
  return ci;
}

beforeEach(() => {
  kube = new FakeKube();
  time = new FakeTime();
  events = new RecordingEvents();
  deps = { kube, clock: time, events, log: silentLog, live: new LivePods(kube, time, admissionRules()) };
});

const PAST = "2025-12-31T00:00:00.000Z";
const FUTURE = "2026-02-01T00:00:00.000Z";

describe("sweepExpired", () => {
  it("deletes an expired, unused, unretained image, with Expiring and Expired events", async () => {
    const ci = expiring(NAME, { expiresAt: PAST });
    const result = await sweepExpired([ci], deps);
    expect(result.deleted).toEqual([NAME]);
    expect(kube.cachedImages.has(NAME)).toBe(false);
    expect(events.reasons()).toEqual(["Expiring", "Expired"]);
  });

  it("never deletes an image in use, even when the caller's view (watch cache, usedBy) says unused", async () => {
    // The tracker's copy is stale: its usedBy is empty and expiresAt passed; a pod appeared since.
    const stale = expiring(NAME, { expiresAt: PAST });
    kube.addPod(managedPod("a", "new-pod", ["nginx:1.25"]));
    const result = await sweepExpired([stale], deps);
    expect(result).toMatchObject({ deleted: [], inUse: [NAME] });
    expect(result.view?.pods).toHaveLength(1);
    expect(kube.cachedImages.has(NAME)).toBe(true);
    expect(kube.calls).not.toContain(`deleteCachedImage ${NAME}`);
    expect(events.recorded).toEqual([]);
  });

  it("counts users from a list taken at sweep time, not from an earlier one", async () => {
    const live = new LivePods(kube, time, admissionRules(), 60_000);
    deps.live = live;
    await live.view(); // an earlier list, with no pod
    kube.addPod(managedPod("a", "p", ["nginx:1.25"]));
    const result = await sweepExpired([expiring(NAME, { expiresAt: PAST })], deps);
    expect(result.inUse).toEqual([NAME]);
  });

  it.each([
    ["not expired yet", { expiresAt: FUTURE }],
    ["retained", { expiresAt: PAST, retain: true }],
    ["without expiresAt", {}],
  ])("keeps an image %s", async (_, spec) => {
    const result = await sweepExpired([expiring(NAME, spec)], deps);
    expect(result.deleted).toEqual([]);
    expect(kube.calls.filter(c => c.startsWith("listManagedPods"))).toEqual([]);
  });

  it("re-reads the object: an expiry cleared since the caller's view was taken keeps it", async () => {
    const stale = expiring(NAME, { expiresAt: PAST });
    (kube.cachedImages.get(NAME)?.spec as unknown as Record<string, unknown>).expiresAt = undefined;
    expect((await sweepExpired([stale], deps)).deleted).toEqual([]);
  });

  it("deleting an object with kuik's finalizer leaves it terminating for the finalizer to clean up", async () => {
    await sweepExpired([expiring(NAME, { expiresAt: PAST }, [FINALIZER_CACHED_IMAGE])], deps);
    expect(kube.cachedImages.get(NAME)?.metadata?.deletionTimestamp).toBeDefined();
  });

  it("never deletes a version newer than the one it judged (retain set between the read and the delete)", async () => {
    const ci = expiring(NAME, { expiresAt: PAST });
    kube.cachedImages.get(NAME)!.metadata!.resourceVersion = "5";
    const realDelete = kube.deleteCachedImage.bind(kube);
    kube.deleteCachedImage = async (name, resourceVersion) => {
      const stored = kube.cachedImages.get(name)!; // `kubectl edit cachedimage`: retain: true, a new version
      stored.spec!.retain = true;
      stored.metadata!.resourceVersion = "6";
      return realDelete(name, resourceVersion);
    };
    const result = await sweepExpired([ci], deps);
    expect(result).toMatchObject({ deleted: [] });
    expect(kube.cachedImages.get(NAME)?.spec?.retain).toBe(true);
    expect(events.reasons()).not.toContain("ExpiringFailed");
  });

  it("reports a failed delete as ExpiringFailed", async () => {
    kube.failures.set("deleteCachedImage", new (await import("../kube/ports")).KubeApiError(500, "boom"));
    const result = await sweepExpired([expiring(NAME, { expiresAt: PAST })], deps);
    expect(result.deleted).toEqual([]);
    expect(events.reasons()).toEqual(["Expiring", "ExpiringFailed"]);
  });
});

describe("LivePods", () => {
  it("shares one list within maxAge, lists again after it", async () => {
    const live = new LivePods(kube, time, admissionRules(), 2000);
    kube.addPod(managedPod("a", "p", ["nginx:1.25"]));
    await Promise.all([live.usersOf(NAME), live.usersOf(NAME)]);
    expect(await live.usersOf(NAME)).toBe(1);
    expect(kube.calls.filter(c => c === "listManagedPods")).toHaveLength(1);
    await time.advance(2001);
    expect(await live.usersOf("other")).toBe(0);
    expect(kube.calls.filter(c => c === "listManagedPods")).toHaveLength(2);
  });

  it("lists again for a fresh count, even within maxAge: a pod admitted since the sweep counts", async () => {
    const live = new LivePods(kube, time, admissionRules(), 2000);
    expect(await live.usersOf(NAME)).toBe(0);
    kube.addPod(managedPod("a", "p", ["nginx:1.25"]));
    expect(await live.usersOf(NAME)).toBe(0);
    expect(await live.usersOf(NAME, true)).toBe(1);
  });
});
