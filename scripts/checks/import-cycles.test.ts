/**
 * No import cycles (type-only imports included) in the three islands: a cycle ties two files together, and is how
 * `shared/` once came to depend on `bootstrap/` (which imported its types back).
 */
import { describe, expect, it } from "vitest";
import { ROOT } from "../docs/doc-tables";
import { cycles, importGraph, importSpecifiers } from "./import-graph";

describe("import graph", () => {
  it.each(["capabilities", "proxy/src", "registry-client/src"])("%s has no import cycle", dir => {
    const graph = importGraph(ROOT, [dir]);
    expect(graph.size).toBeGreaterThan(10);
    expect(cycles(graph)).toEqual([]);
  });

  it("finds the cycles of a graph, self-imports included", () => {
    const graph = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a", "d"]],
      ["d", []],
      ["e", ["e"]],
    ]);
    expect(cycles(graph)).toEqual([["a", "b", "c"], ["e"]]);
    expect(
      cycles(
        new Map([
          ["a", ["b"]],
          ["b", []],
        ]),
      ),
    ).toEqual([]);
  });

  it("reads relative imports, type-only and dynamic ones too, and skips packages and comments", () => {
    const source = [
      'import { a } from "./a";',
      'import type { B } from "../b";',
      'export { c } from "./c";',
      'import {\n  d,\n  type D,\n} from "./d";',
      'const e = await import("./e");',
      'import { readFileSync } from "node:fs";',
      '// import { f } from "./f";',
    ].join("\n");
    expect(importSpecifiers(source)).toEqual(["./a", "../b", "./c", "./d", "./e"]);
  });
});
