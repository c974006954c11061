/**
 * The Kubernetes object shapes kuik reads (pods, containers, service accounts, pull-secret references), the walk
 * over a pod's containers, and the annotation key recording a container's original image.
 */
import { createHash } from "node:crypto";
import {
  ANNOTATION_PREFIX_ORIGINAL_EPHEMERAL_IMAGE,
  ANNOTATION_PREFIX_ORIGINAL_IMAGE,
  ANNOTATION_PREFIX_ORIGINAL_INIT_IMAGE,
} from "./labels";
import { MAX_LABEL_LENGTH } from "./object-names";

/** The three lists of containers of a pod. */
export type ContainerKind = "container" | "init" | "ephemeral";

/** The pod-spec field holding each {@link ContainerKind}. */
export const CONTAINER_LIST_FIELD = {
  container: "containers",
  init: "initContainers",
  ephemeral: "ephemeralContainers",
} as const satisfies Record<ContainerKind, string>;

/** The container fields kuik reads (a `V1Container` or `V1EphemeralContainer` fits). */
export interface ContainerLike {
  readonly name: string;
  readonly image?: string;
  readonly imagePullPolicy?: string;
}

/** The pod fields kuik reads (a `kind.Pod` / `V1Pod` fits); admission and watch payloads both qualify. */
export interface PodLike {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly deletionTimestamp?: Date | string;
  };
  readonly spec?: {
    readonly containers?: readonly ContainerLike[];
    readonly initContainers?: readonly ContainerLike[];
    readonly ephemeralContainers?: readonly ContainerLike[];
    readonly imagePullSecrets?: readonly { readonly name?: string }[];
    readonly serviceAccountName?: string;
  };
}

/** One container of a pod with its kind and position in its list. */
export interface PodContainer {
  kind: ContainerKind;
  /** Index in the pod-spec list of its kind ({@link CONTAINER_LIST_FIELD}). */
  index: number;
  container: ContainerLike;
}

/** Every container of a pod: containers, then init containers, then ephemeral containers (v1's order). */
export function podContainers(pod: PodLike): PodContainer[] {
  const out: PodContainer[] = [];
  for (const kind of ["container", "init", "ephemeral"] as const) {
    const list = pod.spec?.[CONTAINER_LIST_FIELD[kind]] ?? [];
    list.forEach((container, index) => out.push({ kind, index, container }));
  }
  return out;
}

/** The annotation-key prefix of each container kind. */
const ANNOTATION_PREFIX = {
  container: ANNOTATION_PREFIX_ORIGINAL_IMAGE,
  init: ANNOTATION_PREFIX_ORIGINAL_INIT_IMAGE,
  ephemeral: ANNOTATION_PREFIX_ORIGINAL_EPHEMERAL_IMAGE,
} as const;

/**
 * Key of the pod annotation recording a container's original image (v1's `ContainerAnnotationKey`):
 * `original-image-<name>`, `original-init-image-<name>` or `original-ephem-image-<name>`; when that would exceed
 * 63 characters, `<name>` is replaced by the hex SHA-1 of the container name.
 */
export function containerAnnotationKey(containerName: string, kind: ContainerKind): string {
  const prefix = ANNOTATION_PREFIX[kind];
  if (prefix.length + containerName.length <= MAX_LABEL_LENGTH) return prefix + containerName;
  return prefix + createHash("sha1").update(containerName).digest("hex");
}

/** A pull secret reference, as in Repository `spec.pullSecrets`. */
export interface PullSecretRef {
  namespace: string;
  name: string;
}

/** The service-account fields kuik reads (a `kind.ServiceAccount` fits). */
export interface ServiceAccountLike {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly imagePullSecrets?: readonly { readonly name?: string }[];
}
