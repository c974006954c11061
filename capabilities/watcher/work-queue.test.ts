import { describe, expect, it } from "vitest";
import { FakeTime } from "../testing/fake-registry";
import { silentLog } from "../testing/fakes";
import { WorkQueue } from "./work-queue";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>(r => (resolve = r));
  return { promise, resolve };
}

describe("WorkQueue", () => {
  it("coalesces a key queued twice, caps concurrency, and re-runs a key added while it runs", async () => {
    const time = new FakeTime();
    const runs: string[] = [];
    const gates = new Map<string, { promise: Promise<void>; resolve: () => void }>();
    let running = 0;
    let peak = 0;
    const queue = new WorkQueue({
      concurrency: 2,
      scheduler: time,
      log: silentLog,
      process: async key => {
        runs.push(key);
        peak = Math.max(peak, ++running);
        const gate = deferred();
        gates.set(key, gate);
        await gate.promise;
        running--;
      },
    });
    queue.add("a");
    queue.add("b");
    queue.add("c");
    queue.add("c"); // coalesced with the queued one
    queue.add("a"); // a runs: re-run once afterwards
    queue.add("a");
    expect(runs).toEqual(["a", "b"]);
    gates.get("a")?.resolve();
    await new Promise(setImmediate);
    gates.get("b")?.resolve();
    await new Promise(setImmediate);
    for (const gate of gates.values()) gate.resolve();
    await new Promise(setImmediate);
    for (const gate of gates.values()) gate.resolve();
    await queue.idle();
    expect(runs.sort()).toEqual(["a", "a", "b", "c"]);
    expect(peak).toBe(2);
  });

  it("addAfter: the earliest requeue wins, forget cancels it, errors are contained", async () => {
    const time = new FakeTime();
    const runs: number[] = [];
    const queue = new WorkQueue({
      concurrency: 1,
      scheduler: time,
      log: silentLog,
      process: async () => {
        runs.push(time.now().getTime());
        throw new Error("contained");
      },
    });
    const t0 = time.now().getTime();
    queue.addAfter("k", 5000, t0);
    queue.addAfter("k", 1000, t0);
    queue.addAfter("k", 9000, t0);
    await time.advance(10_000);
    expect(runs).toEqual([t0 + 1000]);
    queue.addAfter("k", 1000, time.now().getTime());
    queue.forget("k");
    await time.advance(5000);
    expect(runs).toHaveLength(1);
    queue.stop();
    queue.add("k");
    expect(queue.size).toBe(0);
  });
});
