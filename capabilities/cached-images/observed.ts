/**
 * Objects as last observed, fed by watch events and replaced by resync lists, without the list-versus-watch race:
 * a list that started before an event but returns after it must not undo the event. Found running the watcher
 * against a real API server: a pod created while a resync's LIST was in flight vanished from the index when the
 * list returned, and its image was only tracked at the next resync.
 *
 * Every change carries the object's `resourceVersion`; while a resync is in flight the changes are remembered, and
 * when the list arrives the newer of the listed object and the remembered change wins (a deletion wins over a
 * listed object no newer than it). Stale events (older than what is held) are ignored.
 */

/** `metadata.resourceVersion` as a number (etcd revisions are numeric; anything else counts as 0). */
export function resourceVersionOf(obj: { readonly metadata?: object }): number {
  const rv = Number((obj.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion);
  return Number.isFinite(rv) ? rv : 0;
}

/** See the file comment. */
export class ObservedMap<T> {
  readonly #values = new Map<string, T>();
  readonly #versions = new Map<string, number>();
  #window: Map<string, { rv: number; deleted: boolean }> | undefined;

  /** The objects, by key. */
  get map(): ReadonlyMap<string, T> {
    return this.#values;
  }

  /** Records an added or modified object; ignored when older than the one held. */
  set(key: string, value: T, rv: number): void {
    const held = this.#versions.get(key);
    if (held !== undefined && rv !== 0 && rv < held) return;
    this.#values.set(key, value);
    this.#versions.set(key, rv);
    this.#window?.set(key, { rv, deleted: false });
  }

  /** Replaces the value held (an optimistic local update), keeping its version. */
  update(key: string, value: T): void {
    if (this.#values.has(key)) this.#values.set(key, value);
  }

  /** Records a deletion. */
  delete(key: string, rv: number): void {
    this.#values.delete(key);
    this.#versions.delete(key);
    this.#window?.set(key, { rv, deleted: true });
  }

  /** Call before starting the LIST of a resync. */
  beginResync(): void {
    this.#window = new Map();
  }

  /** Replaces the content with a list, keeping what changed since {@link beginResync} if it is newer. */
  finishResync(items: Iterable<{ key: string; value: T; rv: number }>): void {
    const changed = this.#window ?? new Map<string, { rv: number; deleted: boolean }>();
    const kept = new Map<string, { value: T; rv: number }>();
    for (const [key, change] of changed) {
      const value = this.#values.get(key);
      if (!change.deleted && value !== undefined) kept.set(key, { value, rv: change.rv });
    }
    this.#values.clear();
    this.#versions.clear();
    for (const { key, value, rv } of items) {
      const change = changed.get(key);
      if (change !== undefined && change.rv >= rv) continue; // the event is as new or newer
      this.#values.set(key, value);
      this.#versions.set(key, rv);
    }
    for (const [key, { value, rv }] of kept) {
      if (!this.#values.has(key)) {
        this.#values.set(key, value);
        this.#versions.set(key, rv);
      }
    }
    this.#window = undefined;
  }

  /** Call when the LIST failed. */
  abortResync(): void {
    this.#window = undefined;
  }
}
