/**
 * The chart assembly's edits of Pepr's generated templates, on text shaped like Pepr 1.1.4's output. The real
 * generated chart is assembled, rendered and installed by test/e2e/chart.e2e.test.ts; here are the cases a given
 * build may not hit, above all docs/limitations.md B1 (only builds whose api path or caBundle contain "10" are corrupted).
 */
import { describe, expect, it } from "vitest";
import {
  ChartAssemblyError,
  checkWebhook,
  mergeSchema,
  mergeValues,
  patchDeployment,
  patchRbac,
  patchWebhook,
  TIMEOUT_EXPR,
  undoTimeoutReplacement,
} from "./assemble-chart";

// A real self-signed certificate (openssl, P-256, 10 years) whose base64 contains "10", so B1 corrupts it, and
// an api path with "10".
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUFQa7mtcYGa8emIF9FT4vQAc3RcUwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMa3Vpay1iMS10ZXN0MB4XDTI2MTEyNDE4NTEzNVoXDTM2MTEy
MTE4NTEzNVowFzEVMBMGA1UEAwwMa3Vpay1iMS10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEy05T0fjw++2kpFj/NBRN/O0HWeBRrc4e/zCDipdPmrzsd9fR
fNH+rjUMZp8PXwQ1no51G4DvwQlr+u0NFXJQe6NTMFEwHQYDVR0OBBYEFEUXEIKW
4S7fOBLHYW/Xr2wfrLj1MB8GA1UdIwQYMBaAFEUXEIKW4S7fOBLHYW/Xr2wfrLj1
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgQpG62iWdGDU/I9h5
BNDamS/q4lnC2dWD4hv6rYeFj2UCIQDTPhrv6rPjMy/aCWNwwZX+4Kl2HMaRsk1i
cYswSBcDpw==
-----END CERTIFICATE-----`;
const API_PATH = "ab10cd10ef";

function peprWebhook(apiPath: string, caBundle: string): string {
  // What Pepr's createWebhookYaml writes (after scripts/webhook-config.ts): every "10" replaced by the expression.
  return [
    "apiVersion: admissionregistration.k8s.io/v1",
    "kind: MutatingWebhookConfiguration",
    "metadata:",
    "  name: {{ .Values.uuid }}",
    "webhooks:",
    "  - admissionReviewVersions:",
    "      - v1",
    "    clientConfig:",
    "      caBundle: >-",
    `        ${caBundle}`,
    "      service:",
    "        name: {{ .Values.uuid }}",
    "        namespace: pepr-system",
    "        path: >-",
    `          /mutate/${apiPath}`,
    "    namespaceSelector:",
    "      matchExpressions:",
    "        - key: kubernetes.io/metadata.name",
    "          operator: NotIn",
    "          values:",
    "            - kube-system",
    "            - pepr-system",
    "            {{- range .Values.additionalIgnoredNamespaces }}",
    "            - {{ . }}",
    "            {{- end }}",
    "            - kuik-system",
    "    sideEffects: None",
    "    timeoutSeconds: 10",
    "    reinvocationPolicy: IfNeeded",
    "    objectSelector:",
    "      matchExpressions:",
    "        - key: kube-image-keeper.enix.io/image-caching-policy",
    "          operator: NotIn",
    "          values:",
    "            - ignore",
    "",
  ]
    .join("\n")
    .replaceAll("10", TIMEOUT_EXPR);
}

const apiPathSecret = (path: string): string =>
  `apiVersion: v1\ndata:\n  value: >-\n    ${Buffer.from(path).toString("base64")}\nkind: Secret\n`;

describe("docs/limitations.md B1 (webhook template corrupted by the timeout substitution)", () => {
  it("only the timeoutSeconds line keeps the expression", () => {
    const t = undoTimeoutReplacement(peprWebhook(API_PATH, "QQ10QQ"));
    expect(t).toContain(`/mutate/${API_PATH}`);
    expect(t).toContain("QQ10QQ");
    expect(t).toContain(`timeoutSeconds: ${TIMEOUT_EXPR}`);
    expect(t.split(TIMEOUT_EXPR)).toHaveLength(2);
  });

  it("a corrupted template is refused; undone, it matches the api-path Secret and its caBundle is a certificate", () => {
    const b64 = Buffer.from(CA_PEM).toString("base64");
    expect(b64).toContain("10");
    const corrupted = peprWebhook(API_PATH, b64);
    expect(() => checkWebhook(corrupted, apiPathSecret(API_PATH))).toThrow(ChartAssemblyError);
    const patched = patchWebhook(corrupted, apiPathSecret(API_PATH));
    expect(patched).toContain(`/mutate/${API_PATH}`);
    expect(patched).toContain(b64);
    expect(patched).toContain(`timeoutSeconds: ${TIMEOUT_EXPR}`);
    expect(patched).toContain(".Values.controllers.webhook.objectSelector.matchExpressions");
    expect(patched).toContain(".Values.controllers.webhook.ignoredNamespaces");
    expect(() => checkWebhook(patched, apiPathSecret("another"))).toThrow(
      /does not match the api-path Secret/,
    );
  });

  it("a webhook without build-module.sh's post-processing is refused", () => {
    const pem = Buffer.from(CA_PEM).toString("base64");
    const bare = peprWebhook("ffff", pem).replace("    reinvocationPolicy: IfNeeded\n", "");
    expect(() => patchWebhook(bare, apiPathSecret("ffff"))).toThrow(/reinvocationPolicy/);
  });
});

describe("Pepr Deployments, RBAC and values", () => {
  const deployment = (c: "admission" | "watcher"): string =>
    [
      "spec:",
      c === "admission" ? "  replicas: 2" : "  replicas: 1",
      "      serviceAccountName: {{ .Values.uuid }}",
      "          resources:",
      `            {{- toYaml .Values.${c}.resources | nindent 12 }}`,
      "          env:",
      `            {{- toYaml .Values.${c}.env | nindent 12 }}`,
      "          volumeMounts:",
      `            {{- if .Values.${c}.extraVolumeMounts }}`,
      "      volumes:",
      `        {{- if .Values.${c}.extraVolumes }}`,
      "",
    ].join("\n");

  it("wires kuik's env, replicas, resources, CAs and ServiceAccount into both Deployments", () => {
    const a = patchDeployment(deployment("admission"), "admission");
    expect(a).toContain("replicas: {{ .Values.controllers.replicas }}");
    expect(a).toContain('include "kuik.operatorEnv"');
    expect(a).toContain(".Values.controllers.resources | default .Values.admission.resources");
    expect(a).toContain('include "kuik.caVolumeMounts"');
    expect(a).toContain('include "kuik.caVolumes"');
    // admission on its own ServiceAccount (#13), the watcher on Pepr's
    expect(a).toContain(
      'serviceAccountName: {{ if .Values.serviceAccount.create }}pepr-kuik-admission{{ else }}{{ include "kuik.peprServiceAccount" . }}{{ end }}\n',
    );
    const w = patchDeployment(deployment("watcher"), "watcher");
    expect(w).toContain('serviceAccountName: {{ include "kuik.peprServiceAccount" . }}');
    expect(w).toContain("replicas: 1");
    expect(w).toContain('include "kuik.operatorEnv"');
  });

  it("fails loudly when a generated template changed shape", () => {
    expect(() =>
      patchDeployment(
        deployment("watcher").replace("env:", "environment:").replace(".env ", ".envs "),
        "watcher",
      ),
    ).toThrow(ChartAssemblyError);
  });

  it("rbac.create and serviceAccount.create wrap Pepr's objects", () => {
    const role = patchRbac(
      "cluster-role.yaml",
      "rules: \n  {{- if .Values.rbac }}\n  {{- toYaml .Values.rbac | nindent 2 }}\n  {{- end }}\n",
    );
    expect(role).toMatch(/^\{\{- if \.Values\.rbac\.create \}\}/);
    expect(role).toContain("toYaml .Values.rbac.rules ");
    const sa = patchRbac(
      "service-account.yaml",
      "kind: ServiceAccount\nmetadata:\n  name: pepr-kuik\n  namespace: pepr-system\n",
    );
    expect(sa).toContain(".Values.serviceAccount.create");
    expect(sa).toContain('name: {{ include "kuik.peprServiceAccount" . }}');
  });

  it("Pepr's rbac rule list moves under rbac.rules; clashing keys are refused", () => {
    const pepr =
      "imagePullSecrets: []\nrbac:\n  - apiGroups:\n      - ''\n    verbs:\n      - 'get'\nuuid: 'pepr-kuik'\n";
    const merged = mergeValues("cachedImagesExpiryDelay: 30\n", pepr);
    expect(merged).toContain("rbac:\n  create: true\n");
    expect(merged).toContain(
      "  rules:\n    - apiGroups:\n        - ''\n      verbs:\n        - 'get'\nuuid: 'pepr-kuik'",
    );
    expect(() => mergeValues("uuid: x\n", pepr)).toThrow(/both kuik's and Pepr's/);
  });

  it("the schema keeps both sides and refuses unknown top-level keys", () => {
    const s = mergeSchema(
      { type: "object", properties: { proxy: { type: "object" } } },
      {
        definitions: {
          Values: { properties: { rbac: { type: "array" }, admission: { $ref: "#/definitions/A" } } },
          A: {},
        },
      },
    );
    expect(s.additionalProperties).toBe(false);
    expect(Object.keys(s.properties ?? {}).sort()).toEqual(["admission", "proxy", "rbac"]);
    expect(s.definitions).toHaveProperty("A");
  });
});
