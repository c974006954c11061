/**
 * What the watcher's bootstrap does, as data and pure functions (bootstrap.ts does the I/O): the API request of
 * each object it applies, when a CRD counts as Established, the JSON patch that gives Pepr's webhook kuik's
 * `objectSelector` and `reinvocationPolicy` (the same settings scripts/webhook-config.ts writes into built
 * manifests), and the API calls all of that makes, from which its RBAC is declared (capabilities/api-calls.ts).
 */
import type { ApiCall } from "../kube/api-call";
import { PATCH_TYPES, resourcePath, type KubeRequest, type ResourceRef } from "../kube/http";
import type { JsonPatchOp } from "../kube/ports";
import { IMAGE_CACHING_POLICY_IGNORE, LABEL_IMAGE_CACHING_POLICY } from "../shared/labels";

/** A Kubernetes object to apply, as `kubectl kustomize` renders it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** Field manager of every write of the bootstrap. */
export const BOOTSTRAP_FIELD_MANAGER = "kuik-bootstrap";

/** The MutatingWebhookConfiguration `pepr build` generates: `pepr-<uuid>` (package.json `pepr.uuid`). */
export const MODULE_WEBHOOK = "pepr-kuik";

/** Thrown by the bootstrap; `code` is stable. */
export class BootstrapError extends Error {
  readonly code: "BOOTSTRAP_UNKNOWN_KIND" | "BOOTSTRAP_NOT_ESTABLISHED" | "BOOTSTRAP_WEBHOOK";

  constructor(code: BootstrapError["code"], message: string) {
    super(message);
    this.name = "BootstrapError";
    this.code = code;
  }
}

/** Plural and scope of every kind the bootstrap may apply; a new kind in deploy/base must be added here. */
const KINDS: Readonly<Record<string, { plural: string; namespaced: boolean }>> = {
  ConfigMap: { plural: "configmaps", namespaced: true },
  CustomResourceDefinition: { plural: "customresourcedefinitions", namespaced: false },
  DaemonSet: { plural: "daemonsets", namespaced: true },
  Deployment: { plural: "deployments", namespaced: true },
  Namespace: { plural: "namespaces", namespaced: false },
  NetworkPolicy: { plural: "networkpolicies", namespaced: true },
  Secret: { plural: "secrets", namespaced: true },
  Service: { plural: "services", namespaced: true },
  ServiceAccount: { plural: "serviceaccounts", namespaced: true },
  StatefulSet: { plural: "statefulsets", namespaced: true },
};

/**
 * The API object of `m`.
 *
 * @throws BootstrapError (`BOOTSTRAP_UNKNOWN_KIND`) for a kind missing from the table above.
 */
export function resourceOf(m: Manifest): ResourceRef {
  const kind = KINDS[m.kind];
  if (kind === undefined)
    throw new BootstrapError("BOOTSTRAP_UNKNOWN_KIND", `no API resource known for ${m.kind}`);
  const slash = m.apiVersion.indexOf("/");
  const ref: ResourceRef = {
    group: slash < 0 ? "" : m.apiVersion.slice(0, slash),
    version: m.apiVersion.slice(slash + 1),
    plural: kind.plural,
    name: m.metadata.name,
  };
  if (kind.namespaced) ref.namespace = m.metadata.namespace ?? "default";
  return ref;
}

/** Server-side apply of `m`, forced (kuik owns these objects), reading back the result. */
export function applyRequest(m: Manifest): KubeRequest {
  return {
    method: "PATCH",
    path: resourcePath(resourceOf(m)),
    query: { fieldManager: BOOTSTRAP_FIELD_MANAGER, force: "true" },
    body: m,
    contentType: PATCH_TYPES.apply,
    read: true,
  };
}

/**
 * Whether `m` is created once and never changed: an immutable ConfigMap, named after its content (the proxy bundle,
 * proxy-bundle.ts). The bootstrap POSTs it and takes 409 AlreadyExists as success (the same name is the same
 * content), so it needs no `patch` right on a name that changes with every bundle.
 */
export function isCreatedOnce(m: Manifest): boolean {
  return m.kind === "ConfigMap" && m.immutable === true;
}

/** POST of `m` to its collection (see {@link isCreatedOnce}). */
export function createRequest(m: Manifest): KubeRequest {
  const { name: _name, ...collection } = resourceOf(m);
  return {
    method: "POST",
    path: resourcePath(collection),
    query: { fieldManager: BOOTSTRAP_FIELD_MANAGER },
    body: m,
  };
}

/** `kind/namespace/name` of `m`, for logs. */
export function describe(m: Manifest): string {
  return [m.kind, m.metadata.namespace, m.metadata.name].filter(Boolean).join("/");
}

/** Whether a CustomResourceDefinition read from the API server has condition Established=True. */
export function isEstablished(crd: unknown): boolean {
  const conditions = (crd as { status?: { conditions?: Array<{ type?: string; status?: string }> } } | null)
    ?.status?.conditions;
  return conditions?.some(c => c.type === "Established" && c.status === "True") === true;
}

/** kuik's opt-out: pods labelled `image-caching-policy=ignore` never reach the webhook (kuik v1's selector). */
export const OPT_OUT_EXPRESSION = {
  key: LABEL_IMAGE_CACHING_POLICY,
  operator: "NotIn",
  values: [IMAGE_CACHING_POLICY_IGNORE],
} as const;

/** kuik runs again when a later webhook changed the pod (v1's setting). */
export const REINVOCATION_POLICY = "IfNeeded";

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key?: string; operator?: string; values?: string[] }>;
}

/** A webhook of a MutatingWebhookConfiguration as the API server returns it (defaults filled in). */
export interface WebhookView {
  name: string;
  objectSelector?: LabelSelector;
  reinvocationPolicy?: string;
}

/**
 * The JSON patch giving every webhook of `config` kuik's opt-out expression and `reinvocationPolicy: IfNeeded`;
 * empty when it already has both (so applying it twice changes nothing). Each webhook's name is tested first, so
 * a configuration changed since it was read fails the patch (422) instead of being patched at the wrong index. An
 * existing selector of someone else's keeps its terms and gets kuik's expression added (ANDed).
 */
export function webhookPatch(config: { webhooks?: readonly WebhookView[] }): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  (config.webhooks ?? []).forEach((w, i) => {
    const at = `/webhooks/${i}`;
    const own: JsonPatchOp[] = [];
    const selector = w.objectSelector ?? {};
    const expressions = selector.matchExpressions ?? [];
    const hasOurs = expressions.some(
      e =>
        e.key === OPT_OUT_EXPRESSION.key &&
        e.operator === OPT_OUT_EXPRESSION.operator &&
        JSON.stringify(e.values) === JSON.stringify(OPT_OUT_EXPRESSION.values),
    );
    if (!hasOurs) {
      const expression = { ...OPT_OUT_EXPRESSION, values: [...OPT_OUT_EXPRESSION.values] };
      if (w.objectSelector === undefined) {
        own.push({ op: "add", path: `${at}/objectSelector`, value: { matchExpressions: [expression] } });
      } else if (selector.matchExpressions === undefined) {
        own.push({ op: "add", path: `${at}/objectSelector/matchExpressions`, value: [expression] });
      } else {
        own.push({ op: "add", path: `${at}/objectSelector/matchExpressions/-`, value: expression });
      }
    }
    if (w.reinvocationPolicy !== REINVOCATION_POLICY) {
      own.push({ op: "add", path: `${at}/reinvocationPolicy`, value: REINVOCATION_POLICY });
    }
    if (own.length > 0) ops.push({ op: "test", path: `${at}/name`, value: w.name }, ...own);
  });
  return ops;
}

/** Reading and JSON-patching the module's MutatingWebhookConfiguration. */
export function webhookRef(): ResourceRef {
  return {
    group: "admissionregistration.k8s.io",
    version: "v1",
    plural: "mutatingwebhookconfigurations",
    name: MODULE_WEBHOOK,
  };
}

/**
 * The API calls of the bootstrap of `dataPlane`: server-side apply of each object (`patch`, and `create` when it
 * creates it: the API server authorises that create with the object's name, so both are name-scoped), and
 * reading + patching the module's webhook. The CRDs need nothing here: Pepr's runtime already has `create` and
 * `patch` on CustomResourceDefinitions (its own PeprStore CRD), and their Established condition is read from the
 * apply's response.
 *
 * Objects {@link isCreatedOnce} (the proxy bundle's ConfigMap) are POSTed instead: RBAC cannot limit a POST create by
 * name (the name is not part of the request's attributes), so that is `create` on every ConfigMap, with no other
 * verb. Its rule lists `events` too, which kuik's runtime may already create everywhere (KUIK_API_CALLS): Pepr
 * merges rules by `apiGroups/resources`, and a bare `configmaps` rule would merge with the by-name rule of the
 * registry's ConfigMap, either losing the unnamed create or giving `patch` on every ConfigMap.
 */
export function bootstrapApiCalls(dataPlane: readonly Manifest[]): ApiCall[] {
  const byResource = new Map<string, { group: string; plural: string; names: Set<string> }>();
  const createdOnce = dataPlane.filter(isCreatedOnce);
  for (const m of dataPlane.filter(m => !isCreatedOnce(m))) {
    const ref = resourceOf(m);
    const key = `${ref.group}/${ref.plural}`;
    const entry = byResource.get(key) ?? { group: ref.group, plural: ref.plural, names: new Set<string>() };
    byResource.set(key, entry.names.add(m.metadata.name) && entry);
  }
  const calls: ApiCall[] = [...byResource.values()]
    .sort((a, b) => `${a.group}/${a.plural}`.localeCompare(`${b.group}/${b.plural}`))
    .map(r => ({
      group: r.group,
      resource: r.plural,
      verbs: ["create", "patch"],
      resourceNames: [...r.names].sort(),
      why: "bootstrap (KUIK_BOOTSTRAP=true): server-side apply of the kuik-system data plane",
    }));
  if (createdOnce.length > 0) {
    calls.push({
      group: "",
      resource: "configmaps,events",
      verbs: ["create"],
      why: "bootstrap (KUIK_BOOTSTRAP=true): the proxy bundle's content-named, immutable ConfigMap (POST)",
    });
  }
  const webhook = webhookRef();
  calls.push({
    group: webhook.group,
    resource: webhook.plural,
    verbs: ["get", "patch"],
    resourceNames: [MODULE_WEBHOOK],
    why: "bootstrap (KUIK_BOOTSTRAP=true): the webhook's objectSelector and reinvocationPolicy",
  });
  return calls;
}
