// capabilities/testing/: in-memory fakes of the ports, imported by `*.test.ts` files only.
/**
 * In-memory stand-ins of the ports for unit tests (no Pepr mocking): an API server that applies JSON Patch,
 * merge patch and finalizer semantics, registries, and a clock whose timers run when the test advances time.
 */
import { pino, type Logger } from "pino";
import type { PullSecret } from "../../registry-client/src/keyring";
import type { CachedImage, Repository } from "../crd";
import {
  KubeApiError,
  type DockerConfigSecret,
  type JsonPatchOp,
  type KubeEvent,
  type KubePort,
  type ProxyPodLike,
} from "../kube/ports";
import type { PodLike, PullSecretRef, ServiceAccountLike } from "../shared/pods";
import { applyJsonPatch, mergePatch } from "./fake-patch";

/** Kinds the fake API server delivers watch events for. */
export type WatchedKind = "Pod" | "CachedImage" | "Repository";
/** A watch event listener of {@link FakeKube.watch}. */
export type WatchListener = (
  kind: WatchedKind,
  object: unknown,
  phase: "ADDED" | "MODIFIED" | "DELETED",
) => void;

/** A silent logger. */
export const silentLog: Logger = pino({ level: "silent" });

const clone = <T>(value: T): T => structuredClone(value);

/** An in-memory Kubernetes API with the semantics kuik relies on. */
export class FakeKube implements KubePort {
  readonly pods = new Map<string, PodLike>();
  readonly accounts = new Map<string, ServiceAccountLike>();
  readonly secrets = new Map<string, PullSecret & { type?: string; data?: Record<string, string> }>();
  readonly cachedImages = new Map<string, CachedImage>();
  readonly repositories = new Map<string, Repository>();
  readonly events: KubeEvent[] = [];
  /** Pods of {@link listPods} (the proxy's), by namespace; matched on every label of the selector. */
  readonly namespacedPods = new Map<
    string,
    (ProxyPodLike & { metadata?: { labels?: Record<string, string> } })[]
  >();
  readonly appliedSecrets: DockerConfigSecret[] = [];
  /** Every call, as `method name`. */
  readonly calls: string[] = [];
  /** Make the next calls of a method fail. */
  readonly failures = new Map<string, KubeApiError>();
  #rv = 1;
  #listeners: WatchListener[] = [];

  /** Delivers every change like a watch would (asynchronously, in order). */
  watch(listener: WatchListener): void {
    this.#listeners.push(listener);
  }

  #emit(kind: WatchedKind, object: unknown, phase: "ADDED" | "MODIFIED" | "DELETED"): void {
    const copy = clone(object);
    for (const listener of this.#listeners) queueMicrotask(() => listener(kind, copy, phase));
  }

  #call(method: string, name = ""): void {
    this.calls.push(`${method} ${name}`.trim());
    const failure = this.failures.get(method);
    if (failure !== undefined) throw failure;
  }

  addPod(pod: PodLike): void {
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    const phase = this.pods.has(key) ? "MODIFIED" : "ADDED";
    const stored = clone(pod);
    (stored.metadata as Record<string, unknown>).resourceVersion = String(this.#rv++);
    this.pods.set(key, stored);
    this.#emit("Pod", stored, phase);
  }

  /** Deletes a pod; `silently`: without a watch event (a missed event). */
  deletePod(namespace: string, name: string, silently = false): void {
    const pod = this.pods.get(`${namespace}/${name}`);
    this.pods.delete(`${namespace}/${name}`);
    if (pod === undefined || silently) return;
    const gone = clone(pod);
    (gone.metadata as Record<string, unknown>).resourceVersion = String(this.#rv++);
    this.#emit("Pod", gone, "DELETED");
  }

  async listManagedPods(): Promise<PodLike[]> {
    this.#call("listManagedPods");
    return [...this.pods.values()].map(clone);
  }

  async listPods(namespace: string, labelSelector: string): Promise<ProxyPodLike[]> {
    this.#call("listPods", `${namespace}?${labelSelector}`);
    const wanted = labelSelector.split(",").map(pair => pair.split("="));
    const pods = this.namespacedPods.get(namespace) ?? [];
    return pods.filter(p => wanted.every(([k, v]) => p.metadata?.labels?.[k ?? ""] === v)).map(clone);
  }

  async patchPod(namespace: string, name: string, ops: JsonPatchOp[]): Promise<void> {
    this.#call("patchPod", `${namespace}/${name}`);
    const existing = this.pods.get(`${namespace}/${name}`);
    if (existing === undefined) throw new KubeApiError(404, "not found");
    this.addPod(applyJsonPatch(existing, ops) as PodLike);
  }

  async listServiceAccounts(): Promise<ServiceAccountLike[]> {
    this.#call("listServiceAccounts");
    return [...this.accounts.values()].map(clone);
  }

  async getServiceAccount(namespace: string, name: string): Promise<ServiceAccountLike | undefined> {
    this.#call("getServiceAccount", `${namespace}/${name}`);
    const sa = this.accounts.get(`${namespace}/${name}`);
    return sa && clone(sa);
  }

  async getSecret(ref: PullSecretRef): Promise<PullSecret | undefined> {
    this.#call("getSecret", `${ref.namespace}/${ref.name}`);
    const secret = this.secrets.get(`${ref.namespace}/${ref.name}`);
    return secret && clone(secret);
  }

  async applySecret(secret: DockerConfigSecret): Promise<void> {
    this.#call("applySecret", secret.name);
    this.appliedSecrets.push(clone(secret));
  }

  async createEvent(event: KubeEvent): Promise<void> {
    this.#call("createEvent", event.reason);
    this.events.push(clone(event));
  }

  async listCachedImages(): Promise<CachedImage[]> {
    this.#call("listCachedImages");
    return [...this.cachedImages.values()].map(clone);
  }

  async getCachedImage(name: string): Promise<CachedImage | undefined> {
    this.#call("getCachedImage", name);
    const ci = this.cachedImages.get(name);
    return ci && clone(ci);
  }

  async applyCachedImage(name: string, sourceImage: string, labels: Record<string, string>): Promise<void> {
    this.#call("applyCachedImage", name);
    const existing = this.cachedImages.get(name);
    const ci = (
      existing ? clone(existing) : { metadata: { name, generation: 0, uid: `uid-${name}` } }
    ) as CachedImage;
    const meta = ci.metadata as Record<string, unknown>;
    meta.labels = { ...(meta.labels as object | undefined), ...labels };
    if (ci.spec?.sourceImage !== sourceImage) {
      ci.spec = { ...ci.spec, sourceImage };
      meta.generation = (meta.generation as number) + 1;
    }
    this.#store(ci);
  }

  async patchCachedImage(name: string, ops: JsonPatchOp[]): Promise<void> {
    this.#call("patchCachedImage", name);
    const existing = this.cachedImages.get(name);
    if (existing === undefined) throw new KubeApiError(404, "not found");
    const next = applyJsonPatch(existing, ops) as CachedImage;
    if (JSON.stringify(next.spec) !== JSON.stringify(existing.spec)) {
      (next.metadata as Record<string, number>).generation = (existing.metadata?.generation as number) + 1;
    }
    this.#store(next);
  }

  async patchCachedImageStatus(name: string, status: Record<string, unknown>): Promise<void> {
    this.#call("patchCachedImageStatus", name);
    const existing = this.cachedImages.get(name);
    if (existing === undefined) throw new KubeApiError(404, "not found");
    this.#store({ ...clone(existing), status: mergePatch(existing.status ?? {}, status) } as CachedImage);
  }

  async deleteCachedImage(name: string, resourceVersion?: string): Promise<void> {
    this.#call("deleteCachedImage", name);
    const ci = this.cachedImages.get(name);
    if (ci === undefined) return;
    if (resourceVersion !== undefined && ci.metadata?.resourceVersion !== resourceVersion)
      throw new KubeApiError(409, `Precondition failed: ResourceVersion in precondition: ${resourceVersion}`);
    if (((ci.metadata?.finalizers as string[] | undefined) ?? []).length === 0) {
      this.cachedImages.delete(name);
      this.#emit("CachedImage", ci, "DELETED");
      return;
    }
    const next = clone(ci);
    (next.metadata as Record<string, unknown>).deletionTimestamp = new Date(0).toISOString();
    this.#store(next);
  }

  async listRepositories(): Promise<Repository[]> {
    this.#call("listRepositories");
    return [...this.repositories.values()].map(clone);
  }

  async getRepository(name: string): Promise<Repository | undefined> {
    this.#call("getRepository", name);
    const repo = this.repositories.get(name);
    return repo && clone(repo);
  }

  /**
   * Server-side apply as the field manager "kuik": owns `spec.name` and the `pullSecrets` entries it applied
   * (remembered in an annotation-free side table); entries added by users and every other field are kept.
   */
  async applyRepository(objectName: string, name: string, pullSecrets?: PullSecretRef[]): Promise<void> {
    this.#call("applyRepository", objectName);
    const repo = clone(
      this.repositories.get(objectName) ?? ({ metadata: { name: objectName } } as Repository),
    );
    const owned = this.ownedPullSecrets.get(objectName) ?? new Set<string>();
    const key = (s: PullSecretRef): string => `${s.namespace}/${s.name}`;
    const kept = (repo.spec?.pullSecrets ?? []).filter(s => !owned.has(key(s)));
    const applied = pullSecrets ?? [];
    const merged = [...kept, ...applied.filter(s => !kept.some(k => key(k) === key(s)))];
    repo.spec = { ...repo.spec, name, ...(merged.length > 0 ? { pullSecrets: merged } : {}) };
    if (merged.length === 0) delete repo.spec.pullSecrets;
    this.ownedPullSecrets.set(objectName, new Set(applied.map(key)));
    this.#storeRepo(repo);
  }

  /** Create with `spec.name` only; an existing Repository is left as it is (the API's 409, swallowed). */
  async ensureRepository(objectName: string, name: string): Promise<void> {
    this.#call("ensureRepository", objectName);
    if (this.repositories.has(objectName)) return;
    this.#storeRepo({ metadata: { name: objectName }, spec: { name } } as Repository);
  }

  /** `pullSecrets` entries owned by kuik's field manager, by Repository. */
  readonly ownedPullSecrets = new Map<string, Set<string>>();

  async patchRepositoryStatus(name: string, status: Record<string, unknown>): Promise<void> {
    this.#call("patchRepositoryStatus", name);
    const repo = this.repositories.get(name);
    if (repo === undefined) throw new KubeApiError(404, "not found");
    this.#storeRepo({ ...clone(repo), status: mergePatch(repo.status ?? {}, status) } as Repository);
  }

  #store(ci: CachedImage): void {
    const meta = ci.metadata as Record<string, unknown>;
    meta.resourceVersion = String(this.#rv++);
    const name = meta.name as string;
    if (meta.deletionTimestamp && ((meta.finalizers as string[] | undefined) ?? []).length === 0) {
      this.cachedImages.delete(name);
      this.#emit("CachedImage", ci, "DELETED");
      return;
    }
    const phase = this.cachedImages.has(name) ? "MODIFIED" : "ADDED";
    this.cachedImages.set(name, ci);
    this.#emit("CachedImage", ci, phase);
  }

  async patchRepository(name: string, ops: JsonPatchOp[]): Promise<void> {
    this.#call("patchRepository", name);
    const existing = this.repositories.get(name);
    if (existing === undefined) throw new KubeApiError(404, "not found");
    this.#storeRepo(applyJsonPatch(existing, ops) as Repository);
  }

  /** Test helper (not a port method): a `kubectl delete`, which only marks it while finalizers remain. */
  deleteRepository(name: string): void {
    const repo = this.repositories.get(name);
    if (repo === undefined) return;
    const next = clone(repo);
    (next.metadata as Record<string, unknown>).deletionTimestamp = new Date(0).toISOString();
    this.#storeRepo(next);
  }

  #storeRepo(repo: Repository): void {
    const meta = repo.metadata as Record<string, unknown>;
    if (meta.deletionTimestamp && ((meta.finalizers as string[] | undefined) ?? []).length === 0) {
      this.repositories.delete(meta.name as string);
      this.#emit("Repository", repo, "DELETED");
      return;
    }
    (repo.metadata as Record<string, unknown>).resourceVersion = String(this.#rv++);
    const phase = this.repositories.has(repo.metadata?.name as string) ? "MODIFIED" : "ADDED";
    this.repositories.set(repo.metadata?.name as string, repo);
    this.#emit("Repository", repo, phase);
  }
}
