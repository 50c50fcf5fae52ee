// What a Reflector tells the rest of the cache about its store: each change it applied, and the
// resourceVersions a relist made up for deletions it could not date.
import type { StoredObject } from './stored-object.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** A change applied to the store (for watchers served from the cache). */
export interface StoreEvent {
  readonly type: WatchEventType;
  readonly object: StoredObject;
  readonly previous: StoredObject | undefined;
  readonly resourceVersion: bigint;
  /** Part of a relist's diff: a burst of events sent at once. */
  readonly relist?: boolean;
}

/**
 * A relist that found objects gone: their deletions happened at unknown revisions in (from, to],
 * so each was sent at a free revision of that range (see relistDiff). `emitted` holds the
 * resourceVersions of every event the relist sent.
 */
export interface RelistGap {
  readonly from: bigint;
  readonly to: bigint;
  readonly emitted: ReadonlySet<bigint>;
}
