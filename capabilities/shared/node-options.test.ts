import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ADMISSION_NODE_OPTIONS, WATCHER_NODE_OPTIONS } from "./node-options";

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

describe("each Pepr Deployment gets the Node flags of its job (#12)", () => {
  it("package.json pepr.env (both Deployments, and all of `npx pepr deploy`) carries the admission's", () => {
    const pkg = JSON.parse(read("package.json")) as { pepr: { env: Record<string, string> } };
    expect(pkg.pepr.env.NODE_OPTIONS).toBe(ADMISSION_NODE_OPTIONS);
    expect(ADMISSION_NODE_OPTIONS).not.toContain("semi-space");
  });

  it("the kustomize install gives the watcher its own", () => {
    const kustomization = read("deploy/kustomization.yaml");
    const watcherPatch = kustomization.slice(kustomization.indexOf("name: pepr-kuik-watcher"));
    expect(watcherPatch).toContain(
      `- name: NODE_OPTIONS\n                    value: "${WATCHER_NODE_OPTIONS}"`,
    );
  });
});
