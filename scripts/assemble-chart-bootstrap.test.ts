/**
 * The Helm chart does not bootstrap (it installs the CRDs and kuik-system itself): {@link withoutBootstrap} takes
 * the bootstrap's rules and KUIK_BOOTSTRAP=true out of Pepr's values.yaml. The input is the values.yaml of a real
 * build's layout, rendered here from package.json (Pepr writes `rbac:` from `pepr.rbac` and the env lists from
 * `pepr.env`, quoted).
 */
import { loadYaml } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  BOOTSTRAP_API_CALLS,
  KUIK_API_CALLS,
  PEPR_RUNTIME_CALLS,
  policyRules,
} from "../capabilities/api-calls";
import pkg from "../package.json";
import { ADMISSION_NODE_OPTIONS, WATCHER_NODE_OPTIONS } from "../capabilities/shared/node-options";
import { ChartAssemblyError, withWatcherNodeOptions, withoutBootstrap } from "./assemble-chart";

const q = (s: string): string => `'${s}'`;
const list = (indent: string, items: readonly string[]): string[] => items.map(i => `${indent}- ${q(i)}`);

/** Pepr's values.yaml layout (pepr 1.1.4 `pepr build`), trimmed to what the function reads. */
function peprValues(rules = pkg.pepr.rbac as Array<Record<string, string[]>>): string {
  const env = (indent: string): string[] =>
    Object.entries(pkg.pepr.env).flatMap(([name, value]) => [
      `${indent}- name: ${q(name)}`,
      `${indent}  value: ${q(value)}`,
    ]);
  return [
    "imagePullSecrets: []",
    "rbac:",
    ...rules.flatMap(r =>
      Object.entries(r).flatMap(([key, values], k) => [
        `  ${k === 0 ? "- " : "  "}${key}:`,
        ...list("      ", values),
      ]),
    ),
    "secrets:",
    "  apiPath: 'x'",
    "admission:",
    "  env:",
    ...env("    "),
    "watcher:",
    "  env:",
    ...env("    "),
    "",
  ].join("\n");
}

describe("withoutBootstrap", () => {
  it("drops the bootstrap's rules, keeps the others in order, and turns KUIK_BOOTSTRAP off in both env lists", () => {
    const input = peprValues();
    expect((loadYaml(input) as { rbac: unknown[] }).rbac).toEqual(policyRules());
    const out = loadYaml(withoutBootstrap(input)) as {
      rbac: unknown[];
      secrets: unknown;
      admission: { env: Array<{ name: string; value: string }> };
      watcher: { env: Array<{ name: string; value: string }> };
    };
    expect(out.rbac).toEqual(policyRules([...PEPR_RUNTIME_CALLS, ...KUIK_API_CALLS]));
    expect(out.secrets).toEqual({ apiPath: "x" });
    for (const env of [out.admission.env, out.watcher.env]) {
      expect(env.find(e => e.name === "KUIK_BOOTSTRAP")?.value).toBe("false");
      expect(env.length).toBe(Object.keys(pkg.pepr.env).length);
    }
  });

  it("gives the watcher its own NODE_OPTIONS, and leaves the admission's", () => {
    const out = loadYaml(withWatcherNodeOptions(withoutBootstrap(peprValues()))) as {
      admission: { env: Array<{ name: string; value: string }> };
      watcher: { env: Array<{ name: string; value: string }> };
    };
    const flags = (env: Array<{ name: string; value: string }>) =>
      env.find(e => e.name === "NODE_OPTIONS")?.value;
    expect(flags(out.admission.env)).toBe(ADMISSION_NODE_OPTIONS);
    expect(flags(out.watcher.env)).toBe(WATCHER_NODE_OPTIONS);
  });

  it("fails when a bootstrap rule is missing (a Pepr or api-calls change must not pass silently)", () => {
    const rules = policyRules().filter(
      r => JSON.stringify(r) !== JSON.stringify(policyRules(BOOTSTRAP_API_CALLS)[0]),
    );
    expect(() => withoutBootstrap(peprValues(rules as never))).toThrow(ChartAssemblyError);
  });
});
