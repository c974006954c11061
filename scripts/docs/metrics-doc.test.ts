/**
 * docs/metrics.md lists exactly the metrics kuik's registries expose (proxy, watcher, Pepr), in the table of the
 * endpoint that serves them, with the registered type and label names. A metric added, renamed or dropped in
 * proxy/src/metrics.ts or capabilities/watcher/metrics.ts (or by a Pepr upgrade) fails here until the doc
 * follows.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { documentedMetrics, parseMetricTables, type DocumentedMetric } from "./doc-tables";
import { exposedMetrics, parseExposition, type ExposedMetric } from "./exposed-metrics";

let exposed: ExposedMetric[];
let documented: DocumentedMetric[];

beforeAll(async () => {
  exposed = await exposedMetrics();
  documented = documentedMetrics();
});

const key = (m: { endpoint: string; name: string }): string => `${m.endpoint} ${m.name}`;

describe("docs/metrics.md", () => {
  it("reads metrics from all three registries", () => {
    const endpoints = new Set(exposed.map(m => m.endpoint));
    expect([...endpoints].sort()).toEqual(["pepr", "proxy", "watcher"]);
    // Sanity: the v1-compatible names are really registered.
    const names = exposed.map(m => m.name);
    expect(names).toContain("kube_image_keeper_proxy_http_requests_total");
    expect(names).toContain("kube_image_keeper_controller_cached_images");
    expect(names).toContain("pepr_mutate_timeouts");
  });

  it("documents every exposed metric, under the endpoint that serves it", () => {
    const doc = new Set(documented.map(key));
    expect(exposed.map(key).filter(k => !doc.has(k))).toEqual([]);
  });

  it("documents no metric that is not exposed (external ones aside)", () => {
    const real = new Set(exposed.map(key));
    const stale = documented.filter(m => m.endpoint !== "external" && !real.has(key(m)));
    expect(stale.map(m => `${key(m)} (line ${m.line})`)).toEqual([]);
  });

  it("lists each metric once", () => {
    const seen = documented.map(key);
    expect(seen.filter((k, i) => seen.indexOf(k) !== i)).toEqual([]);
  });

  it("gives the registered type and label names", () => {
    const doc = new Map(documented.map(m => [key(m), m]));
    const wrong: string[] = [];
    for (const m of exposed) {
      const row = doc.get(key(m));
      if (row === undefined) continue;
      if (row.type !== m.type) wrong.push(`${key(m)}: type ${row.type}, registered ${m.type}`);
      if (m.labels !== undefined && row.labels.join(",") !== m.labels.join(",")) {
        wrong.push(`${key(m)}: labels ${row.labels.join(",")}, registered ${m.labels.join(",")}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe("the doc-table parser", () => {
  it("reads marked rows only, with their labels", () => {
    const md = [
      "| `outside_table` | counter | — | not marked | new |",
      "<!-- metrics: proxy -->",
      "| metric | type | labels | meaning | v1 |",
      "| `a_total` | counter | `x`, `y` | meaning with `code` | new |",
      "| `b` | gauge | — | no labels | same |",
      "<!-- /metrics -->",
      "| `after_end` | gauge | — | ignored | new |",
    ].join("\n");
    expect(parseMetricTables(md).map(m => [m.endpoint, m.name, m.type, m.labels])).toEqual([
      ["proxy", "a_total", "counter", ["x", "y"]],
      ["proxy", "b", "gauge", []],
    ]);
  });

  it("reads families from a text exposition", () => {
    const text = "# HELP a_total A\n# TYPE a_total counter\na_total 1\n# TYPE b_seconds histogram\n";
    expect(parseExposition(text)).toEqual([
      { name: "a_total", type: "counter" },
      { name: "b_seconds", type: "histogram" },
    ]);
  });
});
