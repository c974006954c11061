/**
 * Expiry, retain and the registry's garbage collection on a real node (cluster.ts), installed with
 * components/persistence (a PersistentVolume of the node's) and components/garbage-collection:
 * - (6a) an image whose Pods the kubelet really stopped expires after the delay, its manifest removed from the cache;
 *   a CachedImage with `spec.retain: true` stays, image included;
 * - (6b) the garbage-collection CronJob, run now with `kubectl create job --from=cronjob/…` by the real Job controller
 *   and kubelet, restarts the registry through its `garbage-collect` init container while Pods pull through the
 *   proxy: the Job succeeds, the collection ran, every Pod is Running and no pull failed.
 */
import { mkdirSync, chownSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeObject } from "../harness/control-plane";
import type { PushedImage } from "../harness/images";
import { NODE_NAME } from "../harness/node";
import { startCluster, type Cluster } from "./cluster";
import { listPods, scenario, waitFor } from "./stack";

const NS = "e2e-node-gc";
/** Expiry delay in seconds (the setting is in days). */
const EXPIRY_SECONDS = 15;
const CRONJOB = "kube-image-keeper-registry-garbage-collection";

/** A hostPath PersistentVolume on the node, owned by the registry's user, for the registry's claim. */
function registryVolume(dir: string): object[] {
  const path = join(dir, "volumes", "registry");
  mkdirSync(path, { recursive: true });
  chownSync(path, 65532, 65532);
  return [
    {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name: "kuik-registry-data" },
      spec: {
        capacity: { storage: "20Gi" },
        accessModes: ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: "Retain",
        hostPath: { path, type: "Directory" },
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [NODE_NAME] }] },
            ],
          },
        },
      },
    },
  ];
}

describe("expiry and garbage collection on a real node", () => {
  let cluster: Cluster;
  const images: Record<string, PushedImage> = {};

  const ready = (image: PushedImage): Promise<unknown> => cluster.cachedImageReady(image.ref);

  const runningPods = (app: string, count: number): Promise<KubeObject[]> =>
    cluster.runningPods(NS, app, count);

  beforeAll(async () => {
    cluster = await startCluster({
      env: {
        KUIK_CACHED_IMAGES_EXPIRY_DELAY: String(EXPIRY_SECONDS / 86_400),
        KUIK_EXPIRY_SWEEP_INTERVAL_SECONDS: "1",
      },
      components: ["persistence", "garbage-collection"],
      objects: registryVolume,
    });
    await cluster.namespaceWithPullSecret(NS);
    for (const name of ["expiring", "retained", "during-gc", "cached"]) {
      images[name] = await cluster.pushToOrigin({ size: "1M", seed: `gc-${name}` }, `gc/${name}`, "v1");
    }
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it("(6a) expires an image whose Pods are gone, and keeps a retained one", async () => {
    const expiring = images.expiring as PushedImage;
    const retained = images.retained as PushedImage;
    await cluster.cp.apply(
      [
        scenario("deployment", { NAME: "expiring", NAMESPACE: NS, IMAGE: expiring.ref, REPLICAS: 1 }),
        scenario("deployment", { NAME: "retained", NAMESPACE: NS, IMAGE: retained.ref, REPLICAS: 1 }),
      ].join("\n---\n"),
    );
    await runningPods("expiring", 1);
    await runningPods("retained", 1);
    await Promise.all([ready(expiring), ready(retained)]);
    const retainedName = cluster.cachedImageName(retained.ref);
    await cluster.kubectl([
      "patch",
      "cachedimage",
      retainedName,
      "--type",
      "merge",
      "-p",
      '{"spec":{"retain":true}}',
    ]);
    // the kubelet stops the Pods for real; kuik sees them go
    await cluster.kubectl(["delete", "deployment", "expiring", "retained", "-n", NS, "--wait=true"]);
    await waitFor("the Pods stopped", async () => (await listPods(cluster, NS)).length === 0, {
      timeoutMs: 90_000,
    });
    await waitFor(
      "the expiring CachedImage deleted",
      async () => (await cluster.getCachedImage(cluster.cachedImageName(expiring.ref))) === undefined,
      { timeoutMs: (EXPIRY_SECONDS + 60) * 1000 },
    );
    expect(await cluster.cacheDigest("gc/expiring", "v1")).toBeUndefined();
    const kept = await cluster.getCachedImage(retainedName);
    expect(kept?.spec?.retain).toBe(true);
    expect(await cluster.cacheDigest("gc/retained", "v1")).toBe(retained.digest);
  });

  it("(6b) runs the garbage-collection Job while Pods pull: the registry restarts collected, no pull fails", async () => {
    const cached = images.cached as PushedImage;
    const duringGc = images["during-gc"] as PushedImage;
    // Both images pulled once and cached first: a private image's very first pull through the proxy can be refused
    // (401) until the watcher's credentials reach the proxy, which is not what this test is about.
    await cluster.cp.apply(
      [
        scenario("deployment", { NAME: "cached", NAMESPACE: NS, IMAGE: cached.ref, REPLICAS: 1 }),
        scenario("deployment", { NAME: "during-gc", NAMESPACE: NS, IMAGE: duringGc.ref, REPLICAS: 1 }),
      ].join("\n---\n"),
    );
    await runningPods("cached", 1);
    await runningPods("during-gc", 1);
    await Promise.all([ready(cached), ready(duringGc)]);
    for (const app of ["cached", "during-gc"]) {
      await cluster.kubectl(["scale", "deployment", app, "-n", NS, "--replicas=0"]);
    }
    await waitFor("the Pods gone", async () => (await listPods(cluster, NS)).length === 0, {
      timeoutMs: 60_000,
    });
    await cluster.forgetOnNode("gc/cached", "gc/during-gc");
    const before = await cluster.kubectlJson([
      "get",
      "pod",
      "kube-image-keeper-registry-0",
      "-n",
      "kuik-system",
    ]);
    const jobStart = new Date(Date.now() - 1000);

    // the registry restarts while both Deployments' Pods pull the images the node no longer has
    await cluster.kubectl(["create", "job", "gc-now", `--from=cronjob/${CRONJOB}`, "-n", "kuik-system"]);
    for (const app of ["cached", "during-gc"]) {
      await cluster.kubectl(["scale", "deployment", app, "-n", NS, "--replicas=2"]);
    }

    const job = await waitFor(
      "the Job succeeded",
      async () => {
        const j = await cluster.kubectlJson(["get", "job", "gc-now", "-n", "kuik-system"]);
        return (j.status?.succeeded as number | undefined) === 1 ? j : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1000 },
    );
    expect(job.status?.failed ?? 0).toBe(0);
    await runningPods("cached", 2);
    await runningPods("during-gc", 2);

    const after = await cluster.kubectlJson([
      "get",
      "pod",
      "kube-image-keeper-registry-0",
      "-n",
      "kuik-system",
    ]);
    expect(after.metadata?.uid).not.toBe(before.metadata?.uid);
    const gc = await cluster.kubectl([
      "logs",
      "kube-image-keeper-registry-0",
      "-n",
      "kuik-system",
      "-c",
      "garbage-collect",
    ]);
    expect(gc.stdout).toMatch(/kuik-gc: (done|empty storage)/);
    const init = (after.status?.initContainerStatuses ?? []) as Array<{
      state?: { terminated?: { exitCode?: number } };
    }>;
    expect(init[0]?.state?.terminated?.exitCode).toBe(0);

    const events = await cluster.kubectlJson(["get", "events", "-n", NS]);
    const failedPulls = (events.items ?? []).filter(
      e =>
        String(e.reason) === "Failed" &&
        /pull/i.test(String(e.message)) &&
        new Date(String(e.lastTimestamp ?? e.eventTime)) >= jobStart,
    );
    expect(failedPulls.map(e => String(e.message))).toEqual([]);
    // the collection kept what is tagged: the retained and cached images are still served from the cache
    expect(await cluster.cacheDigest("gc/retained", "v1")).toBe(images.retained?.digest);
    expect(await cluster.cacheDigest("gc/cached", "v1")).toBe(cached.digest);
  });
});
