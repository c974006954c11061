/**
 * The operator docs point at things that exist: every relative markdown link resolves to a file (and its `#anchor`
 * to a heading of that file), and every repository path written in backticks (`capabilities/…/sweep.ts`,
 * `deploy/base/proxy.yaml`) names a file or directory of the repository. A moved file or renamed heading fails here.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./doc-tables";

const DOCS = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter(f => f.endsWith(".md"))
    .map(f => `docs/${f}`),
];

/** GitHub's heading anchor: lower-case, punctuation dropped, spaces to dashes. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, "")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map(m => slug(m[1] as string)));
}

/** Relative link targets of a markdown text (code blocks excluded). */
export function links(markdown: string): string[] {
  const text = markdown.replace(/```[\s\S]*?```/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map(m => m[1] as string).filter(t => !/^[a-z]+:/i.test(t));
}

const PATH_RE =
  /`((?:capabilities|proxy|registry-client|deploy|scripts|test|bench|docs)\/[A-Za-z0-9_./-]+)`/g;

describe.each(DOCS)("%s", doc => {
  const file = join(ROOT, doc);
  const text = readFileSync(file, "utf8");

  it("has relative links that resolve, anchors included", () => {
    const broken: string[] = [];
    for (const target of links(text)) {
      const [path = "", anchor] = target.split("#");
      const resolved = path === "" ? file : join(dirname(file), path);
      if (!existsSync(resolved)) broken.push(`${target}: no ${relative(ROOT, resolved)}`);
      else if (anchor !== undefined && resolved.endsWith(".md") && !anchors(resolved).has(anchor)) {
        broken.push(`${target}: no heading #${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("names repository paths that exist", () => {
    const missing = [...text.matchAll(PATH_RE)]
      .map(m => (m[1] as string).replace(/[.]$/, ""))
      // Build outputs (`proxy/dist/…`) exist only after a build: the unit tier runs on a clean checkout.
      .filter(p => !/(^|\/)dist\//.test(p))
      .filter(p => !existsSync(join(ROOT, p)));
    expect([...new Set(missing)]).toEqual([]);
  });
});

describe("slug and links", () => {
  it.each([
    ["Leftovers of kube-image-keeper v1", "leftovers-of-kube-image-keeper-v1"],
    ["ImagePullBackOff on `localhost:7439/…`", "imagepullbackoff-on-localhost7439"],
    ["Scraping the watcher", "scraping-the-watcher"],
  ])("%s → %s", (heading, anchor) => {
    expect(slug(heading)).toBe(anchor);
  });

  it("keeps relative targets only, outside code blocks", () => {
    const md = "[a](a.md) [b](https://x.y) [c](b.md#h)\n```\n[d](d.md)\n```";
    expect(links(md)).toEqual(["a.md", "b.md#h"]);
  });
});
