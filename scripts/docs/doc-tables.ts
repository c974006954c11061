/**
 * Reads the metric tables of docs/metrics.md: rows between `<!-- metrics: <endpoint> -->` and `<!-- /metrics -->`,
 * first column the backticked metric name, then type and backticked label names (`—` for none).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");

/** One documented metric row. */
export interface DocumentedMetric {
  /** The marker's endpoint: `proxy`, `watcher`, `pepr` or `external`. */
  endpoint: string;
  name: string;
  type: string;
  labels: string[];
  line: number;
}

const ROW_RE = /^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*([a-z]+)\s*\|([^|]*)\|/;

/** Parses every marked metric table of a markdown text. */
export function parseMetricTables(markdown: string): DocumentedMetric[] {
  const rows: DocumentedMetric[] = [];
  let endpoint: string | undefined;
  markdown.split("\n").forEach((text, index) => {
    const open = /^<!-- metrics: (\w+) -->$/.exec(text.trim());
    if (open) {
      endpoint = open[1];
      return;
    }
    if (text.trim() === "<!-- /metrics -->") {
      endpoint = undefined;
      return;
    }
    const row = endpoint === undefined ? null : ROW_RE.exec(text);
    if (row === null || endpoint === undefined) return;
    const labels = [...(row[3] ?? "").matchAll(/`([a-zA-Z_][a-zA-Z0-9_]*)`/g)].map(m => m[1] as string);
    rows.push({ endpoint, name: row[1] as string, type: row[2] as string, labels, line: index + 1 });
  });
  return rows;
}

/** The metric tables of docs/metrics.md. */
export function documentedMetrics(): DocumentedMetric[] {
  return parseMetricTables(readFileSync(join(ROOT, "docs", "metrics.md"), "utf8"));
}
