import { describe, expect, it } from "vitest";
import { EventRecorder } from "../kube/events";
import { FakeKube, silentLog } from "../testing/fakes";
import type { GateVerdict } from "./decision";
import { planRescue, Rescuer, type RescuablePod } from "./rescue";

const PORT = 7439;

function pod(
  over: { waiting?: string; initWaiting?: string; node?: string; image?: string } = {},
): RescuablePod {
  return {
    metadata: { name: "web-1", namespace: "shop", uid: "uid-1" },
    spec: {
      ...(over.node === undefined ? { nodeName: "n1" } : over.node === "" ? {} : { nodeName: over.node }),
      initContainers: [{ name: "init", image: "localhost:7439/ghcr.io/acme/init:1" }],
      containers: [
        { name: "app", image: over.image ?? "localhost:7439/nginx:1.25" },
        { name: "side", image: "busybox:1.36" },
      ],
    },
    status: {
      containerStatuses: [
        { name: "app", state: over.waiting ? { waiting: { reason: over.waiting } } : { running: {} } },
        { name: "side", state: { waiting: { reason: "ImagePullBackOff" } } }, // not kuik's image
      ],
      initContainerStatuses: [
        { name: "init", state: over.initWaiting ? { waiting: { reason: over.initWaiting } } : {} },
      ],
    },
  } as RescuablePod;
}

describe("planRescue", () => {
  it("puts back the original of each container failing to pull through the proxy", () => {
    const plan = planRescue(pod({ waiting: "ImagePullBackOff", initWaiting: "ErrImagePull" }), PORT);
    expect(plan).toEqual({
      namespace: "shop",
      name: "web-1",
      uid: "uid-1",
      node: "n1",
      ops: [
        { op: "test", path: "/spec/containers/0/image", value: "localhost:7439/nginx:1.25" },
        { op: "replace", path: "/spec/containers/0/image", value: "nginx:1.25" },
        { op: "test", path: "/spec/initContainers/0/image", value: "localhost:7439/ghcr.io/acme/init:1" },
        { op: "replace", path: "/spec/initContainers/0/image", value: "ghcr.io/acme/init:1" },
      ],
      containers: [
        { container: "app", from: "localhost:7439/nginx:1.25", to: "nginx:1.25" },
        { container: "init", from: "localhost:7439/ghcr.io/acme/init:1", to: "ghcr.io/acme/init:1" },
      ],
    });
  });

  it.each([
    ["nothing failing", pod()],
    ["another waiting reason", pod({ waiting: "ContainerCreating" })],
    ["not scheduled", pod({ waiting: "ErrImagePull", node: "" })],
    ["another local registry", pod({ waiting: "ErrImagePull", image: "localhost:5000/nginx:1.25" })],
    [
      "being deleted",
      { ...pod({ waiting: "ErrImagePull" }), metadata: { ...pod().metadata, deletionTimestamp: "x" } },
    ],
  ])("leaves a Pod alone: %s", (_name, p) => {
    expect(planRescue(p as RescuablePod, PORT)).toBeUndefined();
  });
});

describe("Rescuer", () => {
  function setUp(verdict: GateVerdict) {
    const kube = new FakeKube();
    const gate = { current: verdict, verdict: () => gate.current };
    let rescued = 0;
    const rescuer = new Rescuer({
      kube,
      events: new EventRecorder(kube, { now: () => new Date(0) }, silentLog),
      gate,
      port: PORT,
      log: silentLog,
      onRescued: () => rescued++,
    });
    return { kube, gate, rescuer, rescued: () => rescued };
  }
  const DOWN: GateVerdict = {
    rewrite: false,
    reason: "not-ready-on-node",
    detail: "no Ready proxy Pod on node n1",
  };

  it("rescues a stuck Pod whose node has no serving proxy, with an Event on the Pod", async () => {
    const { kube, rescuer, rescued } = setUp(DOWN);
    const stuck = pod({ waiting: "ErrImagePull" });
    kube.addPod(stuck);
    rescuer.onPod(stuck, false);
    await rescuer.sweep();
    const containers = kube.pods.get("shop/web-1")?.spec?.containers;
    expect(containers?.map(c => c.image)).toEqual(["nginx:1.25", "busybox:1.36"]);
    expect(rescued()).toBe(1);
    expect(kube.events).toHaveLength(1);
    expect(kube.events[0]).toMatchObject({
      metadata: { namespace: "shop" },
      involvedObject: { apiVersion: "v1", kind: "Pod", namespace: "shop", name: "web-1", uid: "uid-1" },
      reason: "ImageRescued",
      type: "Warning",
    });
    expect(kube.events[0]?.message).toContain("no Ready proxy Pod on node n1");
    expect(rescuer.candidates).toBe(0);
  });

  it("leaves a stuck Pod to the kubelet while its node's proxy serves, and rescues it once it stops", async () => {
    const { kube, gate, rescuer } = setUp({ rewrite: true, reason: "ready-on-node" });
    const stuck = pod({ waiting: "ImagePullBackOff" });
    kube.addPod(stuck);
    rescuer.onPod(stuck, false);
    await rescuer.sweep();
    expect(kube.calls.filter(c => c.startsWith("patchPod"))).toEqual([]);
    expect(rescuer.candidates).toBe(1);
    gate.current = DOWN;
    await rescuer.sweep();
    expect(kube.calls.filter(c => c.startsWith("patchPod"))).toEqual(["patchPod shop/web-1"]);
  });

  it("forgets a Pod that recovered or was deleted", async () => {
    const { kube, rescuer } = setUp(DOWN);
    rescuer.onPod(pod({ waiting: "ErrImagePull" }), false);
    rescuer.onPod(pod(), false);
    expect(rescuer.candidates).toBe(0);
    rescuer.onPod(pod({ waiting: "ErrImagePull" }), false);
    rescuer.onPod(pod({ waiting: "ErrImagePull" }), true);
    await rescuer.sweep();
    expect(kube.calls).toEqual([]);
  });

  it("does not overwrite a Pod changed since its event (the patch tests the image)", async () => {
    const { kube, rescuer, rescued } = setUp(DOWN);
    rescuer.onPod(pod({ waiting: "ErrImagePull" }), false);
    kube.addPod(pod({ image: "nginx:1.26" })); // the user changed it meanwhile
    await rescuer.sweep();
    expect(kube.pods.get("shop/web-1")?.spec?.containers?.[0]?.image).toBe("nginx:1.26");
    expect(rescued()).toBe(0);
    expect(kube.events).toEqual([]);
  });
});
