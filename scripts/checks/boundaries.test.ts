/**
 * The import boundaries of eslint.config.mjs hold: ESLint's Node API lints a one-line import, as written in a file of
 * each folder, and a forbidden one fails lint while an allowed one passes. Linting the real files (`npx eslint .`)
 * proves the code keeps them; this proves the rules exist and say what docs/design.md says.
 */
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";
import { ROOT } from "../docs/doc-tables";

const eslint = new ESLint({ cwd: ROOT });

/** The `no-restricted-imports` messages of `import "<specifier>"` written in `file`. */
async function restricted(file: string, specifier: string): Promise<string[]> {
  const [result] = await eslint.lintText(`import "${specifier}";\n`, { filePath: `${ROOT}/${file}` });
  return (result?.messages ?? []).filter(m => m.ruleId === "no-restricted-imports").map(m => m.message);
}

describe("import boundaries (eslint.config.mjs)", { timeout: 120_000 }, () => {
  it.each([
    ["capabilities/tracking/tracker.ts", "../caching/status", "not another concern"],
    ["capabilities/tracking/tracker.ts", "../expiry/sweep", "not another concern"],
    ["capabilities/caching/reconcile.ts", "../repositories/credentials", "not another concern"],
    ["capabilities/expiry/sweep.ts", "../tracking/tracker", "not another concern"],
    ["capabilities/caching/reconcile.ts", "../watcher/controller", "nothing imports the wiring"],
    ["capabilities/kube/client.ts", "../bootstrap/plan", "imports none of them"],
    ["capabilities/shared/config.ts", "../bootstrap/plan", "never the reverse"],
    ["capabilities/shared/config.ts", "../kube/ports", "depends on nothing else"],
    ["capabilities/caching/reconcile.ts", "../testing/fakes", "only *.test.ts"],
    ["scripts/assemble-chart.ts", "../capabilities/testing/fakes", "only *.test.ts"],
    ["proxy/src/handler.ts", "../../capabilities/shared/labels", "operator's island"],
    ["registry-client/src/client.ts", "../../proxy/src/names", "must not depend on the proxy"],
  ])("%s may not import %s", async (file, specifier, message) => {
    const messages = await restricted(file, specifier);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain(message);
  });

  it.each([
    ["capabilities/tracking/plan.ts", "../expiry/rules"],
    ["capabilities/caching/reconcile.ts", "../kube/ports"],
    ["capabilities/caching/reconcile.ts", "../shared/labels"],
    ["capabilities/caching/reconcile.ts", "../../registry-client/src/copy"],
    ["capabilities/watcher/controller.ts", "../caching/reconcile"],
    ["capabilities/bootstrap/plan.ts", "../kube/http"],
    ["capabilities/caching/reconcile.test.ts", "../testing/fakes"],
  ])("%s may import %s", async (file, specifier) => {
    expect(await restricted(file, specifier)).toEqual([]);
  });
});
