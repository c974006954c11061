import { describe, expect, it } from "vitest";
import { GcPacer, type GcFunction } from "./gc-pacer";

describe("GcPacer", () => {
  it("asks for one minor GC per `everyBytes` streamed, across requests", () => {
    const calls: unknown[] = [];
    const gc: GcFunction = options => void calls.push(options);
    const pacer = new GcPacer(1000, gc);
    for (let i = 0; i < 25; i++) pacer.add(100);
    expect(calls).toEqual([{ type: "minor" }, { type: "minor" }]);
    expect(pacer.collections).toBe(2);
    expect(pacer.active).toBe(true);
  });

  it("is a no-op without --expose-gc or with pacing disabled", () => {
    const calls: unknown[] = [];
    for (const pacer of [new GcPacer(10, undefined), new GcPacer(0, () => void calls.push(1))]) {
      pacer.add(1_000_000);
      expect(pacer.active).toBe(false);
      expect(pacer.collections).toBe(0);
    }
    expect(calls).toEqual([]);
  });

  it("finds the gc function --expose-gc installs", () => {
    const exposed = typeof (globalThis as { gc?: unknown }).gc === "function";
    expect(GcPacer.fromGlobal(1024).active).toBe(exposed);
  });
});
