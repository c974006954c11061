import { loadAllYaml } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { patchWebhookConfig, WebhookConfigError } from "./webhook-config";

// Trimmed from a real `pepr build` (pepr 1.1.4): the manifest's documents around the webhook, and the chart's
// template (Helm directives, so not YAML).
const MANIFEST = `apiVersion: v1
kind: Namespace
metadata:
  name: pepr-system
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: pepr-kuik
webhooks:
  - admissionReviewVersions:
      - v1
      - v1beta1
    clientConfig:
      caBundle: >-
        LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t10
      service:
        name: pepr-kuik
        namespace: pepr-system
        path: >-
          /mutate/7298cf9a81cde71d72afb5a923a91adfe21e8ac2fe2fd5154a0d028dcc777a0a
    failurePolicy: Ignore
    matchPolicy: Equivalent
    name: pepr-kuik.pepr.dev
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values:
            - kube-system
            - pepr-system
            - kuik-system
    rules:
      - apiGroups:
          - ''
        apiVersions:
          - v1
        operations:
          - CREATE
          - UPDATE
        resources:
          - pods
          - pods/ephemeralcontainers
    sideEffects: None
    timeoutSeconds: 10
`;

const CHART = `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ .Values.uuid }}
webhooks:
  - admissionReviewVersions:
      - v1
      - v1beta1
    clientConfig:
      caBundle: >-
        LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
      service:
        name: {{ .Values.uuid }}
        namespace: pepr-system
        path: >-
          /mutate/7298cf9a81cde71d72afb5a923a91adfe21e8ac2fe2fd5154a0d028dcc777a0a
    failurePolicy: {{ .Values.admission.failurePolicy }}
    matchPolicy: Equivalent
    name: {{ .Values.uuid }}.pepr.dev
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values:
            - kube-system
            - pepr-system
            {{- range .Values.additionalIgnoredNamespaces }}
            - {{ . }}
            {{- end }}
            - kuik-system
    rules:
      - apiGroups:
          - ''
        apiVersions:
          - v1
        operations:
          - CREATE
          - UPDATE
        resources:
          - pods
          - pods/ephemeralcontainers
    sideEffects: None
    timeoutSeconds: {{ .Values.admission.webhookTimeout }}
`;

interface Webhook {
  failurePolicy: string;
  reinvocationPolicy?: string;
  objectSelector?: { matchExpressions: { key: string; operator: string; values: string[] }[] };
  timeoutSeconds: unknown;
  clientConfig: { caBundle: string; service: { path: string } };
  rules: unknown[];
}

function webhooks(text: string): Webhook[] {
  const docs = loadAllYaml(text) as { kind: string; webhooks?: Webhook[] }[];
  return docs.find(d => d.kind === "MutatingWebhookConfiguration")?.webhooks ?? [];
}

/** The chart template with Helm rendered the way default values would (enough to parse it). */
function renderChart(text: string): string {
  return text
    .split("\n")
    .filter(l => !/^\s*\{\{-/.test(l))
    .join("\n")
    .replace("{{ .Values.admission.failurePolicy }}", "Ignore")
    .replace("{{ .Values.admission.webhookTimeout }}", "10")
    .replaceAll("{{ .Values.uuid }}", "pepr-kuik");
}

const OPT_OUT = {
  key: "kube-image-keeper.enix.io/image-caching-policy",
  operator: "NotIn",
  values: ["ignore"],
};

describe("patchWebhookConfig", () => {
  it.each([
    ["manifest", MANIFEST, (t: string) => t],
    ["chart template", CHART, renderChart],
  ])(
    "adds objectSelector and reinvocationPolicy to the %s, leaving the rest as it was",
    (_, input, render) => {
      const output = patchWebhookConfig(input);
      const [before] = webhooks(render(input));
      const [after] = webhooks(render(output));
      expect(after?.objectSelector).toEqual({ matchExpressions: [OPT_OUT] });
      expect(after?.reinvocationPolicy).toBe("IfNeeded");
      expect(after?.failurePolicy).toBe("Ignore");
      const { objectSelector: _s, reinvocationPolicy: _r, ...rest } = after as Webhook;
      expect(rest).toEqual(before);
      // Only lines were added (7), and every original line is still there, in order: no substitution happened.
      const out = output.split("\n");
      expect(out).toHaveLength(input.split("\n").length + 7);
      let at = 0;
      for (const line of input.split("\n")) {
        const found = out.indexOf(line, at);
        expect(found, line).toBeGreaterThanOrEqual(at);
        at = found + 1;
      }
    },
  );

  it("is idempotent", () => {
    const once = patchWebhookConfig(MANIFEST);
    expect(patchWebhookConfig(once)).toBe(once);
    const chart = patchWebhookConfig(CHART);
    expect(patchWebhookConfig(chart)).toBe(chart);
  });

  it("sets an existing reinvocationPolicy to IfNeeded", () => {
    const input = MANIFEST.replace(
      "    matchPolicy: Equivalent\n",
      "    matchPolicy: Equivalent\n    reinvocationPolicy: Never\n",
    );
    expect(webhooks(patchWebhookConfig(input))[0]?.reinvocationPolicy).toBe("IfNeeded");
  });

  it("patches every webhook of the configuration", () => {
    const item = MANIFEST.slice(MANIFEST.indexOf("  - admissionReviewVersions"));
    const two = MANIFEST + item.replace("pepr-kuik.pepr.dev", "second.pepr.dev");
    const all = webhooks(patchWebhookConfig(two));
    expect(all).toHaveLength(2);
    for (const w of all) expect(w.objectSelector?.matchExpressions).toEqual([OPT_OUT]);
  });

  it.each([
    ["a failurePolicy other than Ignore", MANIFEST.replace("failurePolicy: Ignore", "failurePolicy: Fail")],
    ["no MutatingWebhookConfiguration", "apiVersion: v1\nkind: Namespace\n"],
    [
      "a foreign objectSelector",
      MANIFEST.replace(
        "    matchPolicy: Equivalent\n",
        "    matchPolicy: Equivalent\n    objectSelector:\n      matchLabels:\n        a: b\n",
      ),
    ],
  ])("refuses %s", (_, input) => {
    expect(() => patchWebhookConfig(input)).toThrow(WebhookConfigError);
  });
});
