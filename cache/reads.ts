// The cache's answer to one read: wait (bounded) until the store has the resourceVersion the read
// needs — unless the resource is predicted quiet (quiet-resources.ts) — then select and page. Any
// "no" is a reason to forward the read to the apiserver.
import type { CachedResource, ResourceCache } from './resource-cache.js';
import type { ListOptions } from './list-options.js';
import type { Page } from './snapshots.js';
import type { StoredObject } from './stored-object.js';
import { planFreshness } from './quiet-resources.js';

export type ListAnswer =
  | { readonly kind: 'page'; readonly page: Page }
  | { readonly kind: 'expired' }
  | { readonly kind: 'forward'; readonly reason: string };

export type GetAnswer =
  | { readonly kind: 'object'; readonly object: StoredObject }
  | { readonly kind: 'notFound' }
  | { readonly kind: 'forward'; readonly reason: string };

/** What a snapshot was taken for; a continue token is only honoured for the same request. */
export function listScope(cr: CachedResource, namespace: string | undefined, rawLabels: string, rawFields: string): string {
  return JSON.stringify([cr.name, namespace ?? '', rawLabels, rawFields]);
}

/**
 * @param probeRV the apiserver's current resourceVersion from the freshness probe (consistent reads).
 */
export async function readList(cache: ResourceCache, cr: CachedResource, o: ListOptions, namespace: string | undefined, scope: string, probeRV: bigint | undefined): Promise<ListAnswer> {
  if (o.continueToken !== undefined) {
    const p = cache.snapshots.nextPage(o.continueToken, scope, o.limit);
    if (p === 'expired') return { kind: 'expired' };
    if (p === 'mismatch') return { kind: 'forward', reason: 'continue_mismatch' };
    cache.metrics.served(cr.name, 'list', 'snapshot');
    return { kind: 'page', page: p };
  }
  const r = cr.reflector;
  if (!r.synced) return { kind: 'forward', reason: 'not_synced' };
  const target = o.mode.kind === 'consistent' ? probeRV : o.mode.kind === 'notOlderThan' ? o.mode.rv : undefined;
  if (target !== undefined) {
    const fresh = await waitFresh(cache, cr, target);
    if (fresh !== 'fresh') return { kind: 'forward', reason: fresh === 'quiet' ? 'quiet' : 'rv_wait_timeout' };
  }
  const store = r.store;
  if (!store) return { kind: 'forward', reason: 'not_synced' };
  const sel = store.select({ namespace, labels: o.labels, fields: o.fields });
  const page = cache.snapshots.firstPage({ scope, resourceVersion: r.resourceVersion, items: sel.items, withSelectors: !o.labels.empty || !o.fields.empty }, o.limit);
  if (page === 'too_large') return { kind: 'forward', reason: 'snapshot_too_large' };
  cache.metrics.served(cr.name, 'list', sel.index);
  return { kind: 'page', page };
}

export function readObject(cache: ResourceCache, cr: CachedResource, namespace: string, name: string): GetAnswer {
  const store = cr.reflector.store;
  if (!store) return { kind: 'forward', reason: 'not_synced' };
  const o = store.get(cr.reflector.type.namespaced ? `${namespace}/${name}` : name);
  cache.metrics.served(cr.name, 'get', 'name');
  return o ? { kind: 'object', object: o } : { kind: 'notFound' };
}

/**
 * Waits (bounded) until the store has reached `rv`; a resource predicted quiet is not waited for
 * (cache/quiet-resources.ts): its read is forwarded at once.
 */
async function waitFresh(cache: ResourceCache, cr: CachedResource, rv: bigint): Promise<'fresh' | 'quiet' | 'timeout'> {
  const r = cr.reflector;
  const plan = planFreshness(r.resourceVersion, rv, cr.activity.idleMs(), cache.config.readFreshness);
  if (plan.kind === 'fresh') {
    cache.metrics.freshnessWait(cr.name, 'fresh', 0);
    return 'fresh';
  }
  if (plan.kind === 'quiet') return 'quiet';
  const started = process.hrtime.bigint();
  const ok = await r.waitFor(rv, plan.budgetMs);
  cache.metrics.freshnessWait(cr.name, ok ? 'fresh' : 'timeout', Number(process.hrtime.bigint() - started) / 1e9);
  return ok ? 'fresh' : 'timeout';
}
