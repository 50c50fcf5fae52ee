// What a Reflector tells the rest of the cache: each event applied to its store, the differences a
// relist found (sent on as events, with the gap of resourceVersions they were given), the object of
// the first BOOKMARK the apiserver sent (its JSON depends on the type), and the resource going
// stale or catching up. The watch cache and the indexes listen; the Reflector only reports.
import type { Store } from './store.js';
import type { RelistGap, StoreEvent } from './store-event.js';
import { relistDiff } from './relist-diff.js';

export class ReflectorListeners {
  readonly #events = new Set<(e: StoreEvent) => void>();
  readonly #gaps = new Set<(gap: RelistGap) => void>();
  readonly #bookmarks = new Set<(object: Buffer) => void>();
  readonly #stale = new Set<(stale: boolean) => void>();
  #bookmarkSampled = false;

  onEvent(listener: (e: StoreEvent) => void): () => void {
    this.#events.add(listener);
    return () => this.#events.delete(listener);
  }

  onRelistGap(listener: (gap: RelistGap) => void): void {
    this.#gaps.add(listener);
  }

  onBookmarkSample(listener: (object: Buffer) => void): void {
    this.#bookmarks.add(listener);
  }

  onStale(listener: (stale: boolean) => void): void {
    this.#stale.add(listener);
  }

  /** A bookmark's object has been handed on (later ones are not). */
  get bookmarkSampled(): boolean {
    return this.#bookmarkSampled;
  }

  event(e: StoreEvent): void {
    for (const l of this.#events) l(e);
  }

  /** After a relist, what changed since the old store, as events (relistDiff); its gap first. */
  relisted(before: Store, after: Store, from: bigint, to: bigint): void {
    if (this.#events.size === 0) return;
    const { events, gap } = relistDiff(before, after, from, to);
    if (gap) for (const l of this.#gaps) l(gap);
    for (const e of events) this.event(e);
  }

  /** The object of a bookmark the apiserver sent: handed on the first time only. */
  bookmark(object: Buffer): void {
    if (this.#bookmarkSampled) return;
    this.#bookmarkSampled = true;
    for (const l of this.#bookmarks) l(object);
  }

  stale(stale: boolean): void {
    for (const l of this.#stale) l(stale);
  }
}
