/** What a caching or finalizing pass depends on, and small helpers shared by both. */
import type { Logger } from "pino";
import type { Keyring } from "../../registry-client/src/keyring";
import type { ImageReference } from "../../registry-client/src/types";
import type { CachedImage } from "../crd";
import type { EventSink, InvolvedObject } from "./events";
import type { MetricsSink } from "./metrics";
import type { Clock, KubePort, RegistryPort } from "./ports";

/** Settings of a pass. */
export interface CacheSettings {
  /** Cache registry `host:port`. */
  registryEndpoint: string;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Minimum time between two progress patches of a copy. */
  progressIntervalMs: number;
}

/** The dependencies of {@link reconcileCachedImage} and {@link finalizeCachedImage}. */
export interface CacheDeps {
  kube: KubePort;
  registry: RegistryPort;
  clock: Clock;
  events: EventSink;
  metrics: MetricsSink;
  log: Logger;
  settings: CacheSettings;
  /** The credentials of an image's Repository (its pull secrets, read fresh). */
  keyringFor(ref: ImageReference): Promise<Keyring>;
  /** Pods using the CachedImage `name` now, counted from a fresh pod list (never from a cache). */
  liveUsers(name: string): Promise<number>;
  /** Whether another live CachedImage's cached manifest is `digest` in the cache repository `cacheName`. */
  digestShared(name: string, cacheName: string, digest: string): boolean;
}

/** What the caller does next with the object. */
export interface PassResult {
  /** Run another pass after this many milliseconds. */
  requeueAfterMs?: number;
}

/** A readable message of any thrown value (RegistryError, KubeApiError, Error…). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** The event target of a CachedImage. */
export function involved(ci: CachedImage): InvolvedObject {
  const out: InvolvedObject = { name: (ci.metadata?.name as string | undefined) ?? "" };
  if (typeof ci.metadata?.uid === "string") out.uid = ci.metadata.uid;
  if (typeof ci.metadata?.resourceVersion === "string") out.resourceVersion = ci.metadata.resourceVersion;
  return out;
}
