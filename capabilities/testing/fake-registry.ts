/**
 * In-memory registries, events, metrics and time for unit tests (see fakes.ts for the API server).
 */
import { RegistryError } from "../../registry-client/src/errors";
import type { ImageReference } from "../../registry-client/src/types";
import type { EventSink, EventSpec, InvolvedObject } from "../kube/events";
import type { Clock, CopyOutcome, ManifestInfo, MetricsSink, RegistryPort, Scheduler } from "../kube/ports";

/** Clock and scheduler in one: timers fire when {@link FakeTime.advance} passes them. */
export class FakeTime implements Clock, Scheduler {
  #now: number;
  #timers: { at: number; seq: number; fn: () => void }[] = [];
  #seq = 0;

  constructor(start = Date.parse("2026-01-01T00:00:00Z")) {
    this.#now = start;
  }

  now(): Date {
    return new Date(this.#now);
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.#now + Math.max(ms, 0), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter(t => t !== timer);
    };
  }

  /** Pending timers. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, running due timers in order and letting their promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await settle();
      const next = this.#timers.filter(t => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (next === undefined) break;
      this.#timers = this.#timers.filter(t => t !== next);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = end;
    await settle();
  }
}

/** Lets pending promise chains (and I/O-free async work) run. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>(resolve => setImmediate(resolve));
}

/** Registries in memory: origin images by canonical reference, and the cache's manifests per repository. */
export class FakeRegistry implements RegistryPort {
  /** `registry/repository:tag` or `…@digest` → digest. */
  readonly upstream = new Map<string, string>();
  /** Cache repository name → (tag or digest → digest). */
  readonly cache = new Map<string, Map<string, string>>();
  readonly calls: string[] = [];
  /** Make a method fail with this error until removed. */
  readonly failures = new Map<string, Error>();

  #fail(method: string): void {
    const failure = this.failures.get(method);
    if (failure !== undefined) throw failure;
  }

  async headUpstream(ref: ImageReference): Promise<ManifestInfo> {
    this.calls.push(`headUpstream ${ref.canonical}`);
    this.#fail("headUpstream");
    return { digest: this.#upstreamDigest(ref), mediaType: "application/vnd.oci.image.manifest.v1+json" };
  }

  async headCache(ref: ImageReference): Promise<ManifestInfo | undefined> {
    this.calls.push(`headCache ${ref.canonical}`);
    this.#fail("headCache");
    const digest = this.cache.get(ref.name)?.get(ref.digest ?? ref.tag ?? "");
    return digest === undefined
      ? undefined
      : { digest, mediaType: "application/vnd.oci.image.manifest.v1+json" };
  }

  async copyToCache(source: ImageReference, destination: ImageReference): Promise<CopyOutcome> {
    this.calls.push(`copyToCache ${source.canonical}`);
    this.#fail("copyToCache");
    const digest = this.#upstreamDigest(source);
    const repo = this.cache.get(destination.name) ?? new Map<string, string>();
    this.cache.set(destination.name, repo);
    repo.set(digest, digest);
    if (destination.tag !== undefined) repo.set(destination.tag, digest);
    return { digest, bytesCopied: 1000, bytesTotal: 1000 };
  }

  async deleteFromCache(destination: ImageReference, digest: string): Promise<boolean> {
    this.calls.push(`deleteFromCache ${destination.name}@${digest}`);
    this.#fail("deleteFromCache");
    const repo = this.cache.get(destination.name);
    if (repo === undefined || ![...repo.values()].includes(digest)) return false;
    for (const [reference, d] of repo) if (d === digest) repo.delete(reference);
    return true;
  }

  #upstreamDigest(ref: ImageReference): string {
    const digest = this.upstream.get(ref.digest ? `${ref.name}@${ref.digest}` : `${ref.name}:${ref.tag}`);
    if (digest === undefined)
      throw new RegistryError("MANIFEST_UNKNOWN", `${ref.canonical}: manifest unknown`);
    return digest;
  }
}

/** Events kept in memory. */
export class RecordingEvents implements EventSink {
  readonly recorded: (EventSpec & { object: string })[] = [];

  async record(object: InvolvedObject, event: EventSpec): Promise<void> {
    this.recorded.push({ ...event, object: object.name });
  }

  reasons(): string[] {
    return this.recorded.map(e => e.reason);
  }
}

/** Metrics kept in memory. */
export class RecordingMetrics implements MetricsSink {
  readonly counts = { cachingOk: 0, cachingFailed: 0, put: 0, removed: 0, copies: 0 };

  cachingRequest(successful: boolean): void {
    if (successful) this.counts.cachingOk++;
    else this.counts.cachingFailed++;
  }

  putInCache(): void {
    this.counts.put++;
  }

  removedFromCache(): void {
    this.counts.removed++;
  }

  copy(): void {
    this.counts.copies++;
  }

  /** The last {@link proxyServing} call. */
  serving: { serving: boolean; reason: string } | undefined;

  proxyServing(serving: boolean, reason: string): void {
    this.serving = { serving, reason };
  }

  rescued = 0;

  podRescued(): void {
    this.rescued++;
  }
}
