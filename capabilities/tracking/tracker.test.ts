import { beforeEach, describe, expect, it } from "vitest";
import { admissionRules } from "../testing/admission";
import type { CachedImage, Repository } from "../crd";
import { LABEL_REPOSITORY } from "../shared/labels";
import { FakeTime, settle } from "../testing/fake-registry";
import { FakeKube, silentLog } from "../testing/fakes";
import { managedPod } from "../testing/pods";
import { Tracker } from "./tracker";

const DAY = 86_400_000;
const NGINX = "docker.io-library-nginx-1.25";
const REPO = "docker.io-library-nginx";

let kube: FakeKube;
let time: FakeTime;
let tracker: Tracker;

beforeEach(() => {
  kube = new FakeKube();
  time = new FakeTime();
  tracker = new Tracker({
    kube,
    clock: time,
    scheduler: time,
    log: silentLog,
    expiryDelayMs: 30 * DAY,
    admitted: admissionRules(),
    debounceMs: 1000,
  });
  // The Pepr watch bindings, played by the fake API server.
  kube.watch((kind, object, phase) => {
    if (kind === "Pod") tracker.onPod(object as never, phase === "DELETED");
    if (kind === "CachedImage") tracker.onCachedImage(object as CachedImage, phase === "DELETED");
    if (kind === "Repository") tracker.onRepository(object as Repository, phase === "DELETED");
  });
});

/** Lets watch events arrive and debounced flushes run until nothing moves. */
async function converge(): Promise<void> {
  for (let i = 0; i < 5; i++) await time.advance(1000);
}

const ci = (name = NGINX) => kube.cachedImages.get(name);
const usedBy = (name = NGINX) => ci(name)?.status?.usedBy;

describe("Tracker", () => {
  it("creates one CachedImage per distinct image, labelled with its repository, and counts its pods", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25", "redis:7"]));
    kube.addPod(managedPod("b", "p2", ["docker.io/library/nginx:1.25"]));
    await converge();
    expect([...kube.cachedImages.keys()].sort()).toEqual([NGINX, "docker.io-library-redis-7"]);
    expect(ci()?.spec?.sourceImage).toBe("nginx:1.25");
    expect(ci()?.metadata?.labels).toEqual({ [LABEL_REPOSITORY]: REPO });
    expect(usedBy()).toEqual({ pods: [{ namespacedName: "a/p1" }, { namespacedName: "b/p2" }], count: 2 });
    expect(ci()?.spec?.expiresAt).toBeUndefined();
  });

  it("coalesces a burst of pod events into one recompute", async () => {
    for (let i = 0; i < 50; i++) kube.addPod(managedPod("a", `p${i}`, ["nginx:1.25"]));
    await converge();
    expect(kube.calls.filter(c => c.startsWith("applyCachedImage"))).toHaveLength(1);
    expect(kube.calls.filter(c => c.startsWith("patchCachedImageStatus"))).toHaveLength(1);
    expect(usedBy()?.count).toBe(50);
  });

  it("a deleted pod decrements usedBy; the last one sets expiresAt; a new user clears it", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"]));
    kube.addPod(managedPod("a", "p2", ["nginx:1.25"]));
    await converge();
    kube.deletePod("a", "p1");
    await converge();
    expect(usedBy()).toEqual({ pods: [{ namespacedName: "a/p2" }], count: 1 });
    const deletedAt = time.now().getTime();
    kube.deletePod("a", "p2");
    await converge();
    expect(usedBy()).toEqual({ pods: [], count: 0 });
    const expiresAt = ci()?.spec?.expiresAt as unknown as string;
    expect(Date.parse(expiresAt)).toBe(deletedAt + 1000 + 30 * DAY); // the debounced flush, 1 s later
    // Later passes do not push it back.
    await converge();
    expect(ci()?.spec?.expiresAt).toBe(expiresAt);
    kube.addPod(managedPod("c", "p3", ["nginx:1.25"]));
    await converge();
    expect(ci()?.spec?.expiresAt).toBeUndefined();
    expect(usedBy()?.count).toBe(1);
  });

  it("creates nothing for pods that only carry kuik's label and annotations, or that admission skips (#13)", async () => {
    // Before issue #13's fix, the annotation made a CachedImage of evil.io/x:1 and the kube-system pod one of nginx.
    const labelled = managedPod("a", "p1", ["nginx:1.25"]);
    kube.addPod({ ...labelled, spec: { containers: [{ name: "c0", image: "busybox:1" }] } });
    kube.addPod({
      ...labelled,
      metadata: { ...labelled.metadata, name: "p2", annotations: { "original-image-c0": "evil.io/x:1" } },
      spec: { containers: [{ name: "c0", image: "busybox:1" }] },
    });
    kube.addPod(managedPod("kube-system", "p3", ["nginx:1.25"]));
    await converge();
    expect([...kube.cachedImages.keys()]).toEqual([]);
    expect([...kube.repositories.keys()]).toEqual([]);
  });

  it("a terminating pod no longer counts", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"]));
    await converge();
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"], { terminating: true }));
    await converge();
    expect(usedBy()?.count).toBe(0);
  });

  it("never sets expiresAt on a retained image, and clears one set before retain", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"]));
    await converge();
    await kube.patchCachedImage(NGINX, [
      { op: "add", path: "/spec/retain", value: true },
      { op: "add", path: "/spec/expiresAt", value: "2026-02-01T00:00:00.000Z" },
    ]);
    kube.deletePod("a", "p1");
    await converge();
    expect(ci()?.spec).toEqual({ sourceImage: "nginx:1.25", retain: true });
  });

  it("converges after missed watch events at the next resync", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"]));
    await converge();
    kube.deletePod("a", "p1", true); // the DELETED event is lost
    kube.pods.set("a/p9", managedPod("a", "p9", ["redis:7"])); // and so is this ADDED
    await converge();
    expect(usedBy()?.count).toBe(1);
    await tracker.resync();
    await converge();
    expect(usedBy()?.count).toBe(0);
    expect(ci()?.spec?.expiresAt).toBeDefined();
    expect(kube.cachedImages.has("docker.io-library-redis-7")).toBe(true);
  });

  // Found on a real API server: the resync's list replaced the index after the event and the pod was lost.
  it("keeps what watch events brought while a resync's list was in flight", async () => {
    kube.addPod(managedPod("a", "old", ["nginx:1.25"]));
    await converge();
    const list = kube.listManagedPods.bind(kube);
    kube.listManagedPods = async () => {
      const snapshot = await list(); // taken before the changes below
      kube.addPod(managedPod("a", "late", ["redis:7"]));
      kube.deletePod("a", "old");
      await settle(); // their events reach the tracker before the list returns
      return snapshot;
    };
    await tracker.resync();
    kube.listManagedPods = list;
    await converge();
    expect(kube.cachedImages.get("docker.io-library-redis-7")?.status?.usedBy?.count).toBe(1);
    expect(usedBy()?.count).toBe(0);
  });

  it("recreates a CachedImage deleted while pods still use it", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"]));
    await converge();
    await kube.deleteCachedImage(NGINX);
    await converge();
    expect(ci()?.spec?.sourceImage).toBe("nginx:1.25");
  });
});

describe("Tracker: Repository pull secrets", () => {
  beforeEach(() => {
    kube.accounts.set("b/builder", {
      metadata: { namespace: "b", name: "builder" },
      imagePullSecrets: [{ name: "sa-secret" }],
    });
  });

  it("merges the pull secrets of every pod and service account using the repository", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"], { pullSecrets: ["regcred"] }));
    kube.addPod(managedPod("b", "p2", ["nginx:1.26"], { serviceAccount: "builder", pullSecrets: ["other"] }));
    await converge();
    expect(kube.repositories.get(REPO)?.spec).toEqual({
      name: "docker.io/library/nginx",
      pullSecrets: [
        { namespace: "a", name: "regcred" },
        { namespace: "b", name: "other" },
        { namespace: "b", name: "sa-secret" },
      ],
    });
  });

  it("never clobbers user fields or entries, and drops its own entries once no pod references them", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"], { pullSecrets: ["regcred"] }));
    kube.addPod(managedPod("a", "p2", ["nginx:1.25"], { pullSecrets: ["old"] }));
    await converge();
    // A user adds settings and an entry of their own (another field manager).
    const repo = kube.repositories.get(REPO) as Repository;
    repo.spec = {
      ...(repo.spec as NonNullable<Repository["spec"]>),
      pullSecretNames: ["legacy"],
      pullSecretsNamespace: "ops",
      updateInterval: "1h",
      updateFilters: ["^nginx:1\\."],
      pullSecrets: [...(repo.spec?.pullSecrets ?? []), { namespace: "ops", name: "user-added" }],
    };
    kube.deletePod("a", "p2");
    await tracker.resync();
    await converge();
    expect(kube.repositories.get(REPO)?.spec).toEqual({
      name: "docker.io/library/nginx",
      pullSecretNames: ["legacy"],
      pullSecretsNamespace: "ops",
      updateInterval: "1h",
      updateFilters: ["^nginx:1\\."],
      pullSecrets: [
        { namespace: "ops", name: "user-added" },
        { namespace: "a", name: "regcred" },
      ],
    });
  });

  it("leaves a repository no pod uses as it is (its credentials stay for later refreshes)", async () => {
    kube.addPod(managedPod("a", "p1", ["nginx:1.25"], { pullSecrets: ["regcred"] }));
    await converge();
    kube.deletePod("a", "p1");
    await tracker.resync();
    await converge();
    expect(kube.repositories.get(REPO)?.spec?.pullSecrets).toEqual([{ namespace: "a", name: "regcred" }]);
    expect(kube.calls.filter(c => c.startsWith("applyRepository"))).toHaveLength(1);
  });

  it("creates the Repository of a CachedImage made by hand, with its name only", async () => {
    await kube.applyCachedImage("ghcr.io-org-app-v1", "ghcr.io/org/app:v1", {});
    await converge();
    expect(kube.repositories.get("ghcr.io-org-app")?.spec).toEqual({ name: "ghcr.io/org/app" });
    expect(kube.calls.filter(c => c.startsWith("ensureRepository"))).toHaveLength(1);
    expect(kube.calls.filter(c => c.startsWith("applyRepository"))).toHaveLength(0);
    expect(ci("ghcr.io-org-app-v1")?.metadata?.labels).toEqual({ [LABEL_REPOSITORY]: "ghcr.io-org-app" });
  });
});
