/**
 * Status patches during a copy: `Synchronizing` when it starts, then `Pulling` with `progress` at most once per
 * `progressIntervalMs`. Patches are chained (never concurrent, never after {@link ProgressReporter.finish}), and a
 * failed progress patch is only logged: the pass's final status patch is what matters.
 */
import type { CopyProgress } from "../../registry-client/src/copy";
import type { CachedImage } from "../crd";
import type { CacheDeps } from "./cache-deps";

/** See the file comment. */
export class ProgressReporter {
  readonly #name: string;
  readonly #generation: number | undefined;
  #chain: Promise<void> = Promise.resolve();
  #lastAt = Number.NEGATIVE_INFINITY;
  #finished = false;
  #written: Record<string, unknown> = {};

  constructor(
    ci: CachedImage,
    private readonly deps: Pick<CacheDeps, "kube" | "clock" | "log" | "settings">,
  ) {
    this.#name = ci.metadata?.name as string;
    this.#generation = ci.metadata?.generation as number | undefined;
  }

  /** Writes `Synchronizing` (the copy starts by resolving the image at its origin). */
  start(): Promise<void> {
    this.#lastAt = this.deps.clock.now().getTime();
    this.#send({ phase: "Synchronizing" });
    return this.#chain;
  }

  /** Called by the copy as bytes flow; cheap unless a patch is due. */
  update(progress: CopyProgress): void {
    const now = this.deps.clock.now().getTime();
    if (this.#finished || now - this.#lastAt < this.deps.settings.progressIntervalMs) return;
    this.#lastAt = now;
    this.#send({ phase: "Pulling", progress: { available: progress.bytesDone, total: progress.bytesTotal } });
  }

  /** Waits for pending progress patches; later updates are ignored. */
  finish(): Promise<void> {
    this.#finished = true;
    return this.#chain;
  }

  /** Every field a progress patch may have written: the final patch must be computed against them. */
  get written(): Record<string, unknown> {
    return this.#written;
  }

  #send(status: Record<string, unknown>): void {
    this.#written = { ...this.#written, ...status };
    const body =
      this.#generation === undefined ? status : { ...status, observedGeneration: this.#generation };
    this.#chain = this.#chain.then(() =>
      this.deps.kube.patchCachedImageStatus(this.#name, body).catch((err: unknown) => {
        this.deps.log.debug({ err, cachedImage: this.#name }, "progress patch failed");
      }),
    );
  }
}
