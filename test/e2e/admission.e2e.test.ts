/**
 * End to end, on a real local control plane (test/e2e/stack.ts): the local installation itself (every object of
 * deploy/ applied, the module started from its Deployments and running as their ServiceAccount, the installed
 * webhook called over TLS), and scenario (b) of issue #3: Pods kuik must leave alone (kube-system, an ignored
 * namespace, the opt-out label) next to one it must rewrite.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeObject } from "../harness/control-plane";
import { MODULE_MANIFEST, readManifest, type Workload } from "../harness/kuik-install";
import { simpleRequest } from "../harness/net";
import { harnessPki } from "../harness/pki";
import { podImages, scenario, startStack, type Stack, waitForCachedImage } from "./stack";

const NS = "e2e-admission";
const IGNORED_NS = "e2e-ignored";
let stack: Stack;
let image: string;

beforeAll(async () => {
  stack = await startStack({ env: { KUIK_WEBHOOK_IGNORED_NAMESPACES: IGNORED_NS } });
  await Promise.all([stack.namespaceWithPullSecret(NS), stack.namespaceWithPullSecret(IGNORED_NS)]);
  image = (await stack.pushToOrigin({ size: "1M", seed: "e2e-admission" }, "e2e/admission", "v1")).ref;
});

afterAll(async () => {
  await stack?.stop();
});

describe("the local installation", () => {
  it("runs a real API server with RBAC and webhooks", async () => {
    expect(stack.cp.version).toMatch(/^v1\.\d+\.\d+/);
    const modes = await stack.kubectl(["get", "--raw", "/api/v1/namespaces/kube-system"]);
    expect(JSON.parse(modes.stdout)).toMatchObject({ kind: "Namespace" });
    const whoami = await stack.kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    expect(whoami.stdout).toBe("kuik-admin");
  });

  it("installed every object of deploy/ with server-side apply", async () => {
    const { objects, file } = stack.installation;
    const live = await stack.kubectl(["get", "-f", file, "-o", "name"]);
    expect(live.stdout.trim().split("\n")).toHaveLength(objects.length);
    const kinds = new Set(objects.map(o => o.kind));
    for (const kind of [
      "Namespace",
      "CustomResourceDefinition",
      "ClusterRole",
      "ServiceAccount",
      "Secret",
      "ConfigMap",
      "Deployment",
      "StatefulSet",
      "DaemonSet",
      "Service",
      "NetworkPolicy",
      "MutatingWebhookConfiguration",
    ]) {
      expect(kinds, kind).toContain(kind);
    }
  });

  it("runs the admission process with its Deployment's environment, changed only where listed", async () => {
    const d = await stack.kubectlJson<Workload>(["get", "deployment", "pepr-kuik", "-n", "pepr-system"]);
    const installed = Object.fromEntries(
      (d.spec.template.spec.containers[0]?.env ?? []).map(e => [e.name, e.value]),
    );
    // the test's setting went in through the install's kustomization, not through the process
    expect(installed.KUIK_WEBHOOK_IGNORED_NAMESPACES).toBe(IGNORED_NS);
    expect(installed.PEPR_WATCH_MODE).toBe("false");
    const overridden = new Set(
      stack.overrides.filter(o => o.object === "Deployment pepr-system/pepr-kuik").map(o => o.setting),
    );
    expect([...overridden].sort()).toEqual(
      [
        "KUBECONFIG",
        "KUIK_METRICS_PORT",
        "KUIK_PEPR_PORT",
        "KUIK_REGISTRY_ENDPOINT",
        "KUIK_ROOT_CERTIFICATE_AUTHORITIES",
        "PEPR_API_PATH",
        "SSL_CERT_PATH",
        "SSL_KEY_PATH",
        ...(stack.proxyPort === 7439 ? [] : ["KUIK_PROXY_HOST_PORT"]),
      ].sort(),
    );
    for (const [name, value] of Object.entries(installed)) {
      if (!overridden.has(name)) expect(stack.module.env[name], name).toBe(value);
    }
    for (const name of Object.keys(stack.module.env)) {
      expect(name in installed || overridden.has(name), name).toBe(true);
    }
  });

  it("runs the module as kuik's ServiceAccount, limited by the generated RBAC", async () => {
    expect(stack.module.identity).toBe("service-account");
    const opts = { kubeconfig: stack.module.kubeconfig };
    const whoami = await stack.kubectl(
      ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
      opts,
    );
    expect(whoami.stdout).toBe("system:serviceaccount:pepr-system:pepr-kuik");
    // not an admin: Pepr's generated ClusterRole does not grant deleting namespaces
    const can = await stack.kubectl(["auth", "can-i", "delete", "namespaces"], {
      ...opts,
      allowFailure: true,
    });
    expect(can.stdout.trim()).toBe("no");
  });

  it("serves /healthz on both module processes over TLS", async () => {
    const { caFile } = await harnessPki();
    for (const p of [stack.module.admission, stack.module.watcher]) {
      const r = await simpleRequest(`https://127.0.0.1:${p.port}/healthz`, { caFile });
      expect(r.status, p.role).toBe(200);
    }
  });

  it("points the MutatingWebhookConfiguration at the local admission process", async () => {
    const mwc = await stack.kubectlJson(["get", "mutatingwebhookconfiguration", "pepr-kuik"]);
    const hooks = (mwc.webhooks ?? []) as Array<{ clientConfig: { url?: string; caBundle?: string } }>;
    expect(hooks.length).toBeGreaterThan(0);
    for (const h of hooks) {
      expect(h.clientConfig.url).toBe(stack.module.webhookUrl);
      expect(h.clientConfig.caBundle).toBeTruthy();
    }
  });
  it("keeps the installed webhook as generated, but for its clientConfig", async () => {
    const generated = (await readManifest(stack.cp, MODULE_MANIFEST)).find(
      o => o.kind === "MutatingWebhookConfiguration",
    );
    const name = generated?.metadata?.name ?? "";
    const live = await stack.kubectlJson(["get", "mutatingwebhookconfiguration", name]);
    type Hook = Record<string, unknown> & { clientConfig: { service?: unknown; url?: string } };
    const without = (hooks: unknown): Array<Record<string, unknown>> =>
      ((hooks ?? []) as Hook[]).map(({ clientConfig: _, ...rest }) => rest);
    const want = without(generated?.webhooks);
    const got = without(live.webhooks);
    expect(want.length).toBeGreaterThan(0);
    expect(got).toHaveLength(want.length);
    want.forEach((w, i) => {
      const g = got[i] ?? {};
      for (const key of [
        "name",
        "objectSelector",
        "namespaceSelector",
        "reinvocationPolicy",
        "failurePolicy",
        "matchPolicy",
        "sideEffects",
        "timeoutSeconds",
        "admissionReviewVersions",
      ]) {
        expect(g[key], key).toEqual(w[key]);
      }
      // the API server adds `scope: "*"` to each rule
      expect(g.rules, "rules").toMatchObject(w.rules as object);
    });
    expect(want[0]?.objectSelector).toBeDefined();
    for (const h of (live.webhooks ?? []) as Hook[]) expect(h.clientConfig.service).toBeUndefined();
  });
});

describe("(b) Pods left untouched", () => {
  const pods: Record<string, KubeObject> = {};

  beforeAll(async () => {
    await stack.cp.apply(
      scenario("untouched", { IMAGE: image, NAMESPACE: NS, IGNORED_NAMESPACE: IGNORED_NS }),
    );
    for (const [name, ns] of [
      ["in-kube-system", "kube-system"],
      ["in-ignored-namespace", IGNORED_NS],
      ["opted-out", NS],
      ["control", NS],
    ] as const) {
      pods[name] = await stack.kubectlJson(["get", "pod", name, "-n", ns]);
    }
  });

  it("rewrites the control Pod (the webhook is live)", () => {
    expect(podImages(pods.control ?? {})).toEqual([stack.proxyImage(image)]);
    expect(pods.control?.metadata?.labels?.["kuik.enix.io/managed"]).toBe("true");
  });

  it.each(["in-kube-system", "in-ignored-namespace", "opted-out"])("leaves %s as written", name => {
    const pod = pods[name] ?? {};
    expect(podImages(pod)).toEqual([image]);
    expect(pod.metadata?.labels?.["kuik.enix.io/managed"]).toBeUndefined();
    const annotations = Object.keys(pod.metadata?.annotations ?? {});
    expect(annotations.filter(a => a.startsWith("original-"))).toEqual([]);
  });

  it("counts only the rewritten Pod as a user of the image the untouched Pods share", async () => {
    // The control Pod uses the same image: its CachedImage must list that Pod, and none of the untouched ones.
    const usedBy = (ci: KubeObject): string[] =>
      ((ci.status?.usedBy as { pods?: Array<{ namespacedName: string }> } | undefined)?.pods ?? []).map(
        p => p.namespacedName,
      );
    const ci = await waitForCachedImage(stack, stack.cachedImageName(image), "used by the control Pod", c =>
      usedBy(c).includes(`${NS}/control`),
    );
    expect(usedBy(ci)).toEqual([`${NS}/control`]);
  });
});
