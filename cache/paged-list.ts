// A Reflector's LIST: the whole resource, page by page, into a new Store.
import { Store } from './store.js';
import { storedObject, ObjectParseError } from './stored-object.js';
import { listItemRanges, topLevelMember } from './json-scan.js';
import { parseResourceVersion } from './resource-version.js';
import { readBody, UpstreamStatusError, type CacheUpstream } from './upstream.js';
import { collectionPath, type ResourceType } from './resource-type.js';
import type { FieldSet } from '../indexes/selectable-fields.js';

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
    const res = await upstream.get(`${collectionPath(type)}?${q}`, signal);
    const body = await readBody(res.body);
    if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, body);
    for (const [s, e] of listItemRanges(body)) store.upsert(storedObject(body.subarray(s, e), fieldSet, type.namespaced));
    const meta: unknown = JSON.parse(topLevelMember(body, 'metadata')?.toString('utf8') ?? '{}');
    const m = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {};
    rv ??= parseResourceVersion(m['resourceVersion']);
    cont = typeof m['continue'] === 'string' ? m['continue'] : '';
    if (!cont) break;
  }
  if (rv === undefined) throw new ObjectParseError('list without resourceVersion');
  return { store, rv };
}
