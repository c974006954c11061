/**
 * Assembles kuik's installable Helm chart (docs/install.md "Helm"): the chart source of deploy/chart/ (registry,
 * proxy, garbage collection, policies, monitors, UI) + the Pepr module's generated chart (dist/kuik-chart: admission
 * and watcher Deployments, RBAC, webhook, Secrets) with kuik's settings wired into it + the CRDs of deploy/crds/.
 *
 * Every edit of a generated template is an exact match that must be found (a Pepr upgrade that changes a template
 * fails the build with {@link ChartAssemblyError} instead of producing a chart that silently lacks a setting).
 *
 * Usage: `tsx scripts/assemble-chart.ts <pepr chart dir> <out dir>` (run by scripts/build-chart.sh).
 */
import { X509Certificate } from "node:crypto";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { loadYaml } from "@kubernetes/client-node";
import { dumpYaml } from "@kubernetes/client-node";
import { BOOTSTRAP_API_CALLS, policyRules } from "../capabilities/api-calls";
import { ADMISSION_NODE_OPTIONS, WATCHER_NODE_OPTIONS } from "../capabilities/shared/node-options";
import {
  ADMISSION_SERVICE_ACCOUNT,
  WATCHER_SERVICE_ACCOUNT,
  kuikRbacObjects,
} from "../capabilities/rbac-objects";
import { describeProxyBundle, proxyBundleConfigMap } from "../capabilities/bootstrap/proxy-bundle";

/** Thrown when the generated chart is not what the assembly expects. */
export class ChartAssemblyError extends Error {
  readonly code = "CHART_ASSEMBLY";
}

/** The expression Pepr's generator put in place of every "10" of the webhook (docs/limitations.md B1). */
export const TIMEOUT_EXPR = "{{ .Values.admission.webhookTimeout }}";

/**
 * Undoes docs/limitations.md B1: Pepr generates the webhook template by replacing EVERY "10" of the YAML with the timeout
 * expression, so a base64 `caBundle` or the random `/mutate/<hex>` path that contained "10" changes with
 * `admission.webhookTimeout`. The expression is legitimate on the `timeoutSeconds:` line only; everywhere else it
 * stood for the text "10".
 */
export function undoTimeoutReplacement(template: string): string {
  return template
    .split("\n")
    .map(line => (/^\s*timeoutSeconds:/.test(line) ? line : line.replaceAll(TIMEOUT_EXPR, "10")))
    .join("\n");
}

/** The value of a folded `key: >-` scalar (Pepr writes caBundle and path so) or of a plain `key: value`. */
export function scalarOf(template: string, key: string): string {
  const lines = template.split("\n");
  const i = lines.findIndex(l => l.trimStart().startsWith(`${key}:`));
  if (i < 0) throw new ChartAssemblyError(`no ${key} in the generated template`);
  const inline = (lines[i] as string)
    .trimStart()
    .slice(key.length + 1)
    .trim();
  if (inline !== ">-" && inline !== "") return inline.replace(/^['"]|['"]$/g, "");
  return (lines[i + 1] ?? "").trim();
}

/**
 * Checks the webhook against the Secrets it must agree with: the path is `/mutate/<api path>` and the caBundle a
 * certificate. A B1-corrupted template fails here.
 */
export function checkWebhook(webhook: string, apiPathSecret: string): void {
  const apiPath = Buffer.from(scalarOf(apiPathSecret, "value"), "base64").toString("utf8");
  const path = scalarOf(webhook, "path");
  if (path !== `/mutate/${apiPath}`) {
    throw new ChartAssemblyError(
      `webhook path ${path} does not match the api-path Secret (/mutate/${apiPath})`,
    );
  }
  const pem = Buffer.from(scalarOf(webhook, "caBundle"), "base64").toString("utf8");
  try {
    new X509Certificate(pem);
  } catch (e) {
    throw new ChartAssemblyError(`webhook caBundle is not a certificate: ${(e as Error).message}`);
  }
}

/** Replaces `from` by `to`, which must occur exactly `count` times. */
export function replaceExactly(text: string, from: string, to: string, what: string, count = 1): string {
  const found = text.split(from).length - 1;
  if (found !== count) {
    throw new ChartAssemblyError(
      `${what}: expected ${count} occurrence(s) of ${JSON.stringify(from)}, found ${found}`,
    );
  }
  return text.replaceAll(from, to);
}

/** The webhook: B1 undone, kuik's namespaces and extra object selectors added. */
export function patchWebhook(template: string, apiPathSecret: string): string {
  let t = undoTimeoutReplacement(template);
  checkWebhook(t, apiPathSecret);
  t = replaceExactly(
    t,
    "            {{- range .Values.additionalIgnoredNamespaces }}\n            - {{ . }}\n            {{- end }}\n",
    [
      "            {{- range .Values.additionalIgnoredNamespaces }}",
      "            - {{ . }}",
      "            {{- end }}",
      '            {{- range (without (concat (list .Release.Namespace) (.Values.controllers.webhook.ignoredNamespaces | default list)) "kube-system" "pepr-system" "kuik-system" | uniq) }}',
      "            - {{ . }}",
      "            {{- end }}",
      "",
    ].join("\n"),
    "webhook namespaceSelector",
  );
  // the opt-out expression of scripts/webhook-config.ts is the last block of the file
  t = replaceExactly(
    t,
    "    objectSelector:\n      matchExpressions:\n",
    "    objectSelector:\n      {{- with .Values.controllers.webhook.objectSelector.matchLabels }}\n      matchLabels:\n        {{- toYaml . | nindent 8 }}\n      {{- end }}\n      matchExpressions:\n        {{- with .Values.controllers.webhook.objectSelector.matchExpressions }}\n        {{- toYaml . | nindent 8 }}\n        {{- end }}\n",
    "webhook objectSelector",
  );
  if (!/reinvocationPolicy: IfNeeded/.test(t)) {
    throw new ChartAssemblyError(
      "webhook without reinvocationPolicy: run scripts/build-module.sh, not pepr build",
    );
  }
  return t;
}

/** Both Pepr Deployments: kuik's env, resources, CA volume and ServiceAccount. */
export function patchDeployment(template: string, component: "admission" | "watcher"): string {
  const what = `${component} Deployment`;
  let t = template;
  if (component === "admission")
    t = replaceExactly(t, "  replicas: 2\n", "  replicas: {{ .Values.controllers.replicas }}\n", what);
  t = replaceExactly(
    t,
    `            {{- toYaml .Values.${component}.env | nindent 12 }}\n`,
    `            {{- toYaml .Values.${component}.env | nindent 12 }}\n            {{- include "kuik.operatorEnv" . | nindent 12 }}\n`,
    what,
  );
  t = replaceExactly(
    t,
    `{{- toYaml .Values.${component}.resources | nindent 12 }}`,
    `{{- toYaml (.Values.controllers.resources | default .Values.${component}.resources) | nindent 12 }}`,
    what,
  );
  t = replaceExactly(
    t,
    `            {{- if .Values.${component}.extraVolumeMounts }}\n`,
    `            {{- include "kuik.caVolumeMounts" . | nindent 12 }}\n            {{- if .Values.${component}.extraVolumeMounts }}\n`,
    what,
  );
  t = replaceExactly(
    t,
    `        {{- if .Values.${component}.extraVolumes }}\n`,
    `        {{- include "kuik.caVolumes" . | nindent 8 }}\n        {{- if .Values.${component}.extraVolumes }}\n`,
    what,
  );
  // The admission runs as its own ServiceAccount (capabilities/rbac-objects.ts, {@link kuikRbacTemplate}); with
  // serviceAccount.create=false, v1's one ServiceAccount (`serviceAccount.name`) serves both.
  const shared = '{{ include "kuik.peprServiceAccount" . }}';
  const account =
    component === "admission"
      ? `{{ if .Values.serviceAccount.create }}${ADMISSION_SERVICE_ACCOUNT}{{ else }}${shared}{{ end }}`
      : shared;
  t = replaceExactly(t, "serviceAccountName: {{ .Values.uuid }}\n", `serviceAccountName: ${account}\n`, what);
  return t;
}

/**
 * kuik's RBAC objects (capabilities/rbac-objects.ts) as a chart template: the admission's ServiceAccount under
 * `serviceAccount.create`, its roles and the watcher's Role in the release namespace (kuik's) under `rbac.create`.
 */
export function kuikRbacTemplate(): string {
  const NS = "kuik-namespace-placeholder";
  const objects = kuikRbacObjects({ kuikNamespace: NS });
  const docs = objects.map(o => {
    let text = dumpYaml(o).trimEnd().replaceAll(NS, "{{ .Release.Namespace }}");
    if (o.kind === "RoleBinding" && o.metadata.name === WATCHER_SERVICE_ACCOUNT) {
      text = replaceExactly(
        text,
        `name: ${WATCHER_SERVICE_ACCOUNT}\n    namespace:`,
        'name: {{ include "kuik.peprServiceAccount" . }}\n    namespace:',
        "watcher RoleBinding subject",
      );
    }
    const condition = o.kind === "ServiceAccount" ? ".Values.serviceAccount.create" : ".Values.rbac.create";
    return onlyIf(condition, text).trimEnd();
  });
  return `# kuik's RBAC besides Pepr's ClusterRole (scripts/assemble-chart.ts, capabilities/rbac-objects.ts)\n${docs.join("\n---\n")}\n`;
}

/** Wraps a whole template in a condition. */
const onlyIf = (condition: string, template: string): string =>
  `{{- if ${condition} }}\n${template.trimEnd()}\n{{- end }}\n`;

/** RBAC and ServiceAccount: v1's `rbac.create`, `serviceAccount.create/name/annotations`. */
export function patchRbac(file: string, template: string): string {
  switch (file) {
    case "cluster-role.yaml":
      return onlyIf(
        ".Values.rbac.create",
        replaceExactly(template, ".Values.rbac ", ".Values.rbac.rules ", file, 2),
      );
    case "cluster-role-binding.yaml":
      return onlyIf(
        ".Values.rbac.create",
        replaceExactly(
          template,
          "  - kind: ServiceAccount\n    name: pepr-kuik\n",
          '  - kind: ServiceAccount\n    name: {{ include "kuik.peprServiceAccount" . }}\n',
          file,
        ),
      );
    case "store-role.yaml":
    case "store-role-binding.yaml":
      return onlyIf(".Values.rbac.create", template);
    case "service-account.yaml":
      return onlyIf(
        ".Values.serviceAccount.create",
        replaceExactly(
          template,
          "  name: pepr-kuik\n",
          '  name: {{ include "kuik.peprServiceAccount" . }}\n  {{- with .Values.serviceAccount.annotations }}\n  annotations:\n    {{- toYaml . | nindent 4 }}\n  {{- end }}\n',
          file,
        ),
      );
    default:
      return template;
  }
}

/**
 * Pepr's values.yaml under kuik's: its `rbac:` rule list becomes `rbac.rules` next to v1's `rbac.create`; every
 * other key is Pepr's and distinct from kuik's.
 */
export function mergeValues(ours: string, pepr: string): string {
  const lines = pepr.split("\n");
  const start = lines.indexOf("rbac:");
  if (start < 0) throw new ChartAssemblyError("no rbac: in Pepr's values.yaml");
  let end = start + 1;
  while (end < lines.length && (lines[end] === "" || /^\s/.test(lines[end] as string))) end++;
  // "  - apiGroups:" under `rbac:` → "    - apiGroups:" under `rbac.rules:`
  const rules = lines.slice(start + 1, end).map(l => (l === "" ? l : `  ${l}`));
  const rbac = [
    "# v1's rbac.create: false leaves out Pepr's ClusterRole/Binding and store Role (bring your own).",
    "rbac:",
    "  create: true",
    "  # The operator's ClusterRole rules (package.json pepr.rbac, scoped mode).",
    "  rules:",
    ...rules,
  ];
  const rest = [...lines.slice(0, start), ...rbac, ...lines.slice(end)].join("\n");
  const ourKeys = new Set(
    ours
      .split("\n")
      .filter(l => /^[A-Za-z-]+:/.test(l))
      .map(l => l.split(":")[0]),
  );
  for (const key of rest
    .split("\n")
    .filter(l => /^[A-Za-z-]+:/.test(l))
    .map(l => l.split(":")[0])) {
    if (ourKeys.has(key)) throw new ChartAssemblyError(`values key ${key} is both kuik's and Pepr's`);
  }
  return `${ours.trimEnd()}\n\n# ---------------------------------------------------------------------------------------------------------------\n# The Pepr module's values (generated by \`pepr build\`; admission.webhookTimeout is safe to change here, see\n# docs/configuration.md). uuid, hash and secrets identify the built module: do not change them.\n${rest.trimEnd()}\n`;
}

/**
 * Pepr's values.yaml without the bootstrap (capabilities/bootstrap, docs/install.md §3): the chart brings the CRDs
 * and kuik-system itself, so `KUIK_BOOTSTRAP` is "false" in both Deployments' env and the rules only the bootstrap
 * needs (capabilities/api-calls.ts BOOTSTRAP_API_CALLS) leave `rbac:`. Each must be found.
 */
/**
 * Pepr's values.yaml with the watcher's own Node flags (capabilities/shared/node-options.ts): Pepr writes
 * package.json's `NODE_OPTIONS` (the admission's) into both env lists; the one under `watcher:` becomes
 * {@link WATCHER_NODE_OPTIONS}.
 */
export function withWatcherNodeOptions(pepr: string): string {
  const lines = pepr.split("\n");
  const watcher = lines.indexOf("watcher:");
  const name = lines.findIndex((l, i) => i > watcher && /^ +- name: 'NODE_OPTIONS'$/.test(l));
  const value = lines[name + 1] ?? "";
  if (watcher < 0 || name < 0 || !value.includes(`'${ADMISSION_NODE_OPTIONS}'`))
    throw new ChartAssemblyError(
      `no NODE_OPTIONS '${ADMISSION_NODE_OPTIONS}' in the watcher's env of Pepr's values`,
    );
  lines[name + 1] = value.replace(`'${ADMISSION_NODE_OPTIONS}'`, `'${WATCHER_NODE_OPTIONS}'`);
  return lines.join("\n");
}

export function withoutBootstrap(pepr: string): string {
  const bootstrap = new Set(policyRules(BOOTSTRAP_API_CALLS).map(r => JSON.stringify(r)));
  const lines = pepr.split("\n");
  const start = lines.indexOf("rbac:");
  if (start < 0) throw new ChartAssemblyError("no rbac: in Pepr's values.yaml");
  const out = lines.slice(0, start + 1);
  let removed = 0;
  let i = start + 1;
  while (i < lines.length && lines[i]?.startsWith("  - ")) {
    let end = i + 1;
    while (end < lines.length && lines[end]?.startsWith("    ")) end++;
    const item = lines.slice(i, end);
    const rule = loadYaml(item.map(l => l.slice(2)).join("\n")) as unknown[];
    if (bootstrap.has(JSON.stringify(rule[0]))) removed++;
    else out.push(...item);
    i = end;
  }
  if (removed !== bootstrap.size) {
    throw new ChartAssemblyError(`found ${removed} of the ${bootstrap.size} bootstrap rules in Pepr's rbac:`);
  }
  const text = [...out, ...lines.slice(i)].join("\n");
  const on = /^( +- name: 'KUIK_BOOTSTRAP'\n +value: )'true'$/gm;
  if ((text.match(on) ?? []).length !== 2)
    throw new ChartAssemblyError("KUIK_BOOTSTRAP not in both env lists");
  return text.replace(on, "$1'false'");
}

type Schema = { properties?: Record<string, unknown>; definitions?: Record<string, unknown> } & Record<
  string,
  unknown
>;

/** kuik's schema + Pepr's (its top-level properties and definitions), `rbac` as {create, rules}. */
export function mergeSchema(ours: Schema, pepr: Schema): Schema {
  const root = (pepr.definitions?.Values ?? pepr) as Schema;
  const peprProps = { ...(root.properties ?? {}) };
  const rbacRules = peprProps.rbac;
  delete peprProps.rbac;
  return {
    ...ours,
    additionalProperties: false,
    definitions: { ...(pepr.definitions ?? {}), ...(ours.definitions ?? {}) },
    properties: {
      ...peprProps,
      ...(ours.properties ?? {}),
      rbac: {
        type: "object",
        additionalProperties: false,
        properties: { create: { type: "boolean" }, rules: rbacRules ?? { type: "array" } },
      },
    },
  };
}

/** Builds `<out>` from the source chart, Pepr's generated chart, the CRDs and the GC script. */
export function assembleChart(opts: {
  source: string;
  pepr: string;
  crds: string;
  gcScript: string;
  /**
   * proxy/dist/kuik-proxy.mjs: the chart gets its sha256 (files/kuik-proxy.mjs.sha256, templates/proxy.yaml), and its
   * ConfigMap is written beside the chart, `<out>/../kube-image-keeper-proxy-bundle.yaml`, to apply before Helm.
   */
  proxyBundle: string;
  out: string;
}): void {
  const { source, pepr, crds, out } = opts;
  for (const f of [join(pepr, "values.yaml"), join(pepr, "templates", "mutation-webhook.yaml")]) {
    if (!existsSync(f)) throw new ChartAssemblyError(`${f} missing: run scripts/build-module.sh first`);
  }
  rmSync(out, { recursive: true, force: true });
  cpSync(source, out, { recursive: true });
  const peprTemplates = join(out, "templates", "pepr");
  mkdirSync(peprTemplates, { recursive: true });
  const read = (f: string): string => readFileSync(join(pepr, "templates", f), "utf8");
  for (const file of readdirSync(join(pepr, "templates")).sort()) {
    let t = read(file);
    if (file === "mutation-webhook.yaml") t = patchWebhook(t, read("api-path-secret.yaml"));
    else if (file === "admission-deployment.yaml") t = patchDeployment(t, "admission");
    else if (file === "watcher-deployment.yaml") t = patchDeployment(t, "watcher");
    else t = patchRbac(file, t);
    writeFileSync(join(peprTemplates, file), t);
  }
  writeFileSync(join(peprTemplates, "kuik-rbac.yaml"), kuikRbacTemplate());
  writeFileSync(
    join(out, "values.yaml"),
    mergeValues(
      readFileSync(join(source, "values.yaml"), "utf8"),
      withWatcherNodeOptions(withoutBootstrap(readFileSync(join(pepr, "values.yaml"), "utf8"))),
    ),
  );
  const schema = mergeSchema(
    JSON.parse(readFileSync(join(source, "values.schema.json"), "utf8")) as Schema,
    JSON.parse(readFileSync(join(pepr, "values.schema.json"), "utf8")) as Schema,
  );
  writeFileSync(join(out, "values.schema.json"), `${JSON.stringify(schema, null, 2)}\n`);
  mkdirSync(join(out, "crds"), { recursive: true });
  for (const f of readdirSync(crds).filter(f => f.endsWith(".yaml")))
    copyFileSync(join(crds, f), join(out, "crds", f));
  // The garbage-collection script of the kustomize component: one script for both installs.
  if (!existsSync(opts.gcScript)) throw new ChartAssemblyError(`${opts.gcScript} missing`);
  mkdirSync(join(out, "files"), { recursive: true });
  copyFileSync(opts.gcScript, join(out, "files", "garbage-collect.sh"));
  if (!existsSync(opts.proxyBundle)) {
    throw new ChartAssemblyError(`${opts.proxyBundle} missing: run npx tsx scripts/generate-proxy-bundle.ts`);
  }
  const bundle = describeProxyBundle(readFileSync(opts.proxyBundle, "utf8"));
  writeFileSync(join(out, "files", "kuik-proxy.mjs.sha256"), `${bundle.sha256}\n`);
  const { namespace: _namespace, ...metadata } = proxyBundleConfigMap(bundle, "").metadata;
  writeFileSync(
    join(dirname(out), PROXY_BUNDLE_MANIFEST),
    `${JSON.stringify({ ...proxyBundleConfigMap(bundle, ""), metadata })}\n`,
  );
}

/** The proxy bundle's ConfigMap beside the assembled chart (no namespace: `kubectl apply -n <release namespace>`). */
export const PROXY_BUNDLE_MANIFEST = "kube-image-keeper-proxy-bundle.yaml";

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const [pepr, out] = process.argv.slice(2);
  if (!pepr || !out) {
    console.error("usage: tsx scripts/assemble-chart.ts <pepr chart dir> <out dir>");
    process.exit(2);
  }
  const root = resolve(import.meta.dirname, "..");
  assembleChart({
    source: join(root, "deploy", "chart"),
    pepr,
    crds: join(root, "deploy", "crds"),
    gcScript: join(root, "deploy", "components", "garbage-collection", "garbage-collect.sh"),
    proxyBundle: join(root, "proxy", "dist", "kuik-proxy.mjs"),
    out,
  });
  console.error(`assemble-chart: ${out}`);
}
