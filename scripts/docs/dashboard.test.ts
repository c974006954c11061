/**
 * deploy/grafana/kuik-dashboard.json only queries metrics that exist: every metric name in every PromQL expression
 * (panels and variables) must be registered by kuik's proxy, watcher or Pepr registry (histogram and summary series
 * suffixes allowed), or be one of the few other components' metrics docs/metrics.md lists as external; and every
 * label it filters or groups by must be one those metrics carry (or a scrape target label). Renaming a metric or a
 * label in the code breaks this test until the dashboard follows.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { documentedMetrics, ROOT } from "./doc-tables";
import { exposedMetrics, seriesNames } from "./exposed-metrics";
import { groupingLabels, metricNames, selectors } from "./promql";

interface Target {
  expr?: string;
}
interface Panel {
  type: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: { uid?: string };
}
interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

/** Other components' metrics may only come from these: kube-apiserver, CNCF distribution, Prometheus itself. */
const EXTERNAL_PREFIXES = ["apiserver_", "registry_"];
const EXTERNAL_NAMES = ["up"];

const dashboard = JSON.parse(
  readFileSync(join(ROOT, "deploy", "grafana", "kuik-dashboard.json"), "utf8"),
) as Dashboard;

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap(p => [p, ...allPanels(p.panels ?? [])]);
}

const panels = allPanels(dashboard.panels).filter(p => p.type !== "row");
const expressions: { where: string; expr: string }[] = [
  ...panels.flatMap(p => (p.targets ?? []).map(t => ({ where: `panel "${p.title}"`, expr: t.expr ?? "" }))),
  ...dashboard.templating.list
    .filter(v => v.type === "query")
    .map(v => ({
      where: `variable ${v.name}`,
      expr: typeof v.query === "string" ? v.query : (v.query?.query ?? v.definition ?? ""),
    })),
];

/** Labels Prometheus adds to every scraped series (Prometheus Operator targets, plus the documented `node`). */
const TARGET_LABELS = ["namespace", "pod", "node", "job", "instance", "service", "endpoint", "container"];

/** Series name → `<endpoint> <family>`. */
let known: Map<string, string>;
/** Series name → label names it may carry. */
let labelsOf: Map<string, Set<string>>;

beforeAll(async () => {
  known = new Map();
  labelsOf = new Map();
  const documented = new Map(documentedMetrics().map(d => [`${d.endpoint} ${d.name}`, d.labels]));
  const add = (m: { name: string; type: string }, endpoint: string, labels: string[]): void => {
    for (const s of seriesNames(m)) {
      known.set(s, `${endpoint} ${m.name}`);
      const extra = s.endsWith("_bucket") ? ["le"] : m.type === "summary" && s === m.name ? ["quantile"] : [];
      labelsOf.set(s, new Set([...labels, ...extra, ...TARGET_LABELS]));
    }
  };
  for (const m of await exposedMetrics()) {
    add(m, m.endpoint, m.labels ?? documented.get(`${m.endpoint} ${m.name}`) ?? []);
  }
  for (const m of documentedMetrics().filter(d => d.endpoint === "external")) add(m, "external", m.labels);
});

describe("deploy/grafana/kuik-dashboard.json", () => {
  it("is a schemaVersion ≥ 39 dashboard with datasource, namespace and node variables", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const variables = new Map(dashboard.templating.list.map(v => [v.name, v]));
    expect(variables.get("datasource")?.type).toBe("datasource");
    expect(variables.get("namespace")?.type).toBe("query");
    expect(variables.get("node")?.type).toBe("query");
  });

  it("queries through the ${datasource} variable everywhere", () => {
    const fixed = [
      ...panels.filter(p => p.datasource?.uid !== "${datasource}").map(p => `panel "${p.title}"`),
      ...dashboard.templating.list
        .filter(v => v.type === "query" && v.datasource?.uid !== "${datasource}")
        .map(v => `variable ${v.name}`),
    ];
    expect(fixed).toEqual([]);
  });

  it("has a query and a description on every panel", () => {
    expect(panels.length).toBeGreaterThan(20);
    const bare = panels.filter(p => (p.targets ?? []).length === 0 || !p.description).map(p => p.title);
    expect(bare).toEqual([]);
  });

  it("uses only metrics that kuik registers or docs/metrics.md lists as external", () => {
    const unknown: string[] = [];
    const used = new Set<string>();
    for (const { where, expr } of expressions) {
      const names = metricNames(expr);
      if (names.length === 0) unknown.push(`${where}: no metric in ${JSON.stringify(expr)}`);
      for (const name of names) {
        used.add(name);
        if (!known.has(name)) unknown.push(`${where}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
    // Every kuik endpoint is on the dashboard.
    const endpoints = new Set([...used].map(n => known.get(n)?.split(" ")[0]));
    expect([...endpoints].sort()).toEqual(["external", "pepr", "proxy", "watcher"]);
  });

  it("filters and groups only by labels the metrics carry", () => {
    const wrong: string[] = [];
    for (const { where, expr } of expressions) {
      for (const { metric, labels } of selectors(expr)) {
        for (const label of labels)
          if (!labelsOf.get(metric)?.has(label)) wrong.push(`${where}: ${metric}{${label}}`);
      }
      const available = new Set(metricNames(expr).flatMap(n => [...(labelsOf.get(n) ?? [])]));
      for (const label of groupingLabels(expr))
        if (!available.has(label)) wrong.push(`${where}: by (${label})`);
    }
    expect(wrong).toEqual([]);
  });

  it("takes external metrics only from kube-apiserver, the registry and Prometheus", () => {
    const external = documentedMetrics().filter(d => d.endpoint === "external");
    expect(external.length).toBeGreaterThan(0);
    const foreign = external
      .map(m => m.name)
      .filter(n => !EXTERNAL_NAMES.includes(n) && !EXTERNAL_PREFIXES.some(p => n.startsWith(p)));
    expect(foreign).toEqual([]);
  });
});

describe("metricNames", () => {
  it.each([
    [
      'sum by (source) (rate(kuik_proxy_requests_total{namespace="$namespace", kind=~"a|b"}[$__rate_interval]))',
      ["kuik_proxy_requests_total"],
    ],
    [
      'histogram_quantile(0.99, sum by (le, upstream) (rate(x_seconds_bucket{a="b"}[5m])))',
      ["x_seconds_bucket"],
    ],
    ['sum(rate(a_total[1m])) / sum(rate(b_total{c="d"}[1m]))', ["a_total", "b_total"]],
    ["a / on(pod) group_left(node) b offset 1h", ["a", "b"]],
    ["max without (instance) (up) > 0.5 and bool 1e9", ["up"]],
    ['label_values(kuik_proxy_build_info{namespace="$namespace"}, node)', ["kuik_proxy_build_info"]],
    ["sum(kuik_proxy_renamed_total)", ["kuik_proxy_renamed_total"]],
  ])("%s", (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });

  it("reads selectors and grouping labels", () => {
    const expr =
      'sum by (le, upstream) (rate(a_bucket{namespace="x", kind=~"a|b}"}[5m])) / on(pod) b{c!="d"}';
    expect(selectors(expr)).toEqual([
      { metric: "a_bucket", labels: ["namespace", "kind"] },
      { metric: "b", labels: ["c"] },
    ]);
    expect(groupingLabels(expr)).toEqual(["le", "upstream", "pod"]);
  });

  it("flags a name that no registry has", () => {
    expect(known.has("kuik_proxy_renamed_total")).toBe(false);
    expect(known.has("kuik_proxy_requests_total")).toBe(true);
    expect(known.has("kuik_copy_duration_seconds_bucket")).toBe(true);
    expect(known.has("kuik_copy_duration_seconds")).toBe(false); // a histogram has no bare series
    expect(known.has("pepr_mutate_count")).toBe(true);
  });
});
