/** The real {@link Scheduler}: Node timers, held by the instance so {@link TimerScheduler.stop} clears them all. */
import type { Scheduler } from "../kube/ports";

/** See the file comment. */
export class TimerScheduler implements Scheduler {
  readonly #timers = new Set<NodeJS.Timeout>();

  after(ms: number, fn: () => void): () => void {
    // setTimeout's limit is 2^31−1 ms (~24.8 days); later work is simply rescheduled by the next resync.
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        fn();
      },
      Math.min(Math.max(ms, 0), 2 ** 31 - 1),
    );
    timer.unref();
    this.#timers.add(timer);
    return () => {
      clearTimeout(timer);
      this.#timers.delete(timer);
    };
  }

  /** Cancels every pending timer. */
  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}
