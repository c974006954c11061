import { describe, expect, it } from "vitest";
import { KuikMetrics } from "./metrics";

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
