/**
 * Post-processing of the MutatingWebhookConfiguration `pepr build` generates, in the plain manifest
 * (`dist/pepr-module-kuik.yaml`) and in the Helm chart template (`dist/kuik-chart/templates/mutation-webhook.yaml`),
 * which Pepr gives no option for:
 * - `objectSelector`: pods labelled `kube-image-keeper.enix.io/image-caching-policy=ignore` never reach the
 *   webhook (kuik v1's selector; the callback checks the label too);
 * - `reinvocationPolicy: IfNeeded`: kuik runs again when a later webhook changed the pod (v1's setting);
 * - `failurePolicy` must stay `Ignore` (or the chart's value expression): anything else is an error.
 *
 * The chart template is not YAML (Helm directives), so the edit is structural on lines: only keys of the webhook
 * items of a MutatingWebhookConfiguration document are looked at, at their exact indentation, and nothing is
 * substituted by search-and-replace (docs/limitations.md B1 shows what that does). Applying it twice changes nothing.
 *
 * Usage: `tsx scripts/webhook-config.ts <file>...` (rewrites each file in place).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { IMAGE_CACHING_POLICY_IGNORE, LABEL_IMAGE_CACHING_POLICY } from "../capabilities/shared/labels";

/** Thrown when the generated webhook is not what the post-processing expects. */
export class WebhookConfigError extends Error {
  readonly code = "WEBHOOK_CONFIG";
}

const ALLOWED_FAILURE_POLICY =
  /^(?:Ignore|'Ignore'|"Ignore"|\{\{-? *\.Values\.admission\.failurePolicy *-?\}\})$/;

/** Adds kuik's settings to every webhook of every MutatingWebhookConfiguration document of `text`. */
export function patchWebhookConfig(text: string): string {
  const lines = text.split("\n");
  const docs = splitDocuments(lines);
  let found = 0;
  for (const doc of docs.reverse()) {
    if (!lines.slice(doc.start, doc.end).some(l => l === "kind: MutatingWebhookConfiguration")) continue;
    found++;
    const items = webhookItems(lines, doc.start, doc.end);
    if (items.length === 0) throw new WebhookConfigError("MutatingWebhookConfiguration without webhooks");
    for (const item of items.reverse()) patchItem(lines, item);
  }
  if (found === 0) throw new WebhookConfigError("no MutatingWebhookConfiguration found");
  return lines.join("\n");
}

interface Range {
  start: number;
  end: number;
}

interface Item extends Range {
  /** Indentation of the item's keys. */
  indent: number;
}

function splitDocuments(lines: string[]): Range[] {
  const docs: Range[] = [];
  let start = 0;
  lines.forEach((line, i) => {
    if (line === "---") {
      docs.push({ start, end: i });
      start = i + 1;
    }
  });
  docs.push({ start, end: lines.length });
  return docs;
}

const indentOf = (line: string): number => line.length - line.trimStart().length;

/** The list items under the top-level `webhooks:` key of a document. */
function webhookItems(lines: string[], start: number, end: number): Item[] {
  const head = lines.findIndex((l, i) => i >= start && i < end && l === "webhooks:");
  if (head < 0) return [];
  const items: Item[] = [];
  let dash: number | undefined;
  for (let i = head + 1; i < end; i++) {
    const line = lines[i] as string;
    if (line.trim() === "") continue;
    const indent = indentOf(line);
    if (indent === 0) break; // next top-level key
    if (dash === undefined && line.trimStart().startsWith("- ")) dash = indent;
    if (indent === dash && line.trimStart().startsWith("- ")) {
      const last = items.at(-1);
      if (last) last.end = i;
      items.push({ start: i, end, indent: indent + 2 });
    }
  }
  const last = items.at(-1);
  if (last)
    last.end = lastContentLine(lines, last.start, Math.min(last.end, nextTopLevel(lines, head + 1, end))) + 1;
  return items;
}

function nextTopLevel(lines: string[], from: number, end: number): number {
  for (let i = from; i < end; i++)
    if ((lines[i] as string).trim() !== "" && indentOf(lines[i] as string) === 0) return i;
  return end;
}

function lastContentLine(lines: string[], start: number, end: number): number {
  let i = end - 1;
  while (i > start && (lines[i] as string).trim() === "") i--;
  return i;
}

/** The item's keys (at its key indentation) with their line index. */
function itemKeys(lines: string[], item: Item): Map<string, number> {
  const keys = new Map<string, number>();
  const keyRe = new RegExp(`^ {${item.indent}}([A-Za-z][A-Za-z0-9]*):`);
  const firstRe = new RegExp(`^ {${item.indent - 2}}- ([A-Za-z][A-Za-z0-9]*):`);
  for (let i = item.start; i < item.end; i++) {
    const m = (i === item.start ? firstRe : keyRe).exec(lines[i] as string);
    if (m?.[1] !== undefined) keys.set(m[1], i);
  }
  return keys;
}

function patchItem(lines: string[], item: Item): void {
  const keys = itemKeys(lines, item);
  const pad = " ".repeat(item.indent);
  const failure = keys.get("failurePolicy");
  const policy =
    failure === undefined ? "" : (lines[failure] as string).replace(/^.*?failurePolicy:\s*/, "").trim();
  if (!ALLOWED_FAILURE_POLICY.test(policy)) {
    throw new WebhookConfigError(`failurePolicy must stay Ignore (found ${JSON.stringify(policy)})`);
  }
  const insert: string[] = [];
  const reinvocation = keys.get("reinvocationPolicy");
  if (reinvocation === undefined) insert.push(`${pad}reinvocationPolicy: IfNeeded`);
  else lines[reinvocation] = `${pad}reinvocationPolicy: IfNeeded`;
  const selector = keys.get("objectSelector");
  if (selector === undefined) {
    insert.push(
      `${pad}objectSelector:`,
      `${pad}  matchExpressions:`,
      `${pad}    - key: ${LABEL_IMAGE_CACHING_POLICY}`,
      `${pad}      operator: NotIn`,
      `${pad}      values:`,
      `${pad}        - ${IMAGE_CACHING_POLICY_IGNORE}`,
    );
  } else if (
    !lines.slice(selector, item.end).some(l => l.trim() === `- key: ${LABEL_IMAGE_CACHING_POLICY}`)
  ) {
    throw new WebhookConfigError("the webhook already has an objectSelector that is not kuik's");
  }
  lines.splice(item.end, 0, ...insert);
}

function main(files: string[]): void {
  if (files.length === 0) throw new WebhookConfigError("usage: webhook-config.ts <file>...");
  for (const file of files) writeFileSync(file, patchWebhookConfig(readFileSync(file, "utf8")));
}

if (process.argv[1]?.endsWith("webhook-config.ts")) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`webhook-config: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
