/**
 * kuik on a real node (cluster.ts): installed with `kubectl apply --server-side -k`, every component a Pod, and
 * Pods pulled by the kubelet through the proxy's hostPort. Asserts on Pod status from the API server and on the
 * node's containerd image store.
 *
 * The scenarios that stop the origin or delete its image run last.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_IP, simpleRequest } from "../harness/net";
import { runOk } from "../harness/tools";
import type { KubeObject } from "../harness/control-plane";
import type { PushedImage } from "../harness/images";
import { startCluster, type Cluster } from "./cluster";
import { listPods, podImages, podRunning, scenario, waitFor } from "./stack";

const NS = "e2e-node";
const IGNORED_NS = "e2e-node-ignored";

/** The image the kubelet reports for the first container (what it pulled). */
function statusImage(pod: KubeObject): string {
  const st = (pod.status ?? {}) as { containerStatuses?: Array<{ image?: string }> };
  return st.containerStatuses?.[0]?.image ?? "";
}

describe("kuik on a real node", () => {
  let cluster: Cluster;
  const images: Record<string, PushedImage> = {};

  const runningPods = (ns: string, app: string, count: number, timeoutMs = 120_000): Promise<KubeObject[]> =>
    cluster.runningPods(ns, app, count, timeoutMs);

  const deploy = (name: string, image: string, replicas = 1, ns = NS): Promise<unknown> =>
    cluster.cp.apply(scenario("deployment", { NAME: name, NAMESPACE: ns, IMAGE: image, REPLICAS: replicas }));

  /** Remove every name of an image from the node's containerd, so the next Pod must pull it again. */
  const forgetOnNode = async (repo: string): Promise<void> => {
    await cluster.forgetOnNode(repo);
    expect((await cluster.nodeImages()).filter(n => n.includes(repo))).toEqual([]);
  };

  /** Scale a Deployment to 0, forget its image on the node, scale it back: the new Pod must pull again. */
  const restartWithoutNodeCopy = async (name: string, repo: string): Promise<KubeObject> => {
    await cluster.kubectl(["scale", "deployment", name, "-n", NS, "--replicas=0"]);
    await waitFor(
      `the Pods of ${name} gone`,
      async () => (await listPods(cluster, NS, `app=${name}`)).length === 0,
      {
        timeoutMs: 60_000,
      },
    );
    await forgetOnNode(repo);
    await cluster.kubectl(["scale", "deployment", name, "-n", NS, "--replicas=1"]);
    const [pod] = await runningPods(NS, name, 1);
    return pod as KubeObject;
  };

  beforeAll(async () => {
    cluster = await startCluster({ env: { KUIK_WEBHOOK_IGNORED_NAMESPACES: IGNORED_NS } });
    await cluster.namespaceWithPullSecret(NS);
    await cluster.namespaceWithPullSecret(IGNORED_NS);
    for (const name of ["app", "gone", "deleted", "cacheless", "rollout", "optout"]) {
      images[name] = await cluster.pushToOrigin({ size: "1M", seed: `node-${name}` }, `node/${name}`, "v1");
    }
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it("runs every kuik component as a Pod on the node", async () => {
    const pods = [
      ...(await listPods(cluster, "kuik-system")),
      ...(await listPods(cluster, "pepr-system")),
    ].filter(podRunning);
    const names = pods.map(p => p.metadata?.name ?? "");
    expect(names.filter(n => n.startsWith("kube-image-keeper-registry-"))).toHaveLength(1);
    expect(names.filter(n => n.startsWith("kube-image-keeper-proxy-"))).toHaveLength(1);
    expect(names.filter(n => n.startsWith("pepr-kuik-watcher-"))).toHaveLength(1);
    expect(
      names.filter(n => /^pepr-kuik-[a-z0-9]+-[a-z0-9]+$/.test(n) && !n.includes("watcher")),
    ).toHaveLength(2);
    for (const p of pods) expect(p.spec?.nodeName).toBe(cluster.node.name);
  });

  it("(1) runs a Deployment of a private origin image pulled by the kubelet through the proxy, cached and Ready", async () => {
    const app = images.app as PushedImage;
    await deploy("app", app.ref, 2);
    const pods = await runningPods(NS, "app", 2);
    for (const p of pods) {
      expect(podImages(p)).toEqual([cluster.proxyImage(app.ref)]);
      expect(statusImage(p)).toBe(cluster.proxyImage(app.ref));
    }
    expect(await cluster.nodeImages()).toContain(cluster.proxyImage(app.ref));
    const ci = await cluster.cachedImageReady(app.ref);
    expect(ci.status?.digest).toBe(app.digest);
    expect(await cluster.cacheDigest("node/app", "v1")).toBe(app.digest);
  });

  it("(5) leaves an opted-out Pod and a Pod of an ignored namespace alone: both Running with their origin image", async () => {
    const img = images.optout as PushedImage;
    await cluster.cp.apply(
      scenario("untouched", { IMAGE: img.ref, NAMESPACE: NS, IGNORED_NAMESPACE: IGNORED_NS }),
    );
    for (const [ns, name] of [
      [NS, "opted-out"],
      [IGNORED_NS, "in-ignored-namespace"],
    ] as const) {
      const pod = await waitFor(
        `${ns}/${name} Running`,
        async () => {
          const p = await cluster.kubectlJson(["get", "pod", name, "-n", ns]);
          return podRunning(p) ? p : undefined;
        },
        { timeoutMs: 120_000 },
      );
      expect(podImages(pod)).toEqual([img.ref]);
      expect(statusImage(pod)).toBe(img.ref);
    }
    const control = await waitFor(
      "control Pod Running",
      async () => {
        const p = await cluster.kubectlJson(["get", "pod", "control", "-n", NS]);
        return podRunning(p) ? p : undefined;
      },
      { timeoutMs: 120_000 },
    );
    expect(podImages(control)).toEqual([cluster.proxyImage(img.ref)]);
  });

  it("(#13) lets only the node reach its proxy: a Pod cannot connect to it, the node's loopback can", async () => {
    const [proxy] = await listPods(cluster, "kuik-system", "app.kubernetes.io/component=proxy");
    const hostIp = String((proxy?.status as { hostIP?: string } | undefined)?.hostIP ?? NODE_IP);
    // From a Pod: the node's address (what the proxy Pod's IP is, on the host network) and the proxy Pod's IP.
    const targets = [...new Set([hostIp, String((proxy?.status as { podIP?: string })?.podIP ?? hostIp)])];
    const script = targets
      .map(ip => `busybox wget -T 3 -q -O- http://${ip}:${cluster.proxyPort}/v2/ && echo "REACHED ${ip}"`)
      .concat(['echo "done"'])
      .join("; ");
    await cluster.cp.apply(
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: "proxy-probe",
          namespace: NS,
          labels: { "kube-image-keeper.enix.io/image-caching-policy": "ignore" },
        },
        spec: {
          restartPolicy: "Never",
          containers: [
            { name: "probe", image: "docker.io/library/registry:3.0.0", command: ["sh", "-c", script] },
          ],
        },
      }),
    );
    await waitFor(
      "the probe Pod finished",
      async () => {
        const p = await cluster.kubectlJson(["get", "pod", "proxy-probe", "-n", NS]);
        return ["Succeeded", "Failed"].includes(String((p.status as { phase?: string })?.phase));
      },
      { timeoutMs: 120_000 },
    );
    const logs = (await cluster.kubectl(["logs", "proxy-probe", "-n", NS])).stdout;
    expect(logs).toContain("done");
    expect(logs).not.toContain("REACHED");
    // The kubelet's way in: the node's loopback.
    const r = await simpleRequest(`http://127.0.0.1:${cluster.proxyPort}/v2/`);
    expect(r.status).toBe(200);
  });

  it("(3) starts new Pods while the cache registry is gone: the proxy serves them from the origin", async () => {
    const img = images.cacheless as PushedImage;
    const sts = ["statefulset", "kube-image-keeper-registry", "-n", "kuik-system"];
    await cluster.kubectl(["scale", ...sts, "--replicas=0"]);
    await waitFor(
      "no cache registry Pod",
      async () => {
        const pods = await listPods(cluster, "kuik-system", "app.kubernetes.io/component=registry");
        return pods.length === 0;
      },
      { timeoutMs: 60_000 },
    );
    try {
      await deploy("cacheless", img.ref, 1);
      const [pod] = await runningPods(NS, "cacheless", 1);
      expect(statusImage(pod as KubeObject)).toBe(cluster.proxyImage(img.ref));
    } finally {
      await cluster.kubectl(["scale", ...sts, "--replicas=1"]);
      await cluster.kubectl(["rollout", "status", ...sts, "--timeout=120s"], { timeoutMs: 130_000 });
    }
  });

  it("(4) starts every Pod while the proxy DaemonSet rolls out", async () => {
    const img = images.rollout as PushedImage;
    const ds = ["daemonset/kube-image-keeper-proxy", "-n", "kuik-system"];
    await cluster.kubectl(["rollout", "restart", ...ds]);
    const started = Date.now();
    await deploy("rollout", img.ref, 3);
    // On one node the rollout leaves no proxy for a moment: Pods admitted then keep their original image (the
    // gate), those rewritten just before and stuck are rescued; the others pull through the new proxy Pod. Either
    // way every Pod starts (one kubelet image-pull back-off is 10 s, then 20 s).
    const pods = await runningPods(NS, "rollout", 3, 120_000);
    for (const p of pods) expect([cluster.proxyImage(img.ref), img.ref]).toContain(statusImage(p));
    await cluster.kubectl(["rollout", "status", ...ds, "--timeout=60s"], { timeoutMs: 70_000 });
    expect(Date.now() - started).toBeLessThan(120_000);
    await cluster.rewriting(NS); // the gate reopens within one poll of the new proxy Pod being Ready
  });

  it("(2a) restarts a Pod from the cache once its image is deleted at the origin", async () => {
    const img = images.deleted as PushedImage;
    await deploy("deleted", img.ref, 1);
    await runningPods(NS, "deleted", 1);
    await cluster.cachedImageReady(img.ref);
    // delete the manifest at the origin: the origin answers MANIFEST_UNKNOWN from now on
    await runOk("curl", [
      "-sSf", "-X", "DELETE", "--cacert", cluster.origin.caFile ?? "",
      "-u", `${cluster.origin.username}:${cluster.origin.password}`,
      `https://${cluster.origin.host}/v2/node/deleted/manifests/${img.digest}`,
    ]); // prettier-ignore
    const pod = await restartWithoutNodeCopy("deleted", "node/deleted");
    expect(statusImage(pod)).toBe(cluster.proxyImage(img.ref));
    expect(await cluster.nodeImages()).toContain(cluster.proxyImage(img.ref));
  });

  it("(2b) restarts a Pod from the cache while the origin is down", async () => {
    const img = images.gone as PushedImage;
    await deploy("gone", img.ref, 1);
    await runningPods(NS, "gone", 1);
    await cluster.cachedImageReady(img.ref);
    await cluster.origin.stop();
    const pod = await restartWithoutNodeCopy("gone", "node/gone");
    expect(statusImage(pod)).toBe(cluster.proxyImage(img.ref));
    expect(await cluster.nodeImages()).toContain(cluster.proxyImage(img.ref));
  });
});
