// Gzipped bodies of large, complete lists, remembered by what determines them: the list's scope
// (resource, namespace, selectors) and the cache's resourceVersion — the store's state at one
// resourceVersion is one state, so the body is the same bytes. A relist storm of full LISTs at one
// resourceVersion then costs one compression instead of one per client. Concurrent requests for
// the same body share the compression in flight.
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { LRUCache } from 'lru-cache';

const gzipAsync = promisify(gzip);

/** Lists smaller than this are compressed per request (cheap enough, and many would churn the LRU). */
export const REMEMBER_MIN_BYTES = 1024 * 1024;

export class CompressedLists {
  readonly #lru: LRUCache<string, Buffer>;
  readonly #inFlight = new Map<string, Promise<Buffer>>();

  constructor(o: { maxBytes: number; ttlSeconds: number }) {
    this.#lru = new LRUCache<string, Buffer>({ maxSize: o.maxBytes, sizeCalculation: (b) => Math.max(1, b.length), ttl: o.ttlSeconds * 1000 });
  }

  /** The gzipped body for `key`, compressing `chunks` (level 1, off the event loop) when not known. */
  async get(key: string, chunks: () => Iterable<Buffer>): Promise<Buffer> {
    const known = this.#lru.get(key);
    if (known) return known;
    let p = this.#inFlight.get(key);
    if (!p) {
      p = gzipAsync(Buffer.concat([...chunks()]), { level: 1 }).then((b) => {
        this.#lru.set(key, b);
        return b;
      }).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, p);
    }
    return p;
  }
}
