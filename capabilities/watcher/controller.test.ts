import { beforeEach, describe, expect, it } from "vitest";
import { admissionRules } from "../testing/admission";
import type { CachedImage, Repository } from "../crd";
import type { GateVerdict } from "../proxy-gate/decision";
import { ANNOTATION_FORCE_UPDATE, FINALIZER_CACHED_IMAGE } from "../shared/labels";
import type { WatcherConfig } from "../shared/watcher-config";
import { FakeRegistry, FakeTime, RecordingEvents, RecordingMetrics } from "../testing/fake-registry";
import { FakeKube, silentLog } from "../testing/fakes";
import { managedPod } from "../testing/pods";
import { CachedImagesController, needsReconcile, RESCUE_INTERVAL_MS } from "./controller";

const DAY = 86_400_000;
const NAME = "docker.io-library-nginx-1.25";
const CACHE = "cache.kuik:5000/docker.io/library/nginx";
const D1 = `sha256:${"1".repeat(64)}`;
const WATCHER: WatcherConfig = {
  credentialsSecret: "kuik-proxy-credentials",
  metricsPort: 0,
  resyncIntervalMs: 600_000,
  sweepIntervalMs: 60_000,
  retryBaseMs: 10_000,
  retryMaxMs: 600_000,
};

let kube: FakeKube;
let registry: FakeRegistry;
let time: FakeTime;
let events: RecordingEvents;

function startController(
  extra: { gate?: { verdict(node?: string): GateVerdict }; metrics?: RecordingMetrics } = {},
): CachedImagesController {
  const controller = new CachedImagesController({
    kube,
    registry,
    clock: time,
    scheduler: time,
    log: silentLog,
    metrics: extra.metrics ?? new RecordingMetrics(),
    events,
    ...(extra.gate ? { gate: extra.gate } : {}),
    config: {
      namespace: "kuik-system",
      expiryDelayMs: 1 * DAY,
      proxyPort: 7439,
      registryEndpoint: "cache.kuik:5000",
      maxConcurrentCachedImageReconciles: 2,
    },
    watcher: WATCHER,
    admitted: admissionRules(),
  });
  kube.watch((kind, object, phase) => {
    if (kind === "Pod") controller.onPod(object as never, phase);
    if (kind === "CachedImage") controller.onCachedImage(object as CachedImage, phase);
    if (kind === "Repository") controller.onRepository(object as Repository, phase);
  });
  controller.start();
  return controller;
}

beforeEach(() => {
  kube = new FakeKube();
  registry = new FakeRegistry();
  time = new FakeTime();
  events = new RecordingEvents();
  registry.upstream.set("docker.io/library/nginx:1.25", D1);
});

const status = () => kube.cachedImages.get(NAME)?.status as Record<string, unknown> | undefined;
const copies = () => registry.calls.filter(c => c.startsWith("copyToCache")).length;

describe("CachedImagesController", () => {
  it("pod → CachedImage → cached → unused → expired → deleted → removed from the cache", async () => {
    const controller = startController();
    kube.addPod(managedPod("a", "web", ["nginx:1.25"]));
    await time.advance(5000);
    expect(status()).toMatchObject({ phase: "Ready", isCached: true, usedBy: { count: 1 } });
    expect(kube.cachedImages.get(NAME)?.metadata?.finalizers).toEqual([FINALIZER_CACHED_IMAGE]);
    expect(registry.cache.get(CACHE)?.get("1.25")).toBe(D1);
    expect(kube.appliedSecrets).toHaveLength(1);

    kube.deletePod("a", "web");
    await time.advance(5000);
    expect(kube.cachedImages.get(NAME)?.spec?.expiresAt).toBeDefined();
    await time.advance(DAY + 2 * WATCHER.sweepIntervalMs);
    expect(kube.cachedImages.has(NAME)).toBe(false);
    expect(registry.cache.get(CACHE)?.size).toBe(0);
    expect(events.reasons()).toEqual(["Caching", "Cached", "Expiring", "Expired", "CleaningUp", "CleanedUp"]);
    expect(copies()).toBe(1);
    controller.stop();
  });

  it("retries a failing copy with exponential backoff, then succeeds", async () => {
    registry.upstream.clear();
    const controller = startController();
    kube.addPod(managedPod("a", "web", ["nginx:1.25"]));
    const attempts: number[] = [];
    const copy = registry.copyToCache.bind(registry);
    registry.copyToCache = (...args) => {
      attempts.push(time.now().getTime() / 1000);
      return copy(...args);
    };
    await time.advance(80_000);
    // Delays between attempts: 10 s, 20 s, 40 s.
    expect(attempts.slice(1).map((t, i) => t - (attempts[i] as number))).toEqual([10, 20, 40]);
    expect(status()).toMatchObject({ phase: "ErrImagePull", retryCount: 4 });
    registry.upstream.set("docker.io/library/nginx:1.25", D1);
    await time.advance(80_000);
    expect(status()).toMatchObject({ phase: "Ready", retryCount: 0 });
    controller.stop();
  });

  it("after a restart, the resync re-queues images not Ready and keeps their backoff", async () => {
    registry.upstream.clear();
    const first = startController();
    kube.addPod(managedPod("a", "web", ["nginx:1.25"]));
    await time.advance(2000);
    first.stop();
    expect(status()).toMatchObject({ phase: "ErrImagePull", retryCount: 1 });
    registry.upstream.set("docker.io/library/nginx:1.25", D1);
    // A new process: nothing in memory, Pepr re-delivers ADDED events, the resync lists everything.
    const second = startController();
    await time.advance(1000);
    expect(status()?.phase).toBe("ErrImagePull"); // nextRetry (10 s after the failure) not reached
    await time.advance(10_000);
    expect(status()?.phase).toBe("Ready");
    second.stop();
  });

  it("copies again an image that vanished from the cache registry, at the next resync", async () => {
    const controller = startController();
    kube.addPod(managedPod("a", "web", ["nginx:1.25"]));
    await time.advance(5000);
    registry.cache.clear(); // the registry lost its storage
    await time.advance(WATCHER.resyncIntervalMs);
    expect(copies()).toBe(2);
    expect(registry.cache.get(CACHE)?.get("1.25")).toBe(D1);
    controller.stop();
  });

  it("runs at most maxConcurrentCachedImageReconciles copies at once", async () => {
    let running = 0;
    let peak = 0;
    const copy = registry.copyToCache.bind(registry);
    registry.copyToCache = async (...args) => {
      peak = Math.max(peak, ++running);
      await new Promise(resolve => setTimeout(resolve, 5));
      running--;
      return copy(...args);
    };
    for (let i = 0; i < 6; i++) registry.upstream.set(`docker.io/library/app${i}:1`, D1);
    const controller = startController();
    for (let i = 0; i < 6; i++) kube.addPod(managedPod("a", `p${i}`, [`app${i}:1`]));
    await time.advance(2000);
    await new Promise(resolve => setTimeout(resolve, 100));
    await time.advance(1000);
    expect(peak).toBe(2);
    expect(copies()).toBe(6);
    controller.stop();
  });
});

describe("needsReconcile", () => {
  const base = {
    metadata: { name: NAME, generation: 3, finalizers: [FINALIZER_CACHED_IMAGE] },
    spec: { sourceImage: "nginx:1.25" },
    status: { observedGeneration: 3, phase: "Ready" },
  };
  const variant = (patch: (ci: typeof base & Record<string, never>) => void): CachedImage => {
    const ci = structuredClone(base) as typeof base & Record<string, never>;
    patch(ci);
    return ci as unknown as CachedImage;
  };
  it.each([
    ["a status-only update (kuik's own patch)", false, variant(() => {})],
    ["a spec change not yet observed", true, variant(ci => (ci.metadata.generation = 4))],
    ["no status yet", true, variant(ci => delete (ci as Partial<typeof base>).status)],
    ["no finalizer", true, variant(ci => (ci.metadata.finalizers = []))],
    [
      "a forceUpdate annotation",
      true,
      variant(ci => Object.assign(ci.metadata, { annotations: { [ANNOTATION_FORCE_UPDATE]: "true" } })),
    ],
    [
      "deletion with kuik's finalizer",
      true,
      variant(ci => Object.assign(ci.metadata, { deletionTimestamp: "x" })),
    ],
    [
      "deletion after kuik's finalizer went",
      false,
      variant(ci => Object.assign(ci.metadata, { deletionTimestamp: "x", finalizers: ["o"] })),
    ],
  ])("%s → %s", (_, expected, ci) => {
    expect(needsReconcile(ci)).toBe(expected);
  });
});

describe("CachedImagesController loops", () => {
  it("lets a Repository carrying kube-image-keeper v1's finalizer be deleted, keeping other finalizers", async () => {
    const controller = startController();
    await time.advance(1000);
    kube.addPod(managedPod("web", "a", ["nginx:1.25"]));
    await time.advance(3000);
    const repoName = "docker.io-library-nginx";
    expect(kube.repositories.has(repoName)).toBe(true);
    const v1Finalizers = ["example.com/keep", "repository.kuik.enix.io/finalizer"];
    await kube.patchRepository(repoName, [{ op: "add", path: "/metadata/finalizers", value: v1Finalizers }]);
    await time.advance(100);
    expect(kube.repositories.get(repoName)?.metadata?.finalizers).toEqual(v1Finalizers); // not being deleted
    kube.deleteRepository(repoName);
    await time.advance(100);
    expect(kube.repositories.get(repoName)?.metadata?.finalizers).toEqual(["example.com/keep"]);
    // The user's own finalizer is theirs to remove; then the deletion completes.
    await kube.patchRepository(repoName, [{ op: "remove", path: "/metadata/finalizers/0" }]);
    expect(kube.repositories.has(repoName)).toBe(false);
    controller.stop();
  });

  it("retries a failed credentials rewrite with backoff instead of waiting for the next resync", async () => {
    const { KubeApiError } = await import("../kube/ports");
    const controller = startController();
    await time.advance(1000); // the start-up resync writes the (empty) credentials Secret
    const writes = () => kube.calls.filter(c => c.startsWith("applySecret")).length;
    const before = writes();
    kube.secrets.set("web/regcred", {
      type: "kubernetes.io/dockerconfigjson",
      data: {
        ".dockerconfigjson": Buffer.from(
          JSON.stringify({ auths: { "docker.io": { username: "u", password: "p" } } }),
        ).toString("base64"),
      },
    });
    kube.failures.set("applySecret", new KubeApiError(500, "etcdserver: request timed out"));
    kube.addPod(managedPod("web", "a", ["nginx:1.25"], { pullSecrets: ["regcred"] }));
    await time.advance(3000); // tracked, Repository applied with the pull secret, debounced rewrite fails
    expect(writes()).toBe(before + 1);
    await time.advance(WATCHER.retryBaseMs); // first retry fails too
    expect(writes()).toBe(before + 2);
    kube.failures.clear();
    await time.advance(WATCHER.retryBaseMs); // the backoff doubled: not yet
    expect(writes()).toBe(before + 2);
    await time.advance(WATCHER.retryBaseMs);
    expect(writes()).toBe(before + 3);
    expect(kube.appliedSecrets.at(-1)?.dockerConfigJson).toContain('"docker.io/library/nginx"');
    await time.advance(WATCHER.resyncIntervalMs / 2); // success ends the retries (before the next resync)
    expect(writes()).toBe(before + 3);
    controller.stop();
  });

  it("retries a failed resync after the retry base delay, not a whole interval", async () => {
    kube.failures.set(
      "listCachedImages",
      new (await import("../kube/ports")).KubeApiError(503, "storage is (re)initializing"),
    );
    const controller = startController();
    await time.advance(1000);
    const lists = () => kube.calls.filter(c => c === "listCachedImages").length;
    expect(lists()).toBe(1);
    kube.failures.clear();
    kube.addPod(managedPod("a", "web", ["nginx:1.25"]));
    await time.advance(WATCHER.retryBaseMs);
    expect(lists()).toBe(2);
    await time.advance(5000);
    expect(status()?.phase).toBe("Ready");
    await time.advance(WATCHER.resyncIntervalMs - 20_000);
    expect(lists()).toBe(2);
    controller.stop();
  });
});

describe("CachedImagesController and the proxy gate", () => {
  function withGate(verdict: GateVerdict) {
    const gate = { current: verdict, verdict: () => gate.current };
    const metrics = new RecordingMetrics();
    const controller = startController({ gate, metrics });
    return { controller, gate, metrics };
  }
  const DOWN: GateVerdict = { rewrite: false, reason: "not-installed", detail: "no proxy Pod exists" };
  const UP: GateVerdict = { rewrite: true, reason: "majority-ready" };

  it("reports stops and resumptions with an Event on the DaemonSet and the metric", () => {
    const { controller, metrics } = withGate(UP);
    controller.onProxyVerdict(UP); // serving from the start: nothing to say
    controller.onProxyVerdict(DOWN);
    controller.onProxyVerdict(UP);
    expect(events.recorded.map(e => [e.object, e.reason, e.type])).toEqual([
      ["kube-image-keeper-proxy", "ProxyUnavailable", "Warning"],
      ["kube-image-keeper-proxy", "ProxyAvailable", "Normal"],
    ]);
    expect(events.recorded[0]?.message).toContain("no proxy Pod exists");
    expect(metrics.serving).toEqual({ serving: true, reason: "majority-ready" });
    controller.stop();
  });

  it("rescues a managed Pod stuck on its node's missing proxy within one rescue interval", async () => {
    const { controller, metrics } = withGate({ ...DOWN, reason: "not-ready-on-node" });
    const stuck = managedPod("shop", "web", ["nginx:1.25"]);
    kube.addPod({
      ...stuck,
      spec: { ...stuck.spec, nodeName: "n1" },
      status: { containerStatuses: [{ name: "c0", state: { waiting: { reason: "ImagePullBackOff" } } }] },
    } as never);
    await time.advance(RESCUE_INTERVAL_MS);
    expect(kube.pods.get("shop/web")?.spec?.containers?.[0]?.image).toBe("nginx:1.25");
    expect(metrics.rescued).toBe(1);
    expect(events.reasons()).toContain("ImageRescued");
    controller.stop();
  });
});
