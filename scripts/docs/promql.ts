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
const KEYWORDS_WITH_LIST = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;

/** Metric names selected by a PromQL expression (Grafana's `label_values(expr, label)` is unwrapped first). */
export function metricNames(expr: string): string[] {
  let e = expr.replace(/^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s, "$1");
  e = e
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
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
