/** What a caching or finalizing pass depends on, and what it returns. */
import type { Logger } from "pino";
import type { Keyring } from "../../registry-client/src/keyring";
import type { ImageReference } from "../../registry-client/src/types";
import type { EventSink } from "../kube/events";
import type { Clock, KubePort, MetricsSink, RegistryPort } from "../kube/ports";

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
