import { describe, expect, it } from "vitest";
import { KubeApiError, type ProxyPodLike } from "../kube/ports";
import { FakeKube, silentLog } from "../testing/fakes";
import type { GateVerdict } from "./decision";
import { PROXY_POD_SELECTOR, ProxyGate, proxyNodes } from "./gate";

const NS = "kuik-system";
const LABELS = { "app.kubernetes.io/name": "kube-image-keeper", "app.kubernetes.io/component": "proxy" };

function proxyPod(node: string, ready: boolean, extra: Partial<ProxyPodLike["metadata"]> = {}) {
  return {
    metadata: { name: `proxy-${node}`, labels: { ...LABELS }, ...extra },
    spec: { nodeName: node },
    status: { conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  };
}

function setUp(pods: ReturnType<typeof proxyPod>[]) {
  const kube = new FakeKube();
  // a Pod of the namespace that is not the proxy's: never counted
  const registry = { ...proxyPod("a", true), metadata: { name: "registry-0", labels: { app: "registry" } } };
  kube.namespacedPods.set(NS, [...pods, registry]);
  let now = 1_000;
  const changes: GateVerdict[] = [];
  const gate = new ProxyGate({
    kube,
    namespace: NS,
    now: () => now,
    log: silentLog,
    options: { enabled: true, staleAfterMs: 30_000 },
    onChange: v => changes.push(v),
  });
  return { kube, gate, changes, advance: (ms: number) => (now += ms) };
}

describe("ProxyGate", () => {
  it("is closed before its first read", () => {
    const { gate } = setUp([proxyPod("a", true)]);
    expect(gate.verdict()).toMatchObject({ rewrite: false, reason: "not-observed" });
  });

  it("reads the DaemonSet and its Pods, per node", async () => {
    const { gate, kube } = setUp([proxyPod("a", true), proxyPod("b", false)]);
    await gate.refresh();
    expect(gate.verdict("a")).toMatchObject({ rewrite: true, reason: "ready-on-node" });
    expect(gate.verdict("b")).toMatchObject({ rewrite: false, reason: "not-ready-on-node" });
    expect(gate.verdict()).toMatchObject({ rewrite: false, reason: "majority-unavailable" });
    expect(kube.calls).toEqual([`listPods ${NS}?${PROXY_POD_SELECTOR}`]);
  });

  it("closes when the proxy Pods are gone (DaemonSet deleted), and reports each change once", async () => {
    const { gate, kube, changes } = setUp([proxyPod("a", true)]);
    await gate.refresh();
    await gate.refresh();
    kube.namespacedPods.set(NS, []);
    await gate.refresh();
    expect(changes.map(c => c.reason)).toEqual(["majority-ready", "not-installed"]);
  });

  it("keeps the last status through failed reads, until it is stale", async () => {
    const { gate, kube, advance, changes } = setUp([proxyPod("a", true)]);
    await gate.refresh();
    kube.failures.set("listPods", new KubeApiError(0, "connection refused"));
    advance(20_000);
    await gate.refresh();
    expect(gate.verdict()).toMatchObject({ rewrite: true });
    advance(20_000);
    await gate.refresh();
    expect(gate.verdict()).toMatchObject({ rewrite: false, reason: "stale" });
    kube.failures.clear();
    await gate.refresh();
    expect(changes.map(c => c.reason)).toEqual(["majority-ready", "stale", "majority-ready"]);
  });

  it("shares one read between concurrent refreshes", async () => {
    const { gate, kube } = setUp([proxyPod("a", true)]);
    await Promise.all([gate.refresh(), gate.refresh(), gate.refresh()]);
    expect(kube.calls).toHaveLength(1);
  });

  it("always rewrites when turned off, and then reads nothing", () => {
    const kube = new FakeKube();
    const gate = new ProxyGate({
      kube,
      namespace: NS,
      now: () => 0,
      log: silentLog,
      options: { enabled: false, staleAfterMs: 1 },
    });
    gate.start();
    gate.stop();
    expect(gate.verdict()).toEqual({ rewrite: true, reason: "gate-off" });
    expect(kube.calls).toEqual([]);
  });
});

describe("proxyNodes", () => {
  it("counts scheduled Pods that are not being deleted, and which of them are Ready", () => {
    const { nodes, readyNodes } = proxyNodes([
      proxyPod("a", true),
      proxyPod("b", false),
      proxyPod("c", true, { deletionTimestamp: "2026-12-08T00:00:00Z" }),
      { metadata: { name: "pending" }, status: { conditions: [{ type: "Ready", status: "True" }] } },
      { metadata: { name: "no-status" }, spec: { nodeName: "d" } },
    ]);
    expect([...nodes]).toEqual(["a", "b", "d"]);
    expect([...readyNodes]).toEqual(["a"]);
  });
});
