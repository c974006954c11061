/** The shape in which kuik declares its Kubernetes API calls, from which its RBAC rules are generated (api-calls.ts). */

/** One resource and the verbs kuik uses on it. */
export interface ApiCall {
  /** API group, "" for core. */
  group: string;
  /** Plural resource name, with `/subresource` when it applies. */
  resource: string;
  verbs: readonly string[];
  /** When set, the verbs apply to these object names only. */
  resourceNames?: readonly string[];
  /** What uses it. */
  why: string;
  /**
   * Where it is granted: cluster-wide (a ClusterRole, the default) or in one namespace only (a Role): kuik's
   * (KUIK_NAMESPACE, `kuik-system` by default) or Pepr's (`pepr-system`).
   */
  namespace?: "kuik" | "pepr";
}
