/**
 * Objects as last observed, fed by watch events and replaced by resync lists, without the list-versus-watch race:
 * a list that started before an event but returns after it must not undo the event. Found running the watcher
 * against a real API server: a pod created while a resync's LIST was in flight vanished from the index when the
 * list returned, and its image was only tracked at the next resync.
 *
 * Every change carries the object's `resourceVersion`; while a resync is in flight the changes are remembered, and
 * when the list arrives the newer of the listed object and the remembered change wins (a deletion wins over a
 * listed object no newer than it). Stale events (older than what is held) are ignored — including after a deletion:
 * the deleted object's version is kept as a tombstone, so a late MODIFIED of it cannot bring it back. A tombstone
 * lives through one full resync period after the resync that followed its deletion, then goes (late events come
 * seconds late, not minutes; the map stays bounded by two periods of deletions).
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
  /** Versions of deleted objects (events at or below them are stale), with the resync count when buried. */
  readonly #tombstones = new Map<string, { rv: number; resyncs: number }>();
  #resyncs = 0;
  #window: Map<string, { rv: number; deleted: boolean }> | undefined;

  /** The objects, by key. */
  get map(): ReadonlyMap<string, T> {
    return this.#values;
  }

  /** Records an added or modified object; ignored when older than the one held. */
  set(key: string, value: T, rv: number): void {
    const held = this.#versions.get(key);
    if (held !== undefined && rv !== 0 && rv < held) return;
    const buried = this.#tombstones.get(key);
    if (buried !== undefined) {
      if (rv !== 0 && rv <= buried.rv) return;
      this.#tombstones.delete(key);
    }
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
    if (rv !== 0) this.#bury(key, rv);
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
    this.#resyncs++;
    for (const [key, { resyncs }] of this.#tombstones)
      if (resyncs < this.#resyncs - 1) this.#tombstones.delete(key);
    for (const { key, value, rv } of items) {
      const change = changed.get(key);
      if (change !== undefined && change.rv >= rv) continue; // the event is as new or newer
      const buried = this.#tombstones.get(key);
      if (buried !== undefined && rv !== 0 && rv <= buried.rv) continue; // a list older than the deletion
      this.#values.set(key, value);
      this.#versions.set(key, rv);
      this.#tombstones.delete(key);
    }
    for (const [key, { value, rv }] of kept) {
      if (!this.#values.has(key)) {
        this.#values.set(key, value);
        this.#versions.set(key, rv);
      }
    }
    this.#window = undefined;
  }

  #bury(key: string, rv: number): void {
    const buried = this.#tombstones.get(key);
    this.#tombstones.set(key, { rv: Math.max(rv, buried?.rv ?? 0), resyncs: this.#resyncs });
  }

  /** Call when the LIST failed. */
  abortResync(): void {
    this.#window = undefined;
  }
}
