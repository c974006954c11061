/**
 * Every Kubernetes API call kuik's module makes, in one place: the RBAC of package.json (`pepr.rbac`) is generated
 * from it, and capabilities/rbac.test.ts checks both that the built ClusterRole grants exactly this and that the
 * real KubePort (kube/client.ts) calls nothing else.
 *
 * Pepr's scoped RBAC only infers `watch` for Watch/Reconcile bindings (no `list`, although every watch lists
 * first) and nothing for the calls our own code makes (docs/limitations.md, B2), so every rule is spelled out here.
 */
import { BOOTSTRAP_DATA_PLANE } from "./bootstrap/data-plane";
import { bootstrapApiCalls } from "./bootstrap/plan";
import type { ApiCall } from "./kube/api-call";
import { DEFAULT_PROXY_CREDENTIALS_SECRET } from "./shared/watcher-config";

/**
 * The calls kuik's own code and bindings make. Verbs are sorted; `create` on an object written with server-side
 * apply is needed because an apply that creates the object is authorised as a create too.
 */
export const KUIK_API_CALLS: readonly ApiCall[] = [
  {
    group: "",
    resource: "pods",
    verbs: ["patch", "watch"],
    why: "Pod watch bindings; the rescue gives stuck Pods their original images (proxy-gate/rescue.ts)",
  },
  {
    group: "",
    // one rule for both (not `serviceaccounts` alone): the bootstrap's name-scoped rule owns that key (policyRules)
    resource: "pods,serviceaccounts",
    verbs: ["list"],
    why: "Pod watch bindings, resync, live recount, the proxy gate's Pods; resync: pull secrets of service accounts",
  },
  {
    group: "",
    resource: "secrets,serviceaccounts",
    verbs: ["get"],
    // no list/watch on secrets: a get needs the name, which only a pod, service account or Repository gives
    why: "pull secrets named by Repositories (any namespace); service account of a new pod",
  },
  { group: "", resource: "events", verbs: ["create"], why: "Events of CachedImages" },
  {
    group: "kuik.enix.io",
    resource: "cachedimages",
    verbs: ["create", "delete", "get", "list", "patch", "watch"],
    why: "tracking (apply, expiry), caching (get, finalizer), expiry (delete), Reconcile binding",
  },
  { group: "kuik.enix.io", resource: "cachedimages/status", verbs: ["patch"], why: "status of CachedImages" },
  {
    group: "kuik.enix.io",
    resource: "repositories",
    verbs: ["create", "get", "list", "patch", "watch"],
    why: "tracking (apply pull secrets), credentials of a copy (get), Repository watch bindings, resync",
  },
  { group: "kuik.enix.io", resource: "repositories/status", verbs: ["patch"], why: "status of Repositories" },
];

/**
 * What the watcher writes in kuik's namespace only (a Role and RoleBinding, never the ClusterRole): the proxy
 * credentials Secret. A create anywhere would let its holder mint a token for any ServiceAccount (a Secret of type
 * `kubernetes.io/service-account-token`), so it is granted in kuik's namespace, and by name: the Secret is written by
 * server-side apply, which the API server authorises as `create` WITH the object's name when it creates the object
 * (a POST create carries no name, and would not match). A renamed Secret (KUIK_PROXY_CREDENTIALS_SECRET) needs
 * this Role edited.
 */
export const WATCHER_KUIK_NAMESPACE_CALLS: readonly ApiCall[] = [
  {
    group: "",
    resource: "secrets",
    verbs: ["create", "patch"],
    resourceNames: [DEFAULT_PROXY_CREDENTIALS_SECRET],
    namespace: "kuik",
    why: "server-side apply of the proxy credentials Secret (an apply that creates is authorised as a create by name)",
  },
];

/**
 * What the admission process needs, under its own ServiceAccount: Pepr's runtime, and the proxy gate's list of
 * the proxy Pods in kuik's namespace (the admission callback itself makes no API call: it reads the gate's memory). Pepr's controller.js applies the PeprStore CRD at start (by name: an apply), and the
 * admission server binds its endpoints once Pepr's store is read, in pepr-system.
 */
export const ADMISSION_CALLS: readonly ApiCall[] = [
  {
    group: "apiextensions.k8s.io",
    resource: "customresourcedefinitions",
    verbs: ["create", "patch"],
    resourceNames: ["peprstores.pepr.dev"],
    why: "Pepr's controller.js applies the PeprStore CRD at start",
  },
  {
    group: "pepr.dev",
    resource: "peprstores",
    verbs: ["create", "get", "list", "patch", "watch"],
    namespace: "pepr",
    why: "Pepr store in pepr-system (its watch lists first); admission serves only once the store is read",
  },
  {
    group: "",
    resource: "pods",
    verbs: ["list"],
    namespace: "kuik",
    why: "the proxy gate lists the proxy DaemonSet's Pods before a rewrite (proxy-gate/gate.ts)",
  },
];

/**
 * What Pepr's own runtime needs (its store and the PeprStore CRD it applies at start). Pepr adds these itself in
 * scoped mode, except `list` on peprstores, which its store watch needs.
 */
export const PEPR_RUNTIME_CALLS: readonly ApiCall[] = [
  {
    group: "pepr.dev",
    resource: "peprstores",
    verbs: ["create", "get", "list", "patch", "watch"],
    why: "Pepr store (the watch lists first)",
  },
  {
    group: "apiextensions.k8s.io",
    resource: "customresourcedefinitions",
    verbs: ["create", "patch"],
    why: "Pepr's controller applies the PeprStore CRD at start",
  },
];

/**
 * What the watcher's bootstrap needs (capabilities/bootstrap; only when KUIK_BOOTSTRAP=true, the `npx pepr deploy`
 * install): name-scoped apply of each kuik-system object of deploy/base, the create of the proxy bundle's ConfigMap
 * (not name-scoped: see bootstrapApiCalls), and patching the module's webhook.
 * Derived from the generated manifests, so a new object in deploy/base gets its rule. The kustomize and Helm
 * installs remove these rules (deploy/kustomization.yaml, scripts/assemble-chart.ts): they come last in
 * {@link policyRules} for that reason.
 */
export const BOOTSTRAP_API_CALLS: readonly ApiCall[] = bootstrapApiCalls(BOOTSTRAP_DATA_PLANE);

/** A Kubernetes RBAC PolicyRule. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/**
 * The PolicyRules of `calls`, as `pepr.rbac` in package.json holds them. Pepr merges rules by
 * `apiGroups/resources`, so two calls must never share that pair (the secrets rules are split across resource
 * lists for that reason); {@link policyRules} throws if they do.
 */
export function policyRules(
  calls: readonly ApiCall[] = [...PEPR_RUNTIME_CALLS, ...KUIK_API_CALLS, ...BOOTSTRAP_API_CALLS],
): PolicyRule[] {
  const seen = new Set<string>();
  return calls.map(call => {
    const resources = call.resource.split(",");
    const key = `${call.group}/${resources.join(",")}`;
    if (seen.has(key)) throw new Error(`two API call rules for ${key}: Pepr would merge them`);
    seen.add(key);
    const rule: PolicyRule = { apiGroups: [call.group], resources, verbs: [...call.verbs] };
    if (call.resourceNames) rule.resourceNames = [...call.resourceNames];
    return rule;
  });
}

/** `group/resource` → verbs granted without a name restriction, and with one, flattened from `calls`. */
export function grantedVerbs(
  calls: readonly ApiCall[],
): Map<string, { any: Set<string>; named: Map<string, Set<string>> }> {
  const out = new Map<string, { any: Set<string>; named: Map<string, Set<string>> }>();
  for (const call of calls) {
    for (const resource of call.resource.split(",")) {
      const key = `${call.group}/${resource}`;
      const entry = out.get(key) ?? { any: new Set<string>(), named: new Map<string, Set<string>>() };
      out.set(key, entry);
      for (const verb of call.verbs) {
        if (!call.resourceNames) entry.any.add(verb);
        for (const name of call.resourceNames ?? []) {
          entry.named.set(name, (entry.named.get(name) ?? new Set<string>()).add(verb));
        }
      }
    }
  }
  return out;
}
