/**
 * End to end, on a real local control plane (test/e2e/stack.ts): the local installation itself (the module runs
 * as its ServiceAccount, the API server calls its webhook over TLS), and scenario (b) of issue #3: Pods kuik must
 * leave alone (kube-system, an ignored namespace, the opt-out label) next to one it must rewrite.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeObject } from "../harness/control-plane";
import { simpleRequest } from "../harness/net";
import { harnessPki } from "../harness/pki";
import {
  LOOPBACK_SKIP_REASON,
  loopbackRewriteSupported,
  podImages,
  scenario,
  startStack,
  type Stack,
} from "./stack";

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

  const loopback = loopbackRewriteSupported();
  it.skipIf(!loopback)(
    `rewrites the control Pod (the webhook is live)${loopback ? "" : `: ${LOOPBACK_SKIP_REASON}`}`,
    () => {
      expect(podImages(pods.control ?? {})).toEqual([stack.proxyImage(image)]);
      expect(pods.control?.metadata?.labels?.["kuik.enix.io/managed"]).toBe("true");
    },
  );

  it.each(["in-kube-system", "in-ignored-namespace", "opted-out"])("leaves %s as written", name => {
    const pod = pods[name] ?? {};
    expect(podImages(pod)).toEqual([image]);
    expect(pod.metadata?.labels?.["kuik.enix.io/managed"]).toBeUndefined();
    const annotations = Object.keys(pod.metadata?.annotations ?? {});
    expect(annotations.filter(a => a.startsWith("original-"))).toEqual([]);
  });

  it("creates no CachedImage for an image only untouched Pods use", async () => {
    // the control Pod uses the same image: its CachedImage, if any, is used by that Pod only
    const ci = await stack.getCachedImage(stack.cachedImageName(image));
    if (ci) {
      const pods = (
        (ci.status?.usedBy as { pods?: Array<{ namespacedName: string }> } | undefined)?.pods ?? []
      ).map(p => p.namespacedName);
      expect(pods.filter(p => p !== `${NS}/control`)).toEqual([]);
    }
  });
});
