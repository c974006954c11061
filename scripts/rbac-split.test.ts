import { describe, expect, it } from "vitest";
import { RbacSplitError, splitRbac } from "./rbac-split";

const deployment = (role: string, name: string): string =>
  [
    "apiVersion: apps/v1",
    "kind: Deployment",
    "metadata:",
    `  name: ${name}`,
    "  labels:",
    `    pepr.dev/controller: ${role}`,
    "spec:",
    "  template:",
    "    spec:",
    "      serviceAccountName: pepr-kuik",
    "",
  ].join("\n");

const MANIFEST = [deployment("watcher", "pepr-kuik-watcher"), deployment("admission", "pepr-kuik")].join(
  "---\n",
);

describe("splitRbac", () => {
  it("moves the admission Deployment to its own ServiceAccount and appends kuik's RBAC, once", () => {
    const out = splitRbac(MANIFEST);
    const [watcher, admission] = out.split(/^---$/m);
    expect(watcher).toContain("serviceAccountName: pepr-kuik\n");
    expect(admission).toContain("serviceAccountName: pepr-kuik-admission\n");
    expect(out).toMatch(/kind: ServiceAccount\nmetadata:\n {2}name: pepr-kuik-admission/);
    expect(out).toMatch(/kind: Role\nmetadata:\n {2}name: pepr-kuik\n {2}namespace: kuik-system/);
    expect(splitRbac(out)).toBe(out);
  });

  it("fails when the generated manifest changed shape", () => {
    expect(() => splitRbac(deployment("watcher", "w"))).toThrow(RbacSplitError);
    expect(() => splitRbac(MANIFEST.replaceAll("serviceAccountName", "x"))).toThrow(RbacSplitError);
  });
});
