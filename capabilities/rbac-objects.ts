/**
 * The RBAC objects kuik adds to what Pepr generates (docs/security.md "RBAC"). Pepr's `pepr build`/`pepr deploy`
 * make one ClusterRole (package.json `pepr.rbac`, the watcher's cluster-wide rules) bound to one ServiceAccount that
 * both Deployments use. kuik's installs (scripts/build-module.sh for the manifest and deploy/, scripts/assemble-chart.ts
 * for Helm) keep that ServiceAccount for the watcher and add:
 * - the admission's own ServiceAccount, with Pepr's runtime only ({@link ADMISSION_CALLS});
 * - a Role in kuik's namespace for the watcher's writes there ({@link WATCHER_KUIK_NAMESPACE_CALLS}).
 */
import { ADMISSION_CALLS, WATCHER_KUIK_NAMESPACE_CALLS, policyRules } from "./api-calls";
import type { ApiCall } from "./kube/api-call";

/** Pepr's namespace (fixed by Pepr 1.1.4). */
export const PEPR_NAMESPACE = "pepr-system";
/** The watcher's ServiceAccount: the one Pepr generates and binds its ClusterRole to. */
export const WATCHER_SERVICE_ACCOUNT = "pepr-kuik";
/** The admission's ServiceAccount, added by kuik's installs. */
export const ADMISSION_SERVICE_ACCOUNT = "pepr-kuik-admission";

/** A Kubernetes object as these generators write it. */
export interface RbacObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

const RBAC = "rbac.authorization.k8s.io/v1";

/** A (Cluster)Role with the rules of `calls` and its (Cluster)RoleBinding to `serviceAccount`. */
function bound(
  name: string,
  namespace: string | undefined,
  calls: readonly ApiCall[],
  serviceAccount: string,
) {
  const kind = namespace === undefined ? "ClusterRole" : "Role";
  const metadata = namespace === undefined ? { name } : { name, namespace };
  return [
    { apiVersion: RBAC, kind, metadata, rules: policyRules(calls) },
    {
      apiVersion: RBAC,
      kind: `${kind}Binding`,
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind, name },
      subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace: PEPR_NAMESPACE }],
    },
  ];
}

/** Options of {@link kuikRbacObjects}. */
export interface RbacObjectsOptions {
  /** kuik's namespace (KUIK_NAMESPACE). */
  kuikNamespace: string;
  /** Include the admission's ServiceAccount (default true; the Helm chart makes it under `serviceAccount.create`). */
  serviceAccount?: boolean;
}

/** The objects kuik adds to Pepr's RBAC (see the file comment). */
export function kuikRbacObjects(opts: RbacObjectsOptions): RbacObject[] {
  const cluster = ADMISSION_CALLS.filter(c => c.namespace === undefined);
  const inPepr = ADMISSION_CALLS.filter(c => c.namespace === "pepr");
  const inKuik = ADMISSION_CALLS.filter(c => c.namespace === "kuik");
  const admissionSa = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: ADMISSION_SERVICE_ACCOUNT, namespace: PEPR_NAMESPACE },
    automountServiceAccountToken: true,
  };
  return [
    ...(opts.serviceAccount === false ? [] : [admissionSa]),
    ...bound(ADMISSION_SERVICE_ACCOUNT, undefined, cluster, ADMISSION_SERVICE_ACCOUNT),
    ...bound(ADMISSION_SERVICE_ACCOUNT, PEPR_NAMESPACE, inPepr, ADMISSION_SERVICE_ACCOUNT),
    ...bound(ADMISSION_SERVICE_ACCOUNT, opts.kuikNamespace, inKuik, ADMISSION_SERVICE_ACCOUNT),
    ...bound(
      WATCHER_SERVICE_ACCOUNT,
      opts.kuikNamespace,
      WATCHER_KUIK_NAMESPACE_CALLS,
      WATCHER_SERVICE_ACCOUNT,
    ),
  ];
}
