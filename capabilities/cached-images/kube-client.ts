/**
 * {@link KubePort} over kubernetes-fluent-client's `K8s` (re-exported by Pepr). The `K8s` function is injected,
 * so capabilities/rbac.test.ts can run every method against a recording stand-in and check that each call is
 * granted by shared/api-calls.ts. KFC throws plain response objects (pepr-notes §10.2): they become
 * {@link KubeApiError}s, and 404s on reads become `undefined`.
 */
import { K8s, kind } from "pepr";
import { CachedImage, Repository } from "../crd";
import { LABEL_MANAGED } from "../shared/labels";
import type { PodLike } from "../shared/names";
import type { PullSecretRef, ServiceAccountLike } from "./desired";
import {
  KubeApiError,
  type DockerConfigSecret,
  type JsonPatchOp,
  type KubeEvent,
  type KubePort,
} from "./ports";
import type { PullSecret } from "../../registry-client/src/keyring";

/** The `K8s` function (or a stand-in with the same shape). */
export type K8sFunction = typeof K8s;

/** Converts what KFC throws into a {@link KubeApiError}. */
export function toKubeError(e: unknown): KubeApiError {
  if (e instanceof KubeApiError) return e;
  const response = e as { status?: unknown; statusText?: unknown; data?: { message?: unknown } } | undefined;
  if (typeof response?.status === "number") {
    const message =
      typeof response.data?.message === "string" ? response.data.message : String(response.statusText);
    return new KubeApiError(response.status, message);
  }
  return new KubeApiError(0, e instanceof Error ? e.message : String(e));
}

async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (e) {
    throw toKubeError(e);
  }
}

async function getOrUndefined<T>(request: () => Promise<T>): Promise<T | undefined> {
  try {
    return await request();
  } catch (e) {
    const error = toKubeError(e);
    if (error.status === 404) return undefined;
    throw error;
  }
}

/** The real {@link KubePort}. */
export class KubeClient implements KubePort {
  constructor(private readonly k8s: K8sFunction = K8s) {}

  async listManagedPods(): Promise<PodLike[]> {
    return (await call(() => this.k8s(kind.Pod).WithLabel(LABEL_MANAGED).Get())).items;
  }

  async listServiceAccounts(): Promise<ServiceAccountLike[]> {
    return (await call(() => this.k8s(kind.ServiceAccount).Get())).items;
  }

  getServiceAccount(namespace: string, name: string): Promise<ServiceAccountLike | undefined> {
    return getOrUndefined(() => this.k8s(kind.ServiceAccount).InNamespace(namespace).Get(name));
  }

  getSecret(ref: PullSecretRef): Promise<PullSecret | undefined> {
    return getOrUndefined(() => this.k8s(kind.Secret).InNamespace(ref.namespace).Get(ref.name));
  }

  async applySecret(secret: DockerConfigSecret): Promise<void> {
    await call(() =>
      this.k8s(kind.Secret).Apply(
        {
          metadata: { name: secret.name, namespace: secret.namespace },
          type: "kubernetes.io/dockerconfigjson",
          data: { ".dockerconfigjson": Buffer.from(secret.dockerConfigJson).toString("base64") },
        },
        { force: true },
      ),
    );
  }

  async createEvent(event: KubeEvent): Promise<void> {
    await call(() => this.k8s(kind.CoreEvent).Create(event as unknown as kind.CoreEvent));
  }

  async listCachedImages(): Promise<CachedImage[]> {
    return (await call(() => this.k8s(CachedImage).Get())).items;
  }

  getCachedImage(name: string): Promise<CachedImage | undefined> {
    return getOrUndefined(() => this.k8s(CachedImage).Get(name));
  }

  async applyCachedImage(name: string, sourceImage: string, labels: Record<string, string>): Promise<void> {
    // Only these fields are applied (force: kuik owns them); spec.retain, spec.expiresAt and annotations are
    // never part of kuik's applied configuration, so users' values survive.
    await call(() =>
      this.k8s(CachedImage).Apply({ metadata: { name, labels }, spec: { sourceImage } }, { force: true }),
    );
  }

  async patchCachedImage(name: string, ops: JsonPatchOp[]): Promise<void> {
    if (ops.length === 0) return;
    await call(() => this.k8s(CachedImage, { name }).Patch(ops));
  }

  async patchCachedImageStatus(name: string, status: Record<string, unknown>): Promise<void> {
    await call(() =>
      this.k8s(CachedImage).PatchStatus({ metadata: { name }, status } as unknown as CachedImage),
    );
  }

  async deleteCachedImage(name: string): Promise<void> {
    await call(() => this.k8s(CachedImage).Delete(name));
  }

  async listRepositories(): Promise<Repository[]> {
    return (await call(() => this.k8s(Repository).Get())).items;
  }

  getRepository(name: string): Promise<Repository | undefined> {
    return getOrUndefined(() => this.k8s(Repository).Get(name));
  }

  async applyRepository(objectName: string, name: string, pullSecrets?: PullSecretRef[]): Promise<void> {
    const spec = pullSecrets === undefined ? { name } : { name, pullSecrets };
    await call(() => this.k8s(Repository).Apply({ metadata: { name: objectName }, spec }, { force: true }));
  }

  async patchRepositoryStatus(name: string, status: Record<string, unknown>): Promise<void> {
    await call(() =>
      this.k8s(Repository).PatchStatus({ metadata: { name }, status } as unknown as Repository),
    );
  }
}
