import { describe, expect, it } from "vitest";
import { decide, type GateOptions, type ProxyStatus } from "./decision";

const NOW = 1_000_000;
const ON: GateOptions = { enabled: true, staleAfterMs: 30_000 };

/** `nodes` nodes n0…, of which the `ready` ones have a Ready proxy. */
function status(nodes: number, ready: string[], ageMs = 0): ProxyStatus {
  const all = new Set([...Array.from({ length: nodes }, (_, i) => `n${i}`), ...ready]);
  return { observedAt: NOW - ageMs, nodes: all, readyNodes: new Set(ready) };
}

describe("decide: the proxy gate's table", () => {
  it.each([
    // [case, status, node, rewrite, reason]
    ["gate off", undefined, undefined, true, "gate-off", { enabled: false, staleAfterMs: 1 }],
    ["never read", undefined, undefined, false, "not-observed", ON],
    ["stale status", status(3, ["n0", "n1", "n2"], 30_001), undefined, false, "stale", ON],
    ["stale status, node known", status(3, ["n0"], 60_000), "n0", false, "stale", ON],
    ["just fresh enough", status(3, ["n0", "n1", "n2"], 30_000), undefined, true, "majority-ready", ON],
    ["no proxy Pod", status(0, []), undefined, false, "not-installed", ON],
    ["no proxy Pod, node known", status(0, []), "n0", false, "not-installed", ON],
    ["available everywhere", status(3, ["n0", "n1", "n2"]), undefined, true, "majority-ready", ON],
    ["partial rollout (2 of 3)", status(3, ["n0", "n1"]), undefined, true, "majority-ready", ON],
    ["rollout on every node", status(3, []), undefined, false, "majority-unavailable", ON],
    ["half the nodes", status(4, ["n0", "n1"]), undefined, false, "majority-unavailable", ON],
    ["one-node cluster mid-rollout", status(1, []), undefined, false, "majority-unavailable", ON],
    ["node known and Ready", status(3, ["n0"]), "n0", true, "ready-on-node", ON],
    ["node known, not Ready there", status(3, ["n0", "n1"]), "n2", false, "not-ready-on-node", ON],
  ] as const)("%s", (_name, s, node, rewrite, reason, options) => {
    const verdict = decide(s, node, NOW, options);
    expect(verdict).toMatchObject({ rewrite, reason });
    if (!verdict.rewrite) expect(verdict.detail.length).toBeGreaterThan(0);
  });

  it("names the numbers in its detail", () => {
    expect(decide(status(4, ["n0"]), undefined, NOW, ON)).toEqual({
      rewrite: false,
      reason: "majority-unavailable",
      detail: "the proxy is Ready on 1 of 4 nodes",
    });
    expect(decide(status(3, [], 45_000), undefined, NOW, ON)).toMatchObject({
      detail: "the proxy's status is 45s old",
    });
  });
});
