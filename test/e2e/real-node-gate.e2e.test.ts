/**
 * The proxy gate and the rescue on a real node (issue #12): kuik never leaves a Pod unpullable.
 *
 * 1. kuik installed with a proxy image that cannot be pulled: new Pods start with their original images, the
 *    watcher says why (Event on the DaemonSet, `proxy_serving` 0) and so does the admission's log; once the image is
 *    fixed and the proxy Ready, the next Pod is rewritten again.
 * 2. The proxy DaemonSet deleted while a rewritten Deployment scales up: its Pods, admitted while the proxy served,
 *    cannot pull through it; the watcher gives them their original images back and they reach Running.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATA_PLANE } from "../../capabilities/bootstrap/manifests.generated";
import type { KubeObject } from "../harness/control-plane";
import type { PushedImage } from "../harness/images";
import { startCluster, type Cluster } from "./cluster";
import { listPods, podImages, podRunning, waitFor } from "./stack";

const NS = "e2e-gate";
const KUIK_NS = "kuik-system";
const DS = "kube-image-keeper-proxy";
const UNPULLABLE = "docker.io/library/kuik-proxy:unpullable";

/** The proxy image deploy/base installs (what a fixed DaemonSet runs again). */
function shippedProxyImage(): string {
  const ds = DATA_PLANE.find(o => o.kind === "DaemonSet") as
    | { spec: { template: { spec: { containers: { image: string }[] } } } }
    | undefined;
  const image = ds?.spec.template.spec.containers[0]?.image;
  if (image === undefined) throw new Error("no proxy DaemonSet in deploy/base");
  return image;
}

/** A Deployment of `image` pulled with the origin's Secret; `nodeSelector` keeps its Pods Pending until it matches. */
function deployment(
  name: string,
  image: string,
  replicas: number,
  nodeSelector?: Record<string, string>,
): object {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          imagePullSecrets: [{ name: "origin-pull-secret" }],
          ...(nodeSelector ? { nodeSelector } : {}),
          containers: [{ name: "app", image, imagePullPolicy: "IfNotPresent" }],
        },
      },
    },
  };
}

describe("the proxy gate on a real node", () => {
  let cluster: Cluster;
  const images: Record<string, PushedImage> = {};

  type Event = KubeObject & {
    involvedObject?: { kind?: string; name?: string; namespace?: string };
    message?: string;
  };
  const events = async (reason: string, ns = KUIK_NS): Promise<Event[]> =>
    ((await cluster.kubectlJson(["get", "events", "-n", ns, "--field-selector", `reason=${reason}`])).items ??
      []) as Event[];

  /** The watcher's /metrics, through the API server's Pod proxy. */
  const watcherMetrics = async (): Promise<string> => {
    const [watcher] = await listPods(cluster, "pepr-system", "app=pepr-kuik-watcher");
    const name = watcher?.metadata?.name ?? "";
    const r = await cluster.kubectl([
      "get",
      "--raw",
      `/api/v1/namespaces/pepr-system/pods/${name}:8080/proxy/metrics`,
    ]);
    return r.stdout;
  };

  const apply = (o: object): Promise<unknown> => cluster.cp.apply(JSON.stringify(o));

  beforeAll(async () => {
    cluster = await startCluster({
      waitForProxy: false,
      patches: [
        {
          apiVersion: "apps/v1",
          kind: "DaemonSet",
          metadata: { name: DS, namespace: KUIK_NS },
          spec: { template: { spec: { containers: [{ name: "proxy", image: UNPULLABLE }] } } },
        },
      ],
    });
    await cluster.namespaceWithPullSecret(NS);
    for (const name of ["held", "after", "rescued"]) {
      images[name] = await cluster.pushToOrigin({ size: "1M", seed: `gate-${name}` }, `gate/${name}`, "v1");
    }
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it("(1) admits Pods with their original images while the proxy image cannot be pulled, and says why", async () => {
    await waitFor(
      "the proxy Pod failing to pull its image",
      async () => {
        const [pod] = await listPods(cluster, KUIK_NS, "app.kubernetes.io/component=proxy");
        const waiting = (
          pod?.status as { containerStatuses?: { state?: { waiting?: { reason?: string } } }[] }
        )?.containerStatuses?.[0]?.state?.waiting?.reason;
        return waiting === "ErrImagePull" || waiting === "ImagePullBackOff";
      },
      { timeoutMs: 120_000 },
    );
    const held = images.held as PushedImage;
    await apply(deployment("held", held.ref, 2));
    const pods = await cluster.runningPods(NS, "held", 2, 120_000);
    for (const p of pods) expect(podImages(p)).toEqual([held.ref]);
    // The watcher's Event on the DaemonSet and its metric; the admission's log line.
    const [event] = await waitFor("a ProxyUnavailable Event", async () => {
      const found = await events("ProxyUnavailable");
      return found.length > 0 ? found : undefined;
    });
    expect(event?.involvedObject).toMatchObject({ kind: "DaemonSet", name: DS, namespace: KUIK_NS });
    expect(String(event?.message)).toContain("new Pods keep their original images");
    expect(await watcherMetrics()).toMatch(
      /kube_image_keeper_controller_proxy_serving\{reason="[a-z-]+"\} 0/,
    );
    const logs = await cluster.kubectl(["logs", "-n", "pepr-system", "-l", "app=pepr-kuik", "--tail=-1"]);
    expect(logs.stdout).toContain("proxy not serving: pod admitted with its original images");
  });

  it("(1) rewrites the next Pod once the proxy image is fixed and the proxy Ready", async () => {
    await cluster.kubectl(["set", "image", "-n", KUIK_NS, `daemonset/${DS}`, `proxy=${shippedProxyImage()}`]);
    await cluster.kubectl(["rollout", "status", "-n", KUIK_NS, `daemonset/${DS}`, "--timeout=180s"], {
      timeoutMs: 200_000,
    });
    await waitFor("a ProxyAvailable Event", async () => (await events("ProxyAvailable")).length > 0, {
      timeoutMs: 30_000,
    });
    await cluster.rewriting(NS);
    const after = images.after as PushedImage;
    await apply(deployment("after", after.ref, 1));
    const [pod] = await cluster.runningPods(NS, "after", 1, 120_000);
    expect(podImages(pod as KubeObject)).toEqual([cluster.proxyImage(after.ref)]);
    expect(await watcherMetrics()).toMatch(
      /kube_image_keeper_controller_proxy_serving\{reason="[a-z-]+"\} 1/,
    );
  });

  it("(2) rescues the Pods of a rewritten Deployment when the proxy DaemonSet is deleted under them", async () => {
    const img = images.rescued as PushedImage;
    const label = "kuik-e2e/rescue";
    // Admitted (and rewritten) while the proxy serves, but Pending: no node carries the label yet.
    await apply(deployment("rescued", img.ref, 3, { [label]: "yes" }));
    const pending = await waitFor("3 Pending Pods", async () => {
      const found = await listPods(cluster, NS, "app=rescued");
      return found.length === 3 ? found : undefined;
    });
    for (const p of pending) expect(podImages(p)).toEqual([cluster.proxyImage(img.ref)]);
    await cluster.kubectl(["delete", "daemonset", DS, "-n", KUIK_NS, "--wait=true"], { timeoutMs: 120_000 });
    await waitFor(
      "no proxy Pod left",
      async () => (await listPods(cluster, KUIK_NS, "app.kubernetes.io/component=proxy")).length === 0,
      { timeoutMs: 60_000 },
    );
    // Now the Pods land on the node, whose proxy is gone: the kubelet cannot pull localhost:<port>/…
    const scheduledAt = Date.now();
    await cluster.kubectl(["label", "node", cluster.node.name, `${label}=yes`]);
    const running = await cluster.runningPods(NS, "rescued", 3, 60_000 + 20_000);
    const seconds = (Date.now() - scheduledAt) / 1000;
    for (const p of running) expect(podImages(p)).toEqual([img.ref]);
    const rescued = (await events("ImageRescued", NS)).map(e => e.involvedObject?.name);
    expect(new Set(rescued)).toEqual(new Set(running.map(p => p.metadata?.name)));
    expect(await watcherMetrics()).toMatch(/kube_image_keeper_controller_pods_rescued_total 3/);
    console.log(`rescue: 3 Pods Running ${seconds.toFixed(1)} s after they were scheduled`);
    expect(running.every(podRunning)).toBe(true);
  });
});
