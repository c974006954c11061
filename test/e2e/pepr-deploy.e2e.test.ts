/**
 * `npx pepr deploy --yes` for real (docs/install.md §3): Pepr's CLI rebuilds the module and applies it to the current
 * kube context. Run in a copy of the sources (it rewrites dist/) against the local control plane with the admin
 * kubeconfig, it must apply kuik's module — webhook, RBAC with the bootstrap rules, module Secret, both Deployments
 * carrying KUIK_BOOTSTRAP=true — after which it waits for Deployments that never become ready without a kubelet, so
 * the test stops it once everything is there. What the watcher then does with KUIK_BOOTSTRAP is
 * bootstrap.e2e.test.ts's part.
 *
 * The copy carries `dist/package.json` (`{"type":"commonjs"}`, committed at the repository's dist/package.json):
 * `pepr deploy` builds a CommonJS `dist/pepr-kuik.js` whatever package.json's "type" says, and Node would load it as
 * an ES module without it (Pepr 1.1.4, `ReferenceError: require is not defined in ES module scope`).
 */
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import {
  controlPlaneAvailable,
  startControlPlane,
  type ControlPlane,
  type KubeObject,
} from "../harness/control-plane";
import { killGroup, REPO_ROOT } from "../harness/tools";
import { waitFor } from "./stack";

interface Deployment extends KubeObject {
  spec: { template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } } };
}

let cp: ControlPlane;
let dir: string;
let output = "";

describe.skipIf(!controlPlaneAvailable(false))("npx pepr deploy", () => {
  beforeAll(async () => {
    dir = makeTempDir("pepr-deploy");
    // The working tree as a user has it (pepr build type-checks the whole project and formats with its configs).
    const skip = new Set(["node_modules", "dist", ".kuik", ".git"].map(e => join(REPO_ROOT, e)));
    cpSync(REPO_ROOT, dir, { recursive: true, filter: src => !skip.has(src) });
    symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"));
    mkdirSync(join(dir, "dist"));
    copyFileSync(join(REPO_ROOT, "dist", "package.json"), join(dir, "dist", "package.json"));
    cp = await startControlPlane({ controllerManager: false });

    // As a user runs it: npx, with the project's Node 24 first on PATH (as in every npm script).
    const bin = join(REPO_ROOT, "node_modules", ".bin");
    const child = spawn("npx", ["pepr", "deploy", "--yes"], {
      cwd: dir,
      env: { ...process.env, KUBECONFIG: cp.kubeconfig, PATH: `${bin}:${process.env.PATH ?? ""}` },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (output += b.toString()));
    // It never exits on success (it waits for rollouts); an exit first is its failure, reported at once.
    const exited = new Promise<number | null>(resolve => child.on("exit", code => resolve(code)));
    try {
      const applied = waitFor(
        "pepr deploy to apply both Deployments",
        async () => {
          const r = await cp.kubectl(["get", "deployments", "-n", "pepr-system", "-o", "name"], {
            allowFailure: true,
          });
          return r.stdout.includes("pepr-kuik-watcher") && r.stdout.includes("deployment.apps/pepr-kuik\n");
        },
        { timeoutMs: 180_000, intervalMs: 1000, diagnostics: () => output.slice(-3000) },
      ).then(() => undefined);
      applied.catch(() => undefined); // still polling after an early exit: its later rejection is not news
      const code = await Promise.race([applied, exited]);
      if (code !== undefined) throw new Error(`npx pepr deploy exited ${code}:\n${output.slice(-3000)}`);
    } finally {
      killGroup(child.pid, "SIGKILL");
    }
  }, 240_000);

  afterAll(async () => {
    await cp?.stop();
    if (dir) removeTempDir(dir);
  });

  it("applies the module's webhook, RBAC, module Secret and both Deployments", async () => {
    const webhook = await cp.kubectlJson<KubeObject & { webhooks: Array<{ name: string }> }>([
      "get",
      "mutatingwebhookconfiguration",
      "pepr-kuik",
    ]);
    expect(webhook.webhooks.map(w => w.name)).toEqual(["pepr-kuik.pepr.dev"]);
    const secrets = await cp.kubectl(["get", "secrets", "-n", "pepr-system", "-o", "name"]);
    expect(secrets.stdout).toContain("secret/pepr-kuik-module");
    const role = await cp.kubectlJson<
      KubeObject & { rules: Array<{ resources: string[]; resourceNames?: string[] }> }
    >(["get", "clusterrole", "pepr-kuik", "-o", "json"]);
    // The bootstrap's name-scoped rules come with this path (the kustomize and Helm installs drop them).
    expect(role.rules.some(r => r.resources.includes("daemonsets") && r.resourceNames !== undefined)).toBe(
      true,
    );
  });

  it("gives both Deployments KUIK_BOOTSTRAP=true, so the watcher installs the rest", async () => {
    for (const name of ["pepr-kuik", "pepr-kuik-watcher"]) {
      const d = await cp.kubectlJson<Deployment>([
        "get",
        "deployment",
        name,
        "-n",
        "pepr-system",
        "-o",
        "json",
      ]);
      const env = d.spec.template.spec.containers[0]?.env ?? [];
      expect(env.find(e => e.name === "KUIK_BOOTSTRAP")?.value).toBe("true");
    }
  });
});
