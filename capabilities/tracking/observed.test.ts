import { describe, expect, it } from "vitest";
import { ObservedMap, resourceVersionOf } from "./observed";

const entries = (m: ObservedMap<string>) => [...m.map.entries()].sort();

describe("ObservedMap", () => {
  it("ignores events older than what it holds", () => {
    const m = new ObservedMap<string>();
    m.set("a", "v5", 5);
    m.set("a", "v3", 3);
    expect(m.map.get("a")).toBe("v5");
  });

  it.each([
    ["a late MODIFIED older than the deletion", 6, undefined],
    ["a MODIFIED at the deletion's own version", 7, undefined],
    ["a re-creation, newer than the deletion", 9, "v9"],
    ["an event without a version (0: no ordering known)", 0, "v0"],
  ])("after a deletion at 7: %s", (_name, rv, expected) => {
    const m = new ObservedMap<string>();
    m.set("a", "v5", 5);
    m.delete("a", 7);
    m.set("a", `v${rv}`, rv);
    expect(m.map.get("a")).toBe(expected);
  });

  it("a tombstone outlives the next resync, and goes at the one after", () => {
    const m = new ObservedMap<string>();
    m.set("a", "a5", 5);
    m.delete("a", 7);
    m.beginResync();
    m.finishResync([{ key: "a", value: "a5", rv: 5 }]); // a stale list (served from a watch cache) still has a
    expect(entries(m)).toEqual([]);
    m.set("a", "a6", 6); // a late event from before the deletion
    expect(entries(m)).toEqual([]);
    m.beginResync();
    m.finishResync([]);
    m.set("a", "a6", 6); // a whole resync period later: no longer remembered (and no longer plausible)
    expect(entries(m)).toEqual([["a", "a6"]]);
  });

  it("a resync list replaces the content but never undoes newer events received while it was in flight", () => {
    const m = new ObservedMap<string>();
    m.set("gone-before", "x", 1);
    m.set("kept", "k1", 2);
    m.set("deleted-during", "d", 3);
    m.beginResync();
    // Events while the LIST is in flight.
    m.set("created-during", "c", 10);
    m.delete("deleted-during", 11);
    m.set("kept", "k-event", 8);
    // The list was taken at revision 9: it has kept@9, deleted-during@3, not created-during, not gone-before.
    m.finishResync([
      { key: "kept", value: "k-list", rv: 9 },
      { key: "deleted-during", value: "d", rv: 3 },
    ]);
    expect(entries(m)).toEqual([
      ["created-during", "c"],
      ["kept", "k-list"],
    ]);
  });

  it("without a resync window, the list simply replaces; an aborted resync changes nothing", () => {
    const m = new ObservedMap<string>();
    m.set("a", "1", 1);
    m.beginResync();
    m.abortResync();
    m.finishResync([{ key: "b", value: "2", rv: 2 }]);
    expect(entries(m)).toEqual([["b", "2"]]);
  });

  it.each([
    ["42", 42],
    [undefined, 0],
    ["abc", 0],
  ])("resourceVersion %j → %i", (rv, n) => {
    expect(resourceVersionOf({ metadata: { resourceVersion: rv } })).toBe(n);
  });
});
