import { describe, expect, it } from "vitest";
import { CircuitBreaker, type BreakerState } from "./breaker";

function setup(failureThreshold = 3) {
  const clock = { now: 1_000_000 };
  const changes: [BreakerState, BreakerState][] = [];
  const breaker = new CircuitBreaker({
    failureThreshold,
    cooldownMs: 1000,
    maxCooldownMs: 4000,
    now: () => clock.now,
    onChange: (state, previous) => changes.push([previous, state]),
  });
  return { clock, breaker, changes };
}

describe("CircuitBreaker", () => {
  it("stays closed below the threshold, and a success resets the count", () => {
    const { breaker } = setup();
    breaker.recordFailure();
    breaker.recordFailure();
    breaker.recordSuccess();
    breaker.recordFailure();
    breaker.recordFailure();
    expect(breaker.state).toBe("closed");
    expect(breaker.decide()).toBe("cache");
  });

  it("opens after N consecutive failures and sends traffic to the origin during the cooldown", () => {
    const { breaker, clock, changes } = setup();
    for (let i = 0; i < 3; i++) breaker.recordFailure();
    expect(breaker.state).toBe("open");
    expect(changes).toEqual([["closed", "open"]]);
    clock.now += 999;
    expect(breaker.decide()).toBe("origin");
  });

  it("after the cooldown grants exactly one probe, then routes to the origin until it settles", () => {
    const { breaker, clock } = setup(1);
    breaker.recordFailure();
    clock.now += 1000;
    expect(breaker.decide()).toBe("probe");
    expect(breaker.state).toBe("half-open");
    expect(breaker.decide()).toBe("origin");
    expect(breaker.decide()).toBe("origin");
  });

  it("closes when the probe succeeds", () => {
    const { breaker, clock, changes } = setup(1);
    breaker.recordFailure();
    clock.now += 1000;
    breaker.decide();
    breaker.recordSuccess();
    expect(breaker.state).toBe("closed");
    expect(breaker.decide()).toBe("cache");
    expect(changes).toEqual([
      ["closed", "open"],
      ["open", "half-open"],
      ["half-open", "closed"],
    ]);
  });

  it("re-opens with a doubled cooldown (capped) when the probe fails, and resets it once closed", () => {
    const { breaker, clock } = setup(1);
    breaker.recordFailure();
    for (const expected of [2000, 4000, 4000]) {
      clock.now += breaker.cooldownMs;
      expect(breaker.decide()).toBe("probe");
      breaker.recordFailure();
      expect(breaker.state).toBe("open");
      expect(breaker.cooldownMs).toBe(expected);
      clock.now += expected - 1;
      expect(breaker.decide()).toBe("origin");
      clock.now += 1;
    }
    expect(breaker.decide()).toBe("probe");
    breaker.recordSuccess();
    expect(breaker.cooldownMs).toBe(1000);
  });

  it("ignores stragglers while open: a late success does not close it, a late failure does not extend it", () => {
    const { breaker, clock } = setup(1);
    breaker.recordFailure();
    clock.now += 500;
    breaker.recordSuccess();
    breaker.recordFailure();
    expect(breaker.state).toBe("open");
    clock.now += 500;
    expect(breaker.decide()).toBe("probe");
  });

  it("survives a throwing observer and rejects a zero threshold", () => {
    const breaker = new CircuitBreaker({
      failureThreshold: 1,
      cooldownMs: 10,
      maxCooldownMs: 10,
      onChange: () => {
        throw new Error("observer bug");
      },
    });
    breaker.recordFailure();
    expect(breaker.state).toBe("open");
    expect(() => new CircuitBreaker({ failureThreshold: 0, cooldownMs: 1, maxCooldownMs: 1 })).toThrow(
      RangeError,
    );
  });
});
