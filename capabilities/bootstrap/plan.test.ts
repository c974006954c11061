import { readFileSync } from "node:fs";
import { loadAllYaml } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { patchWebhookConfig } from "../../scripts/webhook-config";
import { applyJsonPatch } from "../testing/fake-patch";
import { CRDS, DATA_PLANE } from "./manifests.generated";
import {
  applyRequest,
  bootstrapApiCalls,
  BootstrapError,
  isEstablished,
  MODULE_WEBHOOK,
  OPT_OUT_EXPRESSION,
  resourceOf,
  webhookPatch,
  type Manifest,
  type WebhookView,
} from "./plan";

const manifest = (apiVersion: string, kind: string, name: string, namespace?: string): Manifest => ({
  apiVersion,
  kind,
  metadata: namespace ? { name, namespace } : { name },
});

describe("resourceOf / applyRequest", () => {
  it.each([
    [manifest("v1", "Namespace", "kuik-system"), "/api/v1/namespaces/kuik-system"],
    [
      manifest("v1", "ServiceAccount", "sa", "kuik-system"),
      "/api/v1/namespaces/kuik-system/serviceaccounts/sa",
    ],
    [
      manifest("apps/v1", "DaemonSet", "p", "kuik-system"),
      "/apis/apps/v1/namespaces/kuik-system/daemonsets/p",
    ],
    [
      manifest("networking.k8s.io/v1", "NetworkPolicy", "np", "kuik-system"),
      "/apis/networking.k8s.io/v1/namespaces/kuik-system/networkpolicies/np",
    ],
    [
      manifest("apiextensions.k8s.io/v1", "CustomResourceDefinition", "cachedimages.kuik.enix.io"),
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/cachedimages.kuik.enix.io",
    ],
  ])("%j → PATCH %s, forced server-side apply by kuik-bootstrap", (m, path) => {
    expect(applyRequest(m)).toEqual({
      method: "PATCH",
      path,
      query: { fieldManager: "kuik-bootstrap", force: "true" },
      body: m,
      contentType: "application/apply-patch+yaml",
      read: true,
    });
  });

  it("refuses a kind it has no resource for", () => {
    expect(() => resourceOf(manifest("v1", "Pod", "p", "ns"))).toThrow(BootstrapError);
  });

  it("knows every generated object", () => {
    for (const m of [...CRDS, ...DATA_PLANE]) expect(() => resourceOf(m)).not.toThrow();
  });
});

describe("generated manifests", () => {
  it("hold both CRDs and every kuik-system object of deploy/base, the Namespace first", () => {
    expect(CRDS.map(c => c.metadata.name)).toEqual([
      "cachedimages.kuik.enix.io",
      "repositories.kuik.enix.io",
    ]);
    expect(DATA_PLANE[0]).toMatchObject({ kind: "Namespace", metadata: { name: "kuik-system" } });
    for (const m of DATA_PLANE.slice(1)) expect(m.metadata.namespace).toBe("kuik-system");
    // the YAML's own field names (not a client library's model names: `x_kubernetes_…`, `_default`)
    expect(JSON.stringify(CRDS)).toContain('"x-kubernetes-list-type"');
    expect(JSON.stringify(CRDS)).not.toMatch(/"x_kubernetes|"_default"|"_enum"/);
    expect(DATA_PLANE.map(m => m.kind)).toEqual(
      expect.arrayContaining(["ConfigMap", "Service", "StatefulSet", "DaemonSet", "NetworkPolicy"]),
    );
  });
});

describe("isEstablished", () => {
  it.each([
    [{ status: { conditions: [{ type: "Established", status: "True" }] } }, true],
    [{ status: { conditions: [{ type: "NamesAccepted", status: "True" }] } }, false],
    [{ status: { conditions: [{ type: "Established", status: "False" }] } }, false],
    [{ status: {} }, false],
    [{}, false],
    [null, false],
  ])("%j → %s", (crd, expected) => {
    expect(isEstablished(crd)).toBe(expected);
  });
});

const OURS = { ...OPT_OUT_EXPRESSION, values: [...OPT_OUT_EXPRESSION.values] };
const OTHER = { key: "team", operator: "In", values: ["a"] };

describe("webhookPatch", () => {
  it.each<[string, WebhookView, WebhookView]>([
    [
      "defaults of the API server (empty selector, Never)",
      { name: "w", objectSelector: {}, reinvocationPolicy: "Never" },
      { name: "w", objectSelector: { matchExpressions: [OURS] }, reinvocationPolicy: "IfNeeded" },
    ],
    [
      "nothing set",
      { name: "w" },
      { name: "w", objectSelector: { matchExpressions: [OURS] }, reinvocationPolicy: "IfNeeded" },
    ],
    [
      "someone else's expression: kept, ours ANDed",
      { name: "w", objectSelector: { matchExpressions: [OTHER] }, reinvocationPolicy: "IfNeeded" },
      { name: "w", objectSelector: { matchExpressions: [OTHER, OURS] }, reinvocationPolicy: "IfNeeded" },
    ],
    [
      "matchLabels only",
      { name: "w", objectSelector: { matchLabels: { a: "b" } } },
      {
        name: "w",
        objectSelector: { matchLabels: { a: "b" }, matchExpressions: [OURS] },
        reinvocationPolicy: "IfNeeded",
      },
    ],
  ])("%s", (_, before, after) => {
    const config = { webhooks: [before] };
    const ops = webhookPatch(config);
    expect(ops[0]).toEqual({ op: "test", path: "/webhooks/0/name", value: "w" });
    const patched = applyJsonPatch(config, ops);
    expect(patched.webhooks[0]).toEqual(after);
    // idempotent: nothing left to do
    expect(webhookPatch(patched)).toEqual([]);
  });

  it("patches every webhook at its own index, and only those that need it", () => {
    const config = {
      webhooks: [
        { name: "done", objectSelector: { matchExpressions: [OURS] }, reinvocationPolicy: "IfNeeded" },
        { name: "todo", objectSelector: {}, reinvocationPolicy: "Never" },
      ],
    };
    const ops = webhookPatch(config);
    expect(ops.every(o => o.path.startsWith("/webhooks/1/"))).toBe(true);
    expect(applyJsonPatch(config, ops).webhooks[1]).toMatchObject({ reinvocationPolicy: "IfNeeded" });
  });

  it("a configuration changed since it was read fails the test op", () => {
    const ops = webhookPatch({ webhooks: [{ name: "a" }] });
    expect(() => applyJsonPatch({ webhooks: [{ name: "b" }] }, ops)).toThrow(/test failed/);
  });

  it("gives the webhook what scripts/webhook-config.ts gives the built manifest (one setting, two paths)", () => {
    const plain = readFileSync(new URL("../../scripts/webhook-config.test.ts", import.meta.url), "utf8");
    const yaml = /const MANIFEST = `([\s\S]*?)`;/.exec(plain)?.[1] as string;
    type Doc = { kind?: string; webhooks: WebhookView[] };
    const webhookOf = (text: string): Doc =>
      (loadAllYaml(text) as Doc[]).find(d => d?.kind === "MutatingWebhookConfiguration") as Doc;
    const before = webhookOf(yaml);
    const byScript = webhookOf(patchWebhookConfig(yaml));
    expect(byScript.webhooks[0]?.objectSelector).toBeDefined();
    expect(applyJsonPatch(before, webhookPatch(before))).toEqual(byScript);
  });
});

describe("bootstrapApiCalls", () => {
  it("scopes create and patch to the names of the objects, per resource, plus the module's webhook", () => {
    const calls = bootstrapApiCalls([
      manifest("v1", "Namespace", "kuik-system"),
      manifest("v1", "ServiceAccount", "b", "kuik-system"),
      manifest("v1", "ServiceAccount", "a", "kuik-system"),
      manifest("apps/v1", "DaemonSet", "p", "kuik-system"),
    ]);
    expect(calls.map(({ why: _, ...c }) => c)).toEqual([
      { group: "", resource: "namespaces", verbs: ["create", "patch"], resourceNames: ["kuik-system"] },
      { group: "", resource: "serviceaccounts", verbs: ["create", "patch"], resourceNames: ["a", "b"] },
      { group: "apps", resource: "daemonsets", verbs: ["create", "patch"], resourceNames: ["p"] },
      {
        group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
        verbs: ["get", "patch"],
        resourceNames: [MODULE_WEBHOOK],
      },
    ]);
  });

  it("the module's webhook is pepr-<package.json pepr.uuid>", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      pepr: { uuid: string };
    };
    expect(MODULE_WEBHOOK).toBe(`pepr-${pkg.pepr.uuid}`);
  });
});
