/**
 * What the cluster's pods need, as pure functions: the CachedImages and Repositories to exist, and the expiry
 * bookkeeping of CachedImages. The watch glue feeds them the pods (and service accounts) it has cached and applies
 * the differences.
 */
import { repositoryOf } from "../shared/object-names";
import {
  livePodsInOrder,
  namespacedName,
  podImages,
  compareStrings,
  type DesiredOptions,
} from "../shared/pod-images";
import type { PodLike, PullSecretRef, ServiceAccountLike } from "../shared/pods";

/** A Repository that must exist, with the pull secrets kuik maintains (`spec.pullSecrets`). */
export interface DesiredRepository {
  /** Repository object name. */
  objectName: string;
  /** `spec.name`, e.g. `docker.io/library/nginx`. */
  name: string;
  /** Label value of its CachedImages. */
  label: string;
  /** Union of the pull secrets of every pod using it and of their service accounts, sorted, deduplicated. */
  pullSecrets: PullSecretRef[];
}

/**
 * The Repositories the given pods need. Pull secrets are merged across all pods and namespaces using a
 * repository (v1 kept only the last pod's, docs/v1-differences.md B4). The result only describes `spec.name` and
 * `spec.pullSecrets`: the glue server-side-applies those two fields under kuik's field manager, so
 * `pullSecretNames`, `pullSecretsNamespace`, `updateInterval`, `updateFilters` and pull-secret entries added by
 * users are never touched. A repository no pod uses is absent here, and the glue leaves it as it is.
 */
export function desiredRepositories(
  pods: Iterable<PodLike>,
  serviceAccounts: Iterable<ServiceAccountLike>,
  options: DesiredOptions,
): Map<string, DesiredRepository> {
  const accounts = new Map<string, ServiceAccountLike>();
  for (const sa of serviceAccounts) accounts.set(namespacedName(sa), sa);
  const secrets = new Map<string, { repo: DesiredRepository; refs: Map<string, PullSecretRef> }>();
  for (const pod of livePodsInOrder(pods)) {
    const podSecrets = pullSecretsOf(pod, accounts);
    for (const image of podImages(pod, options).images) {
      const identity = repositoryOf(image.ref);
      let entry = secrets.get(identity.objectName);
      if (entry === undefined) {
        entry = { repo: { ...identity, pullSecrets: [] }, refs: new Map() };
        secrets.set(identity.objectName, entry);
      }
      // Two names sanitised alike: the first (in pod order) owns the object, as for CachedImages.
      if (entry.repo.name !== identity.name) continue;
      for (const secret of podSecrets) entry.refs.set(`${secret.namespace}/${secret.name}`, secret);
    }
  }
  const out = new Map<string, DesiredRepository>();
  for (const [objectName, { repo, refs }] of secrets) {
    const sorted = [...refs.keys()].sort(compareStrings).map(key => refs.get(key) as PullSecretRef);
    out.set(objectName, { ...repo, pullSecrets: sorted });
  }
  return out;
}

/** The pod's `imagePullSecrets` and its service account's, all in the pod's namespace. */
function pullSecretsOf(pod: PodLike, accounts: ReadonlyMap<string, ServiceAccountLike>): PullSecretRef[] {
  const namespace = pod.metadata?.namespace ?? "";
  const sa = pod.spec?.serviceAccountName
    ? accounts.get(`${namespace}/${pod.spec.serviceAccountName}`)
    : undefined;
  const names = [...(pod.spec?.imagePullSecrets ?? []), ...(sa?.imagePullSecrets ?? [])].map(
    s => s.name ?? "",
  );
  return names.filter(name => name !== "").map(name => ({ namespace, name }));
}

/** The `status.usedBy` of a CachedImage used by `pods` (`namespace/name`). */
export function usedByStatus(pods: readonly string[]): { pods: { namespacedName: string }[]; count: number } {
  const sorted = [...new Set(pods)].sort(compareStrings);
  return { pods: sorted.map(namespacedName => ({ namespacedName })), count: sorted.length };
}
