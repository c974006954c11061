/**
 * Kubernetes Events for CachedImages, with kuik v1's reasons. Callers emit on transitions only; the recorder also
 * drops an identical event (same object, reason and message) seen in the last {@link DEDUPE_WINDOW_MS}, so a retry
 * loop cannot flood the API server. Failures to write an event are logged, never thrown.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { CachedImage } from "../crd";
import { KUIK_GROUP, KUIK_VERSION } from "../shared/labels";
import type { Clock, KubeEvent, KubePort } from "./ports";

/** Event reasons (kube-image-keeper v1's). */
export type EventReason =
  | "Caching"
  | "Cached"
  | "CacheFailed"
  | "CleaningUp"
  | "CleanedUp"
  | "CleanupFailed"
  | "Expiring"
  | "Expired"
  | "ExpiringFailed"
  // kuik's own: the proxy gate (capabilities/proxy-gate)
  | "ProxyUnavailable"
  | "ProxyAvailable"
  | "ImageRescued";

/** The event of one transition, as the logic returns it. */
export interface EventSpec {
  type: "Normal" | "Warning";
  reason: EventReason;
  message: string;
}

/** The object an event is about: a CachedImage unless `kind` says otherwise. */
export interface InvolvedObject {
  /** Default `kuik.enix.io/v1alpha1`. */
  apiVersion?: string;
  /** Default `CachedImage`. */
  kind?: string;
  /** The object's namespace, where the event is written; cluster-scoped objects' events go to `default`. */
  namespace?: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
}

/** Writes events; the logic depends on this, not on the API. */
export interface EventSink {
  record(object: InvolvedObject, event: EventSpec): Promise<void>;
}

const DEDUPE_WINDOW_MS = 10 * 60 * 1000;
const MAX_REMEMBERED = 2000;
/** Events of cluster-scoped objects go to `default`, as client-go's recorder does. */
const EVENT_NAMESPACE = "default";
const COMPONENT = "kuik-controller";

/** {@link EventSink} over the Kubernetes API. */
export class EventRecorder implements EventSink {
  readonly #recent = new Map<string, number>();

  constructor(
    private readonly kube: Pick<KubePort, "createEvent">,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly instance: string = process.env.HOSTNAME ?? "kuik",
  ) {}

  async record(object: InvolvedObject, event: EventSpec): Promise<void> {
    const now = this.clock.now();
    const key = `${object.uid ?? `${object.kind ?? ""}/${object.namespace ?? ""}/${object.name}`}\u0000${event.reason}\u0000${event.message}`;
    const last = this.#recent.get(key);
    if (last !== undefined && now.getTime() - last < DEDUPE_WINDOW_MS) return;
    this.#remember(key, now.getTime());
    try {
      await this.kube.createEvent(this.#build(object, event, now));
    } catch (err) {
      this.log.warn({ err, object: object.name, reason: event.reason }, "could not write event");
    }
  }

  #remember(key: string, at: number): void {
    this.#recent.delete(key);
    this.#recent.set(key, at);
    for (const [oldest, time] of this.#recent) {
      if (this.#recent.size <= MAX_REMEMBERED && at - time < DEDUPE_WINDOW_MS) break;
      this.#recent.delete(oldest);
    }
  }

  #build(object: InvolvedObject, event: EventSpec, now: Date): KubeEvent {
    const stamp = now.toISOString();
    // client-go names events `<object>.<hex nanoseconds>`; a random suffix avoids collisions within a ms.
    const suffix = `${now.getTime().toString(16)}${randomBytes(4).toString("hex")}`;
    const involvedObject: KubeEvent["involvedObject"] = {
      apiVersion: object.apiVersion ?? `${KUIK_GROUP}/${KUIK_VERSION}`,
      kind: object.kind ?? "CachedImage",
      name: object.name,
    };
    if (object.namespace !== undefined) involvedObject.namespace = object.namespace;
    if (object.uid !== undefined) involvedObject.uid = object.uid;
    if (object.resourceVersion !== undefined) involvedObject.resourceVersion = object.resourceVersion;
    return {
      metadata: {
        name: `${object.name.slice(0, 220)}.${suffix}`,
        namespace: object.namespace ?? EVENT_NAMESPACE,
      },
      involvedObject,
      reason: event.reason,
      message: event.message.slice(0, 1024),
      type: event.type,
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: this.instance,
      firstTimestamp: stamp,
      lastTimestamp: stamp,
      count: 1,
    };
  }
}

/** The event target of a CachedImage. */
export function involved(ci: CachedImage): InvolvedObject {
  const out: InvolvedObject = { name: (ci.metadata?.name as string | undefined) ?? "" };
  if (typeof ci.metadata?.uid === "string") out.uid = ci.metadata.uid;
  if (typeof ci.metadata?.resourceVersion === "string") out.resourceVersion = ci.metadata.resourceVersion;
  return out;
}
