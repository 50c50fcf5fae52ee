// Immutable LIST snapshots for `limit`/`continue` paging, held in a bounded LRU (count, bytes, TTL).
// A page's continue token names its snapshot and the offset of the next item; a token whose
// snapshot was evicted is answered with 410 Expired, as the apiserver answers a compacted one.
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { itemSize, type StoredObject } from './stored-object.js';

const PREFIX = 'kcp1.';

export interface Snapshot {
  /** What the snapshot was taken for: resource, namespace and selectors. */
  readonly scope: string;
  readonly resourceVersion: bigint;
  readonly items: readonly StoredObject[];
  readonly withSelectors: boolean;
}

export interface SnapshotLimits {
  readonly maxSnapshots: number;
  readonly maxBytes: number;
  readonly ttlSeconds: number;
}

/** The shape of the tokens this proxy issues: `kcp1.<16 base64url>.<offset>`. */
const TOKEN = /^kcp1\.([A-Za-z0-9_-]{16})\.([0-9]{1,12})$/;

/**
 * A continue token of this proxy's shape. Anything else (garbage, a truncated or edited token) is
 * not one it issued and goes to the apiserver, whose 400 "invalid continue token" is the answer.
 */
export function isSnapshotToken(token: string): boolean {
  return TOKEN.test(token);
}

export interface Page {
  readonly items: readonly StoredObject[];
  readonly continueToken: string | undefined;
  /** Items after this page, only when continuing and without selectors (as the apiserver reports). */
  readonly remainingItemCount: number | undefined;
  readonly resourceVersion: bigint;
}

export type PageLookup = Page | 'expired' | 'mismatch';

export class SnapshotStore {
  readonly #lru: LRUCache<string, Snapshot>;
  readonly #maxBytes: number;

  constructor(limits: SnapshotLimits) {
    this.#maxBytes = limits.maxBytes;
    this.#lru = new LRUCache<string, Snapshot>({
      max: limits.maxSnapshots,
      maxSize: limits.maxBytes,
      sizeCalculation: snapshotSize,
      ttl: limits.ttlSeconds * 1000,
      ttlAutopurge: false,
    });
  }

  get size(): number {
    return this.#lru.size;
  }

  /**
   * The first page of a fresh selection; a snapshot is kept only when there is more. 'too_large'
   * when the snapshot alone exceeds the byte bound (its continue token could never be honoured).
   */
  firstPage(snapshot: Snapshot, limit: number): Page | 'too_large' {
    if (limit <= 0 || snapshot.items.length <= limit) {
      return { items: snapshot.items, continueToken: undefined, remainingItemCount: undefined, resourceVersion: snapshot.resourceVersion };
    }
    if (snapshotSize(snapshot) > this.#maxBytes) return 'too_large';
    const id = randomBytes(12).toString('base64url');
    this.#lru.set(id, snapshot);
    return this.#page(id, snapshot, 0, limit);
  }

  /** The page a continue token points to. */
  nextPage(token: string, scope: string, limit: number): PageLookup {
    const m = TOKEN.exec(token);
    if (!m) return 'expired';
    const id = m[1] as string;
    const snapshot = this.#lru.get(id);
    if (!snapshot) return 'expired';
    if (snapshot.scope !== scope) return 'mismatch';
    return this.#page(id, snapshot, Number(m[2]), limit);
  }

  #page(id: string, s: Snapshot, offset: number, limit: number): Page {
    const end = limit > 0 ? Math.min(s.items.length, offset + limit) : s.items.length;
    const more = end < s.items.length;
    return {
      items: s.items.slice(offset, end),
      continueToken: more ? `${PREFIX}${id}.${end}` : undefined,
      remainingItemCount: more && !s.withSelectors ? s.items.length - end : undefined,
      resourceVersion: s.resourceVersion,
    };
  }
}

function snapshotSize(s: Snapshot): number {
  let n = 1;
  for (const o of s.items) n += itemSize(o);
  return n;
}
