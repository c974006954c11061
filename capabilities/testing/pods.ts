/** Pod builders for the watcher's unit tests. */
import { LABEL_MANAGED, MANAGED_VALUE } from "../shared/labels";
import { containerAnnotationKey, type PodLike } from "../shared/pods";

/** Options of {@link managedPod}. */
export interface PodOptions {
  pullSecrets?: string[];
  serviceAccount?: string;
  terminating?: boolean;
}

/** A pod created through kuik's webhook, using `images` (as written) in containers `c0`, `c1`… */
export function managedPod(namespace: string, name: string, images: string[], o: PodOptions = {}): PodLike {
  const annotations: Record<string, string> = {};
  images.forEach((image, i) => (annotations[containerAnnotationKey(`c${i}`, "container")] = image));
  return {
    metadata: {
      name,
      namespace,
      labels: { [LABEL_MANAGED]: MANAGED_VALUE },
      annotations,
      ...(o.terminating ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: {
      containers: images.map((image, i) => ({ name: `c${i}`, image: `localhost:7439/${image}` })),
      imagePullSecrets: (o.pullSecrets ?? []).map(secret => ({ name: secret })),
      ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}),
    },
  };
}
