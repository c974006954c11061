/**
 * `npx pepr deploy` alone installs a working kuik (issue #6, docs/install.md §3): on a real control plane, only what
 * `pepr deploy` applies (the module YAML of a plain `pepr build`: scripts/build-module.sh's output with its webhook
 * and RBAC post-processing taken back out, plus the PeprStore CRD Pepr's controller applies), then the module started from
 * the installed Deployments as their ServiceAccount (so the generated RBAC is what it runs with). The watcher's
 * bootstrap (KUIK_BOOTSTRAP=true from package.json) must then have applied kuik's CRDs, every kuik-system object of
 * deploy/base and the webhook's opt-out objectSelector and reinvocationPolicy; a Pod is rewritten, an opted-out one
 * never reaches the webhook, and the watcher tracks the rewritten Pod's image in a CachedImage.
 *
 * Not run: `npx pepr deploy --yes` itself, which builds again and then waits for its Deployments to become ready,
 * which never happens without a kubelet; what it applies is what this test applies.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CRDS, DATA_PLANE } from "../../capabilities/bootstrap/manifests.generated";
import {
  BOOTSTRAP_FIELD_MANAGER,
  describe as describeManifest,
  MODULE_WEBHOOK,
} from "../../capabilities/bootstrap/plan";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import {
  controlPlaneAvailable,
  startControlPlane,
  type ControlPlane,
  type KubeObject,
} from "../harness/control-plane";
import {
  ADMISSION_SERVICE_ACCOUNT,
  kuikRbacObjects,
  WATCHER_SERVICE_ACCOUNT,
} from "../../capabilities/rbac-objects";
import { MODULE_MANIFEST, readManifest, type Installation } from "../harness/kuik-install";
import { buildModule, startKuikModule, type KuikModule } from "../harness/kuik-module";
import { podImages, waitFor } from "./stack";

const APP_NS = "e2e-bootstrap";
const IMAGE = "registry.example.com/team/app:v1";

interface Webhook {
  name: string;
  objectSelector?: { matchExpressions?: Array<{ key: string; operator: string; values: string[] }> };
  reinvocationPolicy?: string;
}

let cp: ControlPlane;
let module: KuikModule | undefined;
let dir: string;
let startedAt = 0;
let readyMs = 0;

const describeObject = (kind: string, m: { name?: string; namespace?: string }): string =>
  `${kind} ${m.namespace ?? ""}/${m.name ?? ""}`;

/**
 * The module YAML as a plain `pepr build` writes it: without scripts/webhook-config.ts's two settings, nor
 * scripts/rbac-split.ts's objects (the admission on the watcher's ServiceAccount, as Pepr makes it).
 */
async function plainModule(): Promise<Installation> {
  const added = new Set(
    kuikRbacObjects({ kuikNamespace: "kuik-system" }).map(o => describeObject(o.kind, o.metadata)),
  );
  const built = await readManifest(cp, MODULE_MANIFEST);
  const objects = built.filter(o => !added.has(describeObject(String(o.kind), o.metadata ?? {})));
  // present: build-module.sh added them (so removing them is what a plain build lacks)
  expect(built.length - objects.length).toBe(added.size);
  const admission = objects.find(o => o.metadata?.labels?.["pepr.dev/controller"] === "admission") as
    | (KubeObject & { spec: { template: { spec: { serviceAccountName: string } } } })
    | undefined;
  expect(admission?.spec.template.spec.serviceAccountName).toBe(ADMISSION_SERVICE_ACCOUNT);
  if (admission) admission.spec.template.spec.serviceAccountName = WATCHER_SERVICE_ACCOUNT;
  const webhook = objects.find(o => o.kind === "MutatingWebhookConfiguration") as KubeObject & {
    webhooks: Webhook[];
  };
  for (const w of webhook.webhooks) {
    // present: build-module.sh added them (so removing them is what a plain build lacks)
    expect(w.reinvocationPolicy).toBe("IfNeeded");
    expect(w.objectSelector).toBeDefined();
    delete w.reinvocationPolicy;
    delete w.objectSelector;
  }
  const file = join(dir, "pepr-deploy.json");
  writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
  return { dir, file, objects, patches: {} };
}

beforeAll(async () => {
  if (!controlPlaneAvailable()) return;
  dir = makeTempDir("kuik-bootstrap");
  await buildModule();
  cp = await startControlPlane();
  const installation = await plainModule();
  // what `pepr deploy` does: server-side apply of its objects, field manager "pepr"
  await cp.kubectl([
    "apply",
    "--server-side",
    "--force-conflicts",
    "--field-manager=pepr",
    "-f",
    installation.file,
  ]);
  const crds = await cp.kubectl(["get", "crd", "-o", "name"]);
  expect(crds.stdout).not.toContain("kuik.enix.io");
  expect((await cp.kubectl(["get", "namespace", "kuik-system"], { allowFailure: true })).code).not.toBe(0);
  startedAt = Date.now();
  module = await startKuikModule(cp, {
    installation,
    build: false,
    overrides: {
      KUIK_METRICS_PORT: { value: "0", why: "no metrics server: tests share this host's ports" },
      // As in stack.ts: no kubelet, so the proxy DaemonSet's Pods are never Ready and the admission's proxy gate
      // would never open. The gate is proven on the real node (test/e2e/real-node-gate.e2e.test.ts).
      KUIK_PROXY_GATE: { value: "false", why: "no kubelet: the proxy's Pods never become Ready" },
    },
  });
  readyMs = Date.now() - startedAt;
  console.info(
    `bootstrap.e2e timings (ms): module started (both /healthz, CRDs Established first) ${readyMs}`,
  );
}, 300_000);

afterAll(async () => {
  await module?.stop();
  await cp?.stop();
  if (dir) removeTempDir(dir);
});

describe.skipIf(!controlPlaneAvailable())("npx pepr deploy alone: the watcher's bootstrap", () => {
  it("runs the watcher with KUIK_BOOTSTRAP=true from package.json, as the module's ServiceAccount", () => {
    expect(module?.identity).toBe("service-account");
    const watcherEnv = module?.installation.objects.find(o => o.metadata?.name === "pepr-kuik-watcher") as
      | (KubeObject & {
          spec: {
            template: { spec: { containers: Array<{ env: Array<{ name: string; value: string }> }> } };
          };
        })
      | undefined;
    const env = watcherEnv?.spec.template.spec.containers[0]?.env ?? [];
    expect(env.find(e => e.name === "KUIK_BOOTSTRAP")?.value).toBe("true");
    // the watcher answers /healthz only once Pepr's module started, i.e. after the CRDs were Established
    expect(readyMs).toBeLessThan(60_000);
  });

  it("applied kuik's CRDs, Established", async () => {
    await cp.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=30s",
      ...CRDS.map(c => `crd/${c.metadata.name}`),
    ]);
  });

  it("applied every kuik-system object of deploy/base, as kuik-bootstrap", async () => {
    for (const m of DATA_PLANE) {
      const args = [
        "get",
        m.kind.toLowerCase(),
        m.metadata.name,
        ...(m.metadata.namespace ? ["-n", m.metadata.namespace] : []),
      ];
      const live = await waitFor<KubeObject>(
        describeManifest(m),
        () => cp.kubectlJson([...args, "--show-managed-fields"]),
        {
          timeoutMs: 30_000,
        },
      );
      const managers = (
        (live.metadata as { managedFields?: Array<{ manager: string }> }).managedFields ?? []
      ).map(f => f.manager);
      expect(managers, describeManifest(m)).toContain(BOOTSTRAP_FIELD_MANAGER);
    }
  });

  it("gave the webhook kuik's opt-out objectSelector and reinvocationPolicy IfNeeded", async () => {
    const webhooks = await waitFor(
      "the webhook patch",
      async () => {
        const config = await cp.kubectlJson<KubeObject & { webhooks: Webhook[] }>([
          "get",
          "mutatingwebhookconfiguration",
          MODULE_WEBHOOK,
        ]);
        return config.webhooks.every(w => w.reinvocationPolicy === "IfNeeded") ? config.webhooks : undefined;
      },
      { timeoutMs: 30_000 },
    );
    for (const w of webhooks) {
      expect(w.objectSelector?.matchExpressions).toContainEqual({
        key: "kube-image-keeper.enix.io/image-caching-policy",
        operator: "NotIn",
        values: ["ignore"],
      });
    }
    expect(module?.watcher.readLog()).toContain("bootstrap complete");
  });

  it("rewrites a Pod, leaves an opted-out one alone, and the watcher tracks the image", async () => {
    await cp.kubectl(["create", "namespace", APP_NS]);
    await waitFor("the default ServiceAccount", () =>
      cp.kubectlJson(["get", "serviceaccount", "default", "-n", APP_NS]),
    );
    const pod = (name: string, labels: Record<string, string>): object => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: APP_NS, labels },
      spec: { containers: [{ name: "app", image: IMAGE }] },
    });
    await cp.apply([
      pod("rewritten", {}),
      pod("opted-out", { "kube-image-keeper.enix.io/image-caching-policy": "ignore" }),
    ]);
    const rewritten = await cp.kubectlJson(["get", "pod", "rewritten", "-n", APP_NS]);
    expect(podImages(rewritten)[0]).toMatch(/^localhost:7439\/registry\.example\.com\/team\/app:v1$/);
    const optedOut = await cp.kubectlJson(["get", "pod", "opted-out", "-n", APP_NS]);
    expect(podImages(optedOut)).toEqual([IMAGE]);
    // the objectSelector kept it from the webhook altogether: Pepr marks every pod it mutates
    expect(JSON.stringify(optedOut.metadata?.annotations ?? {})).not.toContain("pepr.dev");
    expect(JSON.stringify(rewritten.metadata?.annotations ?? {})).toContain("pepr.dev");
    const tracked = await waitFor(
      "a CachedImage for the rewritten pod's image",
      async () => {
        const list = await cp.kubectlJson(["get", "cachedimages"]);
        return (list.items ?? []).find(ci => (ci.spec as { sourceImage?: string })?.sourceImage === IMAGE);
      },
      { timeoutMs: 30_000, diagnostics: () => module?.watcher.readLog().slice(-3000) ?? "" },
    );
    expect(tracked.metadata?.name).toBeTruthy();
  });

  it("runs again at each watcher start: a deleted object comes back, the webhook is not patched twice", async () => {
    const watcher = module as KuikModule;
    await cp.kubectl(["delete", "daemonset", "kube-image-keeper-proxy", "-n", "kuik-system", "--wait=true"]);
    await watcher.restart("watcher");
    await waitFor(
      "the second bootstrap",
      async () => (watcher.watcher.readLog().match(/"msg":"bootstrap complete"/g) ?? []).length === 2,
      { timeoutMs: 30_000, diagnostics: () => watcher.watcher.readLog().slice(-3000) },
    );
    await cp.kubectl(["get", "daemonset", "kube-image-keeper-proxy", "-n", "kuik-system"]);
    expect(watcher.watcher.readLog().match(/"msg":"bootstrap: webhook patched"/g) ?? []).toHaveLength(1);
  });
});
