/**
 * A keyed work queue in the manner of client-go's: a key is queued at most once, a key being processed that is
 * added again is processed once more afterwards (never twice at the same time), at most `concurrency` keys run at
 * once, and `addAfter` requeues later through the injected {@link Scheduler}.
 *
 * Pepr's Reconcile gives one FIFO per object with no cap, no coalescing and no retry; its
 * callback only feeds this queue, and the worker always reads the object fresh.
 */
import type { Logger } from "pino";
import type { Scheduler } from "../kube/ports";

/** Options of {@link WorkQueue}. */
export interface WorkQueueOptions {
  concurrency: number;
  scheduler: Scheduler;
  log: Logger;
  /** Processes one key; must not throw (errors are logged and dropped). */
  process: (key: string) => Promise<void>;
}

/** See the file comment. */
export class WorkQueue {
  readonly #options: WorkQueueOptions;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #running = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; cancel: () => void }>();
  readonly #idleWaiters: (() => void)[] = [];
  #stopped = false;

  constructor(options: WorkQueueOptions) {
    this.#options = options;
  }

  /** Number of keys queued or running. */
  get size(): number {
    return this.#queued.size + this.#running.size;
  }

  /** Queues `key` now (coalesced with a pending or running occurrence). */
  add(key: string): void {
    if (this.#stopped) return;
    if (this.#running.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#pump();
  }

  /** Queues `key` after `ms` (`now` is the caller's clock, in ms); an earlier pending requeue wins. */
  addAfter(key: string, ms: number, now: number): void {
    if (this.#stopped) return;
    if (ms <= 0) return this.add(key);
    const at = now + ms;
    const pending = this.#timers.get(key);
    if (pending !== undefined && pending.at <= at) return;
    pending?.cancel();
    const cancel = this.#options.scheduler.after(ms, () => {
      this.#timers.delete(key);
      this.add(key);
    });
    this.#timers.set(key, { at, cancel });
  }

  /** Drops a delayed requeue of `key` (the object is gone). */
  forget(key: string): void {
    this.#timers.get(key)?.cancel();
    this.#timers.delete(key);
  }

  /** Resolves when nothing is queued or running (delayed requeues do not count). */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise(resolve => this.#idleWaiters.push(resolve));
  }

  /** Stops taking work and cancels every delayed requeue; running work finishes. */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) timer.cancel();
    this.#timers.clear();
    this.#queue.length = 0;
    this.#queued.clear();
  }

  #pump(): void {
    while (this.#running.size < this.#options.concurrency && this.#queue.length > 0) {
      const key = this.#queue.shift() as string;
      this.#queued.delete(key);
      this.#running.add(key);
      void this.#run(key);
    }
    if (this.size === 0) this.#idleWaiters.splice(0).forEach(resolve => resolve());
  }

  async #run(key: string): Promise<void> {
    try {
      await this.#options.process(key);
    } catch (err) {
      this.#options.log.error({ err, key }, "work item failed");
    } finally {
      this.#running.delete(key);
      if (this.#dirty.delete(key)) this.add(key);
      this.#pump();
    }
  }
}
