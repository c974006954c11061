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
