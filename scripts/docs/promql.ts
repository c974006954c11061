/**
 * A small, deliberately conservative PromQL scanner for the dashboard test: the metric names an expression selects.
 * It is not a parser; it removes what cannot be a metric name (strings, label matchers, ranges, grouping clauses,
 * numbers, Grafana variables) and keeps identifiers that are not called as functions and are not keywords.
 */

const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "atan2",
]);
/** String literals of every PromQL quoting style. */
const STRINGS_RE = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;
const KEYWORDS_WITH_LIST = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;

/** Metric names selected by a PromQL expression (Grafana's `label_values(expr, label)` is unwrapped first). */
export function metricNames(expr: string): string[] {
  let e = expr.replace(/^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s, "$1");
  e = e
    .replace(STRINGS_RE, '""') // string literals
    .replace(/\$\{[^}]*\}|\$\w+/g, " ") // Grafana variables: $__rate_interval, ${datasource}
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // range and subquery selectors
    .replace(KEYWORDS_WITH_LIST, " ")
    .replace(/\boffset\s+-?\w+/g, " ")
    .replace(/(^|[^\w:.])(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(?![\w:])/g, "$1 "); // numbers
  const names = new Set<string>();
  for (const m of e.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call !== undefined || KEYWORDS.has(name as string)) continue;
    names.add(name as string);
  }
  return [...names];
}

/** A metric selector's label names: `m{a="x", b=~"y"}` → `{ metric: "m", labels: ["a", "b"] }`. */
export interface Selector {
  metric: string;
  labels: string[];
}

/** The selectors with label matchers of an expression. */
export function selectors(expr: string): Selector[] {
  const e = expr.replace(STRINGS_RE, '""');
  return [...e.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)].map(m => ({
    metric: m[1] as string,
    labels: [...(m[2] as string).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(
      l => l[1] as string,
    ),
  }));
}

/** Label names of the `by (…)` / `without (…)` / `on (…)` / `ignoring (…)` / `group_*(…)` clauses. */
export function groupingLabels(expr: string): string[] {
  const e = expr.replace(STRINGS_RE, '""');
  return [...e.matchAll(KEYWORDS_WITH_LIST)].flatMap(m =>
    [...(m[0] as string).replace(/^\w+\s*\(/, "").matchAll(/[a-zA-Z_][a-zA-Z0-9_]*/g)].map(l => l[0]),
  );
}
