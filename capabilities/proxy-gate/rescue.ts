/**
 * The rescue: a Pod kuik rewrote that cannot pull through the proxy (`ErrImagePull` / `ImagePullBackOff` on a
 * `localhost:<port>/…` image) while the proxy on its node is not serving gets its original images back — a
 * container's `image` is one of the few mutable fields of a Pod — and an Event saying so. kuik v1 left such Pods
 * stuck until someone fixed the proxy.
 *
 * The watcher feeds every managed Pod's watch event to {@link Rescuer.onPod}, which keeps the Pods that are failing
 * a pull through the proxy; {@link Rescuer.sweep} (every few seconds) rescues those whose node has no serving proxy.
 * A Pod whose proxy is serving is left to the kubelet's retries: the failure is then the image's, not kuik's.
 *
 * The original is read back from the rewritten image itself (`fromProxyImage`), never from an annotation a user can
 * set, and the patch carries a `test` of the image it replaces, so a Pod changed meanwhile is left alone.
 */
import type { Logger } from "pino";
import type { EventSink, InvolvedObject } from "../kube/events";
import type { JsonPatchOp, KubePort } from "../kube/ports";
import { CONTAINER_LIST_FIELD, type ContainerLike, type PodLike } from "../shared/pods";
import { fromProxyImage } from "../shared/proxy-image";
import type { GateVerdict } from "./decision";

/** Waiting reasons of a container whose image the kubelet could not pull. */
const PULL_FAILURES: ReadonlySet<string> = new Set(["ErrImagePull", "ImagePullBackOff"]);

/** Pods remembered as failing a pull at most (the rest wait for their next watch event). */
const MAX_CANDIDATES = 10_000;

interface ContainerStatusLike {
  readonly name?: string;
  readonly state?: { readonly waiting?: { readonly reason?: string } };
}

/** The Pod fields the rescue reads, beyond {@link PodLike}'s. */
export interface RescuablePod extends PodLike {
  readonly metadata?: PodLike["metadata"] & { readonly uid?: string };
  readonly spec?: PodLike["spec"] & { readonly nodeName?: string };
  readonly status?: {
    readonly containerStatuses?: readonly ContainerStatusLike[];
    readonly initContainerStatuses?: readonly ContainerStatusLike[];
  };
}

/** One container given its original image back. */
export interface RescuedContainer {
  container: string;
  from: string;
  to: string;
}

/** What {@link planRescue} found to do for a Pod. */
export interface RescuePlan {
  namespace: string;
  name: string;
  uid?: string;
  node: string;
  ops: JsonPatchOp[];
  containers: RescuedContainer[];
}

/**
 * The patch that gives every container (and init container) of `pod` failing to pull a `localhost:<port>/…` image
 * its original image back, or `undefined` when there is none, or the Pod is not scheduled or being deleted.
 * Ephemeral containers are immutable once added: they are never in the plan.
 */
export function planRescue(pod: RescuablePod, port: number): RescuePlan | undefined {
  const namespace = pod.metadata?.namespace;
  const name = pod.metadata?.name;
  const node = pod.spec?.nodeName;
  if (!namespace || !name || !node || pod.metadata?.deletionTimestamp !== undefined) return undefined;
  const ops: JsonPatchOp[] = [];
  const containers: RescuedContainer[] = [];
  const lists = [
    ["container", pod.status?.containerStatuses],
    ["init", pod.status?.initContainerStatuses],
  ] as const;
  for (const [kind, statuses] of lists) {
    const field = CONTAINER_LIST_FIELD[kind];
    const specs: readonly ContainerLike[] = pod.spec?.[field] ?? [];
    for (const status of statuses ?? []) {
      if (!PULL_FAILURES.has(status.state?.waiting?.reason ?? "")) continue;
      const index = specs.findIndex(c => c.name === status.name);
      const spec = specs[index];
      const original = spec?.image === undefined ? undefined : fromProxyImage(spec.image, port);
      if (spec?.image === undefined || original === undefined) continue;
      const path = `/spec/${field}/${index}/image`;
      ops.push({ op: "test", path, value: spec.image }, { op: "replace", path, value: original });
      containers.push({ container: spec.name, from: spec.image, to: original });
    }
  }
  if (ops.length === 0) return undefined;
  const plan: RescuePlan = { namespace, name, node, ops, containers };
  if (pod.metadata?.uid !== undefined) plan.uid = pod.metadata.uid;
  return plan;
}

/** What the {@link Rescuer} uses. */
export interface RescuerDeps {
  kube: Pick<KubePort, "patchPod">;
  events: EventSink;
  /** The gate's verdict for a node (gate.ts). */
  gate: { verdict(node?: string): GateVerdict };
  /** The proxy port of rewritten images. */
  port: number;
  log: Logger;
  /** Counts rescued Pods (metrics). */
  onRescued?: () => void;
}

/** See the file comment. */
export class Rescuer {
  /** Pods failing a pull through the proxy, by `namespace/name`, with their latest state. */
  readonly #candidates = new Map<string, RescuablePod>();

  constructor(private readonly deps: RescuerDeps) {}

  /** A managed Pod's watch event. */
  onPod(pod: RescuablePod, deleted: boolean): void {
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    if (deleted || planRescue(pod, this.deps.port) === undefined) {
      this.#candidates.delete(key);
      return;
    }
    this.#candidates.delete(key); // re-inserted last: the oldest entries go first when full
    if (this.#candidates.size >= MAX_CANDIDATES) {
      const oldest = this.#candidates.keys().next().value;
      if (oldest !== undefined) this.#candidates.delete(oldest);
    }
    this.#candidates.set(key, pod);
  }

  /** Pods currently failing a pull through the proxy. */
  get candidates(): number {
    return this.#candidates.size;
  }

  /** Rescues every candidate whose node has no serving proxy; resolves when all patches are done. */
  async sweep(): Promise<void> {
    const due: RescuePlan[] = [];
    for (const [key, pod] of this.#candidates) {
      const plan = planRescue(pod, this.deps.port);
      if (plan === undefined) {
        this.#candidates.delete(key);
        continue;
      }
      const verdict = this.deps.gate.verdict(plan.node);
      if (verdict.rewrite) continue;
      this.#candidates.delete(key);
      due.push(plan);
    }
    for (const plan of due) await this.#rescue(plan);
  }

  async #rescue(plan: RescuePlan): Promise<void> {
    const { kube, events, log } = this.deps;
    const pod = `${plan.namespace}/${plan.name}`;
    const why = this.deps.gate.verdict(plan.node);
    const detail = why.rewrite ? "" : why.detail;
    try {
      await kube.patchPod(plan.namespace, plan.name, plan.ops);
    } catch (err) {
      // A failed `test` (the Pod changed) or a Pod gone: its next watch event decides again.
      log.info({ err, pod }, "rescue not applied");
      return;
    }
    this.deps.onRescued?.();
    const list = plan.containers.map(c => `${c.container}: ${c.to}`).join(", ");
    log.warn(
      { pod, node: plan.node, containers: plan.containers, detail },
      "rescued a Pod stuck on the proxy",
    );
    const object: InvolvedObject = {
      apiVersion: "v1",
      kind: "Pod",
      namespace: plan.namespace,
      name: plan.name,
    };
    if (plan.uid !== undefined) object.uid = plan.uid;
    await events.record(object, {
      type: "Warning",
      reason: "ImageRescued",
      message: `kuik's proxy is not serving on node ${plan.node} (${detail}): pulling the original images (${list})`,
    });
  }
}
