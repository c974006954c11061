// capabilities/kube/: the watcher's Kubernetes client and the ports every concern talks through.
/**
 * The ports the watcher logic talks through: Kubernetes, the registries, time, metrics. watcher/runtime.ts wires
 * the real ones (client.ts over one http.ts transport, registry-client, timers); tests pass the in-memory fakes of
 * capabilities/testing/. Nothing here imports Pepr.
 */
import type { CopyProgress } from "../../registry-client/src/copy";
import type { Keyring, PullSecret } from "../../registry-client/src/keyring";
import type { ImageReference } from "../../registry-client/src/types";
import type { CachedImage, Repository } from "../crd";
import type { PodLike, PullSecretRef, ServiceAccountLike } from "../shared/pods";

/** One RFC 6902 JSON Patch operation. */
export type JsonPatchOp =
  | { op: "add"; path: string; value: unknown }
  | { op: "replace"; path: string; value: unknown }
  | { op: "test"; path: string; value: unknown }
  | { op: "remove"; path: string };

/** A core/v1 Event as kuik writes it. */
export interface KubeEvent {
  metadata: { name: string; namespace: string };
  involvedObject: {
    apiVersion: string;
    kind: string;
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
  };
  reason: string;
  message: string;
  type: "Normal" | "Warning";
  source: { component: string };
  reportingComponent: string;
  reportingInstance: string;
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
}

/** The fields of a proxy Pod the gate reads: where it runs and whether it is Ready. */
export interface ProxyPodLike {
  metadata?: { name?: string; deletionTimestamp?: string | Date };
  spec?: { nodeName?: string };
  status?: { conditions?: readonly { type?: string; status?: string }[] };
}

/** A Secret of type `kubernetes.io/dockerconfigjson`, as kuik writes it. */
export interface DockerConfigSecret {
  name: string;
  namespace: string;
  /** The `.dockerconfigjson` document. */
  dockerConfigJson: string;
}

/**
 * Kubernetes, as the watcher uses it. Getters resolve `undefined` on 404; every other failure rejects with a
 * {@link KubeApiError}. Each method maps to one entry of capabilities/api-calls.ts.
 */
export interface KubePort {
  listManagedPods(): Promise<PodLike[]>;
  /** Pods of one namespace matching a label selector (the proxy DaemonSet's Pods, for the gate). */
  listPods(namespace: string, labelSelector: string): Promise<ProxyPodLike[]>;
  /** JSON Patch of a Pod (the rescue gives a container its original image back). */
  patchPod(namespace: string, name: string, ops: JsonPatchOp[]): Promise<void>;

  listServiceAccounts(): Promise<ServiceAccountLike[]>;
  getServiceAccount(namespace: string, name: string): Promise<ServiceAccountLike | undefined>;
  getSecret(ref: PullSecretRef): Promise<PullSecret | undefined>;
  applySecret(secret: DockerConfigSecret): Promise<void>;
  createEvent(event: KubeEvent): Promise<void>;

  listCachedImages(): Promise<CachedImage[]>;
  getCachedImage(name: string): Promise<CachedImage | undefined>;
  /** Server-side apply of the fields kuik owns at creation: `spec.sourceImage` and the repository label. */
  applyCachedImage(name: string, sourceImage: string, labels: Record<string, string>): Promise<void>;
  /** JSON Patch of the object (finalizers, `spec.expiresAt`, annotations). */
  patchCachedImage(name: string, ops: JsonPatchOp[]): Promise<void>;
  /** Merge patch of `status` (`null` clears a field). */
  patchCachedImageStatus(name: string, status: Record<string, unknown>): Promise<void>;
  /**
   * Deletes a CachedImage (already gone: resolves). With `resourceVersion`, only that version of it: a newer one
   * (e.g. `retain` set since the caller decided) fails with a 409 {@link KubeApiError} and stays.
   */
  deleteCachedImage(name: string, resourceVersion?: string): Promise<void>;

  listRepositories(): Promise<Repository[]>;
  getRepository(name: string): Promise<Repository | undefined>;
  /** Server-side apply of `spec.name` and the `spec.pullSecrets` entries kuik maintains. */
  applyRepository(objectName: string, name: string, pullSecrets?: PullSecretRef[]): Promise<void>;
  /**
   * Creates the Repository with `spec.name` only, leaving an existing one untouched (a create, not an apply: an
   * apply without `pullSecrets` would drop the entries kuik applied earlier, if the watch has not shown them yet).
   */
  ensureRepository(objectName: string, name: string): Promise<void>;
  patchRepositoryStatus(name: string, status: Record<string, unknown>): Promise<void>;
  /** JSON Patch of a Repository (kuik only ever removes kube-image-keeper v1's finalizer with it). */
  patchRepository(name: string, ops: JsonPatchOp[]): Promise<void>;
}

/**
 * A failed Kubernetes API call: the HTTP status (0 when no response was received) and the API server's Status
 * message (http.ts).
 */
export class KubeApiError extends Error {
  readonly code = "KUBE_API_ERROR";
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = "KubeApiError";
    this.status = status;
  }
}

/** Whether `e` is an optimistic-concurrency failure: 409, or 422 from a failed JSON Patch `test`. */
export function isConflict(e: unknown): boolean {
  return e instanceof KubeApiError && (e.status === 409 || e.status === 422);
}

/** A manifest's identity in a registry. */
export interface ManifestInfo {
  digest: string;
  mediaType: string;
}

/** What a copy into the cache did. */
export interface CopyOutcome {
  digest: string;
  /** Bytes of blobs actually transferred. */
  bytesCopied: number;
  /** Bytes of blobs of the image (copied or already present). */
  bytesTotal: number;
}

/** The registries: the origins (with a Repository's credentials) and kuik's cache registry. */
export interface RegistryPort {
  /** HEAD the image at its origin. Rejects with a `RegistryError`. */
  headUpstream(ref: ImageReference, keyring: Keyring): Promise<ManifestInfo>;
  /** HEAD the image in the cache; `undefined` when it is not there. */
  headCache(ref: ImageReference): Promise<ManifestInfo | undefined>;
  /** Copy `source` (origin) to `destination` (cache), byte-exact. */
  copyToCache(
    source: ImageReference,
    destination: ImageReference,
    options: { keyring: Keyring; onProgress?: (p: CopyProgress) => void; signal?: AbortSignal },
  ): Promise<CopyOutcome>;
  /** DELETE a manifest of the cache by digest; resolves false when it was already gone. */
  deleteFromCache(destination: ImageReference, digest: string): Promise<boolean>;
}

/** The time. */
export interface Clock {
  now(): Date;
}

/** Timers, held by an object so that nothing lives in module globals and tests can drive time. */
export interface Scheduler {
  /** Runs `fn` once after `ms`; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

/** The watcher's metrics, as the logic records them; tests pass a recording fake. */
export interface MetricsSink {
  /** One copy attempt (v1's `image_caching_request`). */
  cachingRequest(successful: boolean, upstreamRegistry: string): void;
  putInCache(): void;
  removedFromCache(): void;
  /** Duration and transferred bytes of one copy. */
  copy(durationSeconds: number, bytes: number, successful: boolean): void;
  /** The proxy gate's verdict for Pods not scheduled yet changed (capabilities/proxy-gate). */
  proxyServing(serving: boolean, reason: string): void;
  /** A Pod stuck on a proxy that was not serving got its original images back. */
  podRescued(): void;
}
