import { describe, expect, it, vi } from "vitest";

// Watch bindings are registered only in the watcher (Pepr decides at import time).
vi.hoisted(() => {
  process.env.PEPR_WATCH_MODE = "true";
  process.env.LOG_LEVEL ??= "warn";
});

const { createCachedImages } = await import("./capability");
const { LABEL_MANAGED } = await import("../shared/labels");

describe("createCachedImages", () => {
  it("binds Pods (managed label), CachedImages and Repositories, each created/updated and deleted", () => {
    const capability = createCachedImages({ onPod() {}, onCachedImage() {}, onRepository() {} });
    const table = capability.bindings.map(b => [
      b.kind.kind,
      b.event,
      b.alias,
      b.isQueue === true,
      b.filters.labels,
    ]);
    expect(table).toEqual([
      ["Pod", "CREATEORUPDATE", "track-pods", false, { [LABEL_MANAGED]: "" }],
      ["Pod", "DELETE", "untrack-pods", false, { [LABEL_MANAGED]: "" }],
      ["CachedImage", "CREATEORUPDATE", "cache-images", true, {}],
      ["CachedImage", "DELETE", "forget-cached-images", false, {}],
      ["Repository", "CREATEORUPDATE", "track-repositories", false, {}],
      ["Repository", "DELETE", "forget-repositories", false, {}],
    ]);
    expect(capability.bindings.every(b => b.isWatch && !b.isMutate && !b.isFinalize)).toBe(true);
  });

  it("hands every event to the handlers, with its phase", async () => {
    const seen: string[] = [];
    const capability = createCachedImages({
      onPod: (pod, phase) => seen.push(`pod ${pod.metadata?.name} ${phase}`),
      onCachedImage: (ci, phase) => seen.push(`ci ${ci.metadata?.name} ${phase}`),
      onRepository: (repo, phase) => seen.push(`repo ${repo.metadata?.name} ${phase}`),
    });
    const phases = ["ADDED", "DELETED", "MODIFIED", "DELETED", "ADDED", "DELETED"];
    for (const [i, binding] of capability.bindings.entries()) {
      await binding.watchCallback?.({ metadata: { name: `o${i}` } } as never, phases[i] as never);
    }
    expect(seen).toEqual([
      "pod o0 ADDED",
      "pod o1 DELETED",
      "ci o2 MODIFIED",
      "ci o3 DELETED",
      "repo o4 ADDED",
      "repo o5 DELETED",
    ]);
  });
});
