/**
 * The two other ways a user installs kuik, on a real node (cluster.ts with `install: false`; real-node.e2e.test.ts
 * covers `kubectl apply --server-side -k deploy/`), each ending with every kuik component a Running Pod:
 * - `helm install` of the chart scripts/build-chart.sh assembles, with the origin's CA given as
 *   `rootCertificateAuthorities` (then a Pod of a private origin image is Running, pulled through the proxy), and
 *   `helm uninstall`;
 * - `npx pepr deploy --yes` in a copy of the sources: Pepr applies the module and waits for its Deployments, and the
 *   watcher bootstraps the cache registry and the proxy DaemonSet (KUIK_BOOTSTRAP).
 */
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import { NODE_IP } from "../harness/net";
import { findTool, killGroup, REPO_ROOT, runOk } from "../harness/tools";
import { ROOT_CA_SECRET, startCluster, waitForKuik, type Cluster } from "./cluster";
import { KUIK_NAMESPACE } from "./installed-workloads";
import { listPods, podRunning, scenario, waitFor } from "./stack";

const NS = "e2e-node-install";

describe("installing kuik on a real node", () => {
  let cluster: Cluster;
  let work: string;

  /** kuik's Pods, by namespace, all Running on the node. */
  const kuikPods = async (): Promise<string[]> => {
    const pods = [...(await listPods(cluster, KUIK_NAMESPACE)), ...(await listPods(cluster, "pepr-system"))];
    for (const p of pods) expect(p.spec?.nodeName).toBe(cluster.node.name);
    return pods.filter(podRunning).map(p => p.metadata?.name ?? "");
  };

  beforeAll(async () => {
    work = makeTempDir("node-install");
    cluster = await startCluster({ install: false });
    await cluster.namespaceWithPullSecret(NS);
  });

  afterAll(async () => {
    await cluster?.stop();
    if (work) removeTempDir(work);
  });

  it("helm install: every component Running, a private image pulled through the proxy; helm uninstall", async () => {
    const chart = (
      await runOk("bash", [join(REPO_ROOT, "scripts", "build-chart.sh")], { timeoutMs: 600_000 })
    ).stdout
      .trim()
      .split("\n")
      .pop() as string;
    const values = join(work, "values.json");
    writeFileSync(
      values,
      JSON.stringify({
        rootCertificateAuthorities: { secretName: ROOT_CA_SECRET, keys: ["ca.crt"] },
        // the origin listens on the node's (private) address: both the watcher and the proxy must allow it
        controllers: { env: [{ name: "KUIK_ALLOWED_ORIGINS", value: NODE_IP }] },
        proxy: { env: [{ name: "KUIK_PROXY_ALLOWED_ORIGIN", value: NODE_IP }] },
      }),
    );
    // The proxy bundle's ConfigMap goes in first (docs/install.md "Helm": a release Secret cannot hold it).
    await cluster.kubectl([
      "apply",
      "--server-side",
      "-n",
      KUIK_NAMESPACE,
      "-f",
      join(REPO_ROOT, dirname(chart), "kube-image-keeper-proxy-bundle.yaml"),
    ]);
    // pepr-system holds the CA Secret before the install, and the chart owns it: adopted as docs/configuration.md
    // (rootCertificateAuthorities) says
    await cluster.kubectl(["label", "ns", "pepr-system", "app.kubernetes.io/managed-by=Helm"]);
    await cluster.kubectl([
      "annotate", "ns", "pepr-system",
      "meta.helm.sh/release-name=kube-image-keeper", `meta.helm.sh/release-namespace=${KUIK_NAMESPACE}`,
    ]); // prettier-ignore
    const helm = findTool("helm");
    const env = { KUBECONFIG: cluster.cp.kubeconfig };
    await runOk(
      helm,
      ["install", "kube-image-keeper", join(REPO_ROOT, chart), "-n", KUIK_NAMESPACE, "-f", values],
      {
        env,
        timeoutMs: 300_000,
      },
    );
    await waitForKuik(cluster.cp, cluster.diagnostics);
    const names = await kuikPods();
    expect(names.filter(n => n.startsWith("kube-image-keeper-proxy-"))).toHaveLength(1);
    expect(names.filter(n => n.startsWith("kube-image-keeper-registry-"))).toHaveLength(1);
    expect(names.filter(n => n.startsWith("pepr-kuik-watcher-"))).toHaveLength(1);

    const image = await cluster.pushToOrigin({ size: "1M", seed: "install-helm" }, "install/helm", "v1");
    await cluster.cp.apply(
      scenario("deployment", { NAME: "helm", NAMESPACE: NS, IMAGE: image.ref, REPLICAS: 1 }),
    );
    const pod = await waitFor(
      "the Pod Running",
      async () => {
        const [p] = await listPods(cluster, NS, "app=helm");
        return p && podRunning(p) ? p : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    ).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}\n${await cluster.diagnostics()}`);
    });
    expect((pod.spec?.containers as Array<{ image: string }>)[0]?.image).toBe(cluster.proxyImage(image.ref));

    await cluster.kubectl(["delete", "deployment", "helm", "-n", NS, "--wait=true"]);
    await runOk(helm, ["uninstall", "kube-image-keeper", "-n", KUIK_NAMESPACE, "--wait"], {
      env,
      timeoutMs: 300_000,
    });
    await waitFor("kuik's Pods gone", async () => (await kuikPods()).length === 0, { timeoutMs: 120_000 });
  });

  it("npx pepr deploy --yes: the module's Pods Running, then the registry and proxy the watcher bootstraps", async () => {
    // The working tree as a user has it (pepr deploy rebuilds the module and rewrites dist/).
    const src = join(work, "src");
    const skip = new Set(["node_modules", "dist", ".kuik", ".git"].map(e => join(REPO_ROOT, e)));
    cpSync(REPO_ROOT, src, { recursive: true, filter: s => !skip.has(s) });
    symlinkSync(join(REPO_ROOT, "node_modules"), join(src, "node_modules"));
    mkdirSync(join(src, "dist"));
    copyFileSync(join(REPO_ROOT, "dist", "package.json"), join(src, "dist", "package.json"));
    const bin = join(REPO_ROOT, "node_modules", ".bin");
    let output = "";
    const child = spawn("npx", ["pepr", "deploy", "--yes"], {
      cwd: src,
      env: { ...process.env, KUBECONFIG: cluster.cp.kubeconfig, PATH: `${bin}:${process.env.PATH ?? ""}` },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (output += b.toString()));
    // With a kubelet, Pepr's wait for its Deployments ends: the command exits 0.
    const code = await new Promise<number | null>(resolve => {
      const t = setTimeout(() => {
        killGroup(child.pid, "SIGKILL");
        resolve(null);
      }, 540_000);
      child.on("exit", c => {
        clearTimeout(t);
        resolve(c);
      });
    });
    expect(code, output.slice(-3000)).toBe(0);
    await waitForKuik(cluster.cp, cluster.diagnostics);
    const names = await kuikPods();
    expect(
      names.filter(n => /^pepr-kuik-[a-z0-9]+-[a-z0-9]+$/.test(n) && !n.includes("watcher")),
    ).toHaveLength(2);
    expect(names.filter(n => n.startsWith("kube-image-keeper-proxy-"))).toHaveLength(1);
    expect(names.filter(n => n.startsWith("kube-image-keeper-registry-"))).toHaveLength(1);
  });
});
