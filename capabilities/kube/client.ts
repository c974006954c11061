/**
 * {@link KubePort} over a {@link KubeTransport} (http.ts: one undici Agent per process), not KFC's `K8s`, which
 * opens a new TLS connection for every call (see http.ts). The requests are the ones KFC 3.11.6 sent, so
 * objects written before keep their field ownership: server-side apply as field manager `pepr` with
 * `fieldValidation=Strict`, JSON Patch, merge patch of the `status` subresource holding only `status`, deletes
 * that ignore 404. capabilities/rbac.test.ts runs every method against a recording transport and checks each
 * request is granted by capabilities/api-calls.ts.
 */
import type { PullSecret } from "../../registry-client/src/keyring";
import type { CachedImage, Repository } from "../crd";
import { KUIK_GROUP, KUIK_VERSION, LABEL_MANAGED } from "../shared/labels";
import type { PodLike, PullSecretRef, ServiceAccountLike } from "../shared/pods";
import { PATCH_TYPES, resourcePath, type KubeTransport, type ResourceRef } from "./http";
import {
  KubeApiError,
  type DockerConfigSecret,
  type JsonPatchOp,
  type KubeEvent,
  type KubePort,
  type ProxyPodLike,
} from "./ports";

/**
 * Field manager of kuik's server-side applies: KFC's, unchanged, so objects applied before keep one owner (a new
 * name would leave the old manager owning the same fields, and its removals would no longer prune them).
 */
export const APPLY_FIELD_MANAGER = "pepr";

/**
 * Field manager of the other writes (patches, creates): KFC sent none, so the API server named it after KFC's
 * User-Agent. Kept, so the managedFields of existing objects do not grow a second entry for the same writer.
 */
export const UPDATE_FIELD_MANAGER = "kubernetes-fluent-client";

/** Objects per page of a list: bounds the size of one response body. */
export const LIST_PAGE_SIZE = 500;

/** An object as kuik applies it: the fields it owns. */
type Applied = { metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & {
  [field: string]: unknown;
};

type Kind = Omit<ResourceRef, "namespace" | "name" | "subresource"> & { kind: string };

const POD: Kind = { group: "", version: "v1", plural: "pods", kind: "Pod" };
const SERVICE_ACCOUNT: Kind = { group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount" };
const SECRET: Kind = { group: "", version: "v1", plural: "secrets", kind: "Secret" };
const EVENT: Kind = { group: "", version: "v1", plural: "events", kind: "Event" };
const CACHED_IMAGE: Kind = {
  group: KUIK_GROUP,
  version: KUIK_VERSION,
  plural: "cachedimages",
  kind: "CachedImage",
};
const REPOSITORY: Kind = {
  group: KUIK_GROUP,
  version: KUIK_VERSION,
  plural: "repositories",
  kind: "Repository",
};

function path(kind: Kind, at: { namespace?: string; name?: string; subresource?: string } = {}): string {
  return resourcePath({ group: kind.group, version: kind.version, plural: kind.plural, ...at });
}

function apiVersion(kind: Kind): string {
  return kind.group === "" ? kind.version : `${kind.group}/${kind.version}`;
}

/** The real {@link KubePort}. */
export class KubeClient implements KubePort {
  readonly #pageSize: number;

  /** `pageSize`: objects per list page, default {@link LIST_PAGE_SIZE}. */
  constructor(
    private readonly api: KubeTransport,
    options: { pageSize?: number } = {},
  ) {
    this.#pageSize = options.pageSize ?? LIST_PAGE_SIZE;
  }

  /** Every object of a collection, page by page. */
  async #list<T>(kind: Kind, query: Record<string, string> = {}, namespace?: string): Promise<T[]> {
    const items: T[] = [];
    let token: string | undefined;
    do {
      const page: { items?: T[]; metadata?: { continue?: string } } = await this.api.request({
        method: "GET",
        path: path(kind, namespace === undefined ? {} : { namespace }),
        query: { ...query, limit: String(this.#pageSize), ...(token ? { continue: token } : {}) },
        read: true,
      });
      for (const item of page.items ?? []) items.push(item);
      token = page.metadata?.continue || undefined;
    } while (token !== undefined);
    return items;
  }

  /** One object, `undefined` on 404. */
  async #get<T>(kind: Kind, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.api.request<T>({
        method: "GET",
        path: path(kind, namespace === undefined ? { name } : { namespace, name }),
        read: true,
      });
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** Server-side apply of `object` (forced: kuik owns the fields it applies), creating it when missing. */
  async #apply(kind: Kind, object: Applied): Promise<void> {
    const { name, namespace } = object.metadata;
    await this.api.request({
      method: "PATCH",
      path: path(kind, namespace === undefined ? { name } : { namespace, name }),
      query: { fieldManager: APPLY_FIELD_MANAGER, fieldValidation: "Strict", force: "true" },
      contentType: PATCH_TYPES.apply,
      body: { apiVersion: apiVersion(kind), kind: kind.kind, ...object },
    });
  }

  /** Merge patch of the status subresource (`null` clears a field). */
  async #patchStatus(kind: Kind, name: string, status: Record<string, unknown>): Promise<void> {
    await this.api.request({
      method: "PATCH",
      path: path(kind, { name, subresource: "status" }),
      query: { fieldManager: UPDATE_FIELD_MANAGER },
      contentType: PATCH_TYPES.merge,
      body: { status },
    });
  }

  listManagedPods(): Promise<PodLike[]> {
    return this.#list(POD, { labelSelector: LABEL_MANAGED });
  }

  listPods(namespace: string, labelSelector: string): Promise<ProxyPodLike[]> {
    return this.#list(POD, { labelSelector }, namespace);
  }

  patchPod(namespace: string, name: string, ops: JsonPatchOp[]): Promise<void> {
    return this.#jsonPatch(POD, name, ops, namespace);
  }

  listServiceAccounts(): Promise<ServiceAccountLike[]> {
    return this.#list(SERVICE_ACCOUNT);
  }

  getServiceAccount(namespace: string, name: string): Promise<ServiceAccountLike | undefined> {
    return this.#get(SERVICE_ACCOUNT, name, namespace);
  }

  getSecret(ref: PullSecretRef): Promise<PullSecret | undefined> {
    return this.#get(SECRET, ref.name, ref.namespace);
  }

  applySecret(secret: DockerConfigSecret): Promise<void> {
    return this.#apply(SECRET, {
      metadata: { name: secret.name, namespace: secret.namespace },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": Buffer.from(secret.dockerConfigJson).toString("base64") },
    });
  }

  async createEvent(event: KubeEvent): Promise<void> {
    await this.api.request({
      method: "POST",
      path: path(EVENT, { namespace: event.metadata.namespace }),
      query: { fieldManager: UPDATE_FIELD_MANAGER },
      body: { apiVersion: apiVersion(EVENT), kind: EVENT.kind, ...event },
    });
  }

  listCachedImages(): Promise<CachedImage[]> {
    return this.#list(CACHED_IMAGE);
  }

  getCachedImage(name: string): Promise<CachedImage | undefined> {
    return this.#get(CACHED_IMAGE, name);
  }

  applyCachedImage(name: string, sourceImage: string, labels: Record<string, string>): Promise<void> {
    // Only these fields are applied (force: kuik owns them); spec.retain, spec.expiresAt and annotations are
    // never part of kuik's applied configuration, so users' values survive.
    return this.#apply(CACHED_IMAGE, { metadata: { name, labels }, spec: { sourceImage } });
  }

  patchCachedImage(name: string, ops: JsonPatchOp[]): Promise<void> {
    return this.#jsonPatch(CACHED_IMAGE, name, ops);
  }

  patchRepository(name: string, ops: JsonPatchOp[]): Promise<void> {
    return this.#jsonPatch(REPOSITORY, name, ops);
  }

  async #jsonPatch(kind: Kind, name: string, ops: JsonPatchOp[], namespace?: string): Promise<void> {
    if (ops.length === 0) return;
    await this.api.request({
      method: "PATCH",
      path: path(kind, namespace === undefined ? { name } : { namespace, name }),
      query: { fieldManager: UPDATE_FIELD_MANAGER },
      contentType: PATCH_TYPES.json,
      body: ops,
    });
  }

  patchCachedImageStatus(name: string, status: Record<string, unknown>): Promise<void> {
    return this.#patchStatus(CACHED_IMAGE, name, status);
  }

  async deleteCachedImage(name: string, resourceVersion?: string): Promise<void> {
    const preconditions =
      resourceVersion === undefined
        ? {}
        : { body: { apiVersion: "v1", kind: "DeleteOptions", preconditions: { resourceVersion } } };
    try {
      await this.api.request({ method: "DELETE", path: path(CACHED_IMAGE, { name }), ...preconditions });
    } catch (e) {
      // Already gone is what was asked (KFC's Delete resolved on 404 too).
      if (!(e instanceof KubeApiError && e.status === 404)) throw e;
    }
  }

  listRepositories(): Promise<Repository[]> {
    return this.#list(REPOSITORY);
  }

  getRepository(name: string): Promise<Repository | undefined> {
    return this.#get(REPOSITORY, name);
  }

  applyRepository(objectName: string, name: string, pullSecrets?: PullSecretRef[]): Promise<void> {
    const spec = pullSecrets === undefined ? { name } : { name, pullSecrets };
    return this.#apply(REPOSITORY, { metadata: { name: objectName }, spec });
  }

  async ensureRepository(objectName: string, name: string): Promise<void> {
    try {
      await this.api.request({
        method: "POST",
        path: path(REPOSITORY, {}),
        query: { fieldManager: APPLY_FIELD_MANAGER, fieldValidation: "Strict" },
        body: {
          apiVersion: apiVersion(REPOSITORY),
          kind: REPOSITORY.kind,
          metadata: { name: objectName },
          spec: { name },
        },
      });
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 409) return; // it exists: leave it as it is
      throw e;
    }
  }

  patchRepositoryStatus(name: string, status: Record<string, unknown>): Promise<void> {
    return this.#patchStatus(REPOSITORY, name, status);
  }
}
