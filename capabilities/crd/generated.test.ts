/**
 * The committed types in generated/ must be what scripts/gen-crd-types.sh produces from deploy/crds/*.yaml:
 * a CRD edited without regenerating (or a hand edit of a generated file) fails here.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
const COMMITTED = join(ROOT, "capabilities/crd/generated");
const out = mkdtempSync(join(tmpdir(), "kuik-crd-types-"));

afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Neutralises what may legitimately differ between two runs: the output path and the final newline. */
function normalise(text: string, dir: string): string {
  return text.replaceAll(dir, "<out>").replace(/\r\n/g, "\n").trimEnd() + "\n";
}

describe("capabilities/crd/generated", () => {
  it("is up to date with deploy/crds (run scripts/gen-crd-types.sh)", () => {
    execFileSync("bash", [join(ROOT, "scripts/gen-crd-types.sh"), out], {
      cwd: ROOT,
      stdio: "pipe",
      timeout: 60_000,
    });
    const files = readdirSync(out).sort();
    expect(files).toEqual(["cachedimage-v1alpha1.ts", "repository-v1alpha1.ts"]);
    expect(readdirSync(COMMITTED).sort()).toEqual(files);
    for (const file of files) {
      const fresh = normalise(readFileSync(join(out, file), "utf8"), out);
      const committed = normalise(readFileSync(join(COMMITTED, file), "utf8"), COMMITTED);
      expect(committed, `${file} is stale: run scripts/gen-crd-types.sh`).toBe(fresh);
    }
  }, 60_000);
});
