import { describe, expect, it } from "vitest";
import { EventRecorder } from "./events";
import { FakeKube, FakeTime, silentLog } from "./fakes";
import { KuikMetrics } from "./metrics";

describe("EventRecorder", () => {
  it("writes a core/v1 Event about the CachedImage, in default, with v1's reason", async () => {
    const kube = new FakeKube();
    const time = new FakeTime();
    await new EventRecorder(kube, time, silentLog, "watcher-0").record(
      { name: "docker.io-library-nginx-1.25", uid: "u1", resourceVersion: "9" },
      { type: "Warning", reason: "CacheFailed", message: "boom" },
    );
    expect(kube.events).toHaveLength(1);
    expect(kube.events[0]).toMatchObject({
      metadata: { namespace: "default" },
      involvedObject: {
        apiVersion: "kuik.enix.io/v1alpha1",
        kind: "CachedImage",
        name: "docker.io-library-nginx-1.25",
        uid: "u1",
      },
      reason: "CacheFailed",
      type: "Warning",
      message: "boom",
      count: 1,
      reportingInstance: "watcher-0",
      firstTimestamp: time.now().toISOString(),
    });
    expect(kube.events[0]?.metadata.name).toMatch(/^docker\.io-library-nginx-1\.25\.[0-9a-f]+$/);
  });

  it("drops an identical event within 10 minutes, and never throws", async () => {
    const kube = new FakeKube();
    const time = new FakeTime();
    const recorder = new EventRecorder(kube, time, silentLog);
    const event = { type: "Warning", reason: "CacheFailed", message: "same" } as const;
    await recorder.record({ name: "a", uid: "1" }, event);
    await recorder.record({ name: "a", uid: "1" }, event);
    await recorder.record({ name: "a", uid: "1" }, { ...event, message: "other" });
    await recorder.record({ name: "b", uid: "2" }, event);
    expect(kube.events).toHaveLength(3);
    await time.advance(10 * 60 * 1000);
    await recorder.record({ name: "a", uid: "1" }, event);
    expect(kube.events).toHaveLength(4);
    kube.failures.set("createEvent", new (await import("./ports")).KubeApiError(403, "forbidden"));
    await expect(recorder.record({ name: "c" }, event)).resolves.toBeUndefined();
  });
});

describe("KuikMetrics", () => {
  it("exposes kube-image-keeper's controller metric names and kuik's copy histograms", async () => {
    const metrics = new KuikMetrics({ version: "0.1.0", revision: "abc", built: "today" });
    metrics.setSnapshot({
      cachedImages: () => [
        { phase: "Ready", isCached: true, expiring: false },
        { phase: "Ready", isCached: true, expiring: false },
        { phase: "ErrImagePull", isCached: false, expiring: true },
      ],
      repositories: () => [{ phase: "Ready" }],
      containersWithCachedImage: () => [{ phase: "Ready", isCached: true }],
    });
    metrics.cachingRequest(true, "docker.io");
    metrics.cachingRequest(false, "quay.io");
    metrics.putInCache();
    metrics.removedFromCache();
    metrics.copy(2.5, 5_000_000, true);
    const text = await metrics.registry.metrics();
    for (const line of [
      'kube_image_keeper_controller_build_info{version="0.1.0",revision="abc",built="today"',
      "kube_image_keeper_controller_up 1",
      'kube_image_keeper_controller_image_caching_request{successful="true",upstream_registry="docker.io"} 1',
      'kube_image_keeper_controller_image_caching_request{successful="false",upstream_registry="quay.io"} 1',
      "kube_image_keeper_controller_image_put_in_cache_total 1",
      "kube_image_keeper_controller_image_removed_from_cache_total 1",
      'kube_image_keeper_controller_cached_images{status="Ready",cached="true",expiring="false"} 2',
      'kube_image_keeper_controller_cached_images{status="ErrImagePull",cached="false",expiring="true"} 1',
      'kube_image_keeper_controller_repositories{status="Ready"} 1',
      'kube_image_keeper_controller_containers_with_cached_image{status="Ready",cached="true"} 1',
      'kuik_copy_duration_seconds_count{result="success"} 1',
      'kuik_copy_bytes_sum{result="success"} 5000000',
    ]) {
      expect(text).toContain(line);
    }
  });
});
