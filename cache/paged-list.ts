// A Reflector's LIST: the whole resource, page by page, into a new Store.
import { Store } from './store.js';
import { storedObject, ObjectParseError } from './stored-object.js';
import { listItemRanges, topLevelMember } from './json-scan.js';
import { parseResourceVersion } from './resource-version.js';
import { UpstreamStatusError, type CacheUpstream, type UpstreamReply } from './upstream.js';
import { collectionPath, type ResourceType } from './resource-type.js';
import type { FieldSet } from '../indexes/selectable-fields.js';

/**
 * A page that sends nothing for this long came over a dead connection (kept open, no bytes): the
 * HTTP client's own bound is minutes. The LIST fails and is retried (a new connection).
 */
const PAGE_SILENCE_MS = 30_000;

/** One page's request and body, failing when either goes silent for PAGE_SILENCE_MS. */
async function getPage(upstream: CacheUpstream, path: string, signal: AbortSignal): Promise<{ res: UpstreamReply; body: Buffer }> {
  const abort = new AbortController();
  const onStop = () => abort.abort();
  signal.addEventListener('abort', onStop, { once: true });
  let timer = setTimeout(() => abort.abort(), PAGE_SILENCE_MS);
  try {
    const res = await upstream.get(path, abort.signal);
    const chunks: Buffer[] = [];
    let n = 0;
    const silent = () => {
      abort.abort();
      res.body.destroy(new Error(`no byte of the LIST page for ${PAGE_SILENCE_MS} ms`));
    };
    clearTimeout(timer);
    timer = setTimeout(silent, PAGE_SILENCE_MS);
    for await (const c of res.body) {
      clearTimeout(timer);
      timer = setTimeout(silent, PAGE_SILENCE_MS);
      chunks.push(c as Buffer);
      n += (c as Buffer).length;
    }
    return { res, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, n) };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onStop);
  }
}

export interface PagedListOptions {
  readonly pageSize: number;
  readonly indexedFields: readonly string[];
}

/** Lists every object of `type` in pages of `pageSize`; the store's resourceVersion is the first page's. */
export async function listPages(upstream: CacheUpstream, type: ResourceType, fieldSet: FieldSet, o: PagedListOptions, signal: AbortSignal): Promise<{ store: Store; rv: bigint }> {
  const store = new Store({ namespaced: type.namespaced, indexedFields: o.indexedFields });
  let cont = '';
  let rv: bigint | undefined;
  for (;;) {
    const q = `limit=${o.pageSize}${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`;
    const { res, body } = await getPage(upstream, `${collectionPath(type)}?${q}`, signal);
    if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, body);
    for (const [s, e] of listItemRanges(body)) store.upsert(storedObject(body.subarray(s, e), fieldSet, type.namespaced, store.arena));
    const meta: unknown = JSON.parse(topLevelMember(body, 'metadata')?.toString('utf8') ?? '{}');
    const m = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {};
    rv ??= parseResourceVersion(m['resourceVersion']);
    cont = typeof m['continue'] === 'string' ? m['continue'] : '';
    if (!cont) break;
  }
  if (rv === undefined) throw new ObjectParseError('list without resourceVersion');
  return { store, rv };
}
