import { describe, expect, it } from "vitest";
import { FakeTime } from "../testing/fake-registry";
import { FakeKube, silentLog } from "../testing/fakes";
import { EventRecorder } from "./events";

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
