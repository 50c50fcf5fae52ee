// After a relist, the old store and the new one told apart as ordinary watch events, so that
// watches served from the cache carry on without relisting themselves.
import type { Store } from './store.js';
import type { RelistGap, StoreEvent } from './store-event.js';

/**
 * What changed between the old store (complete up to `from`) and the new one (at `to`), as ordinary
 * events in resourceVersion order, each at a resourceVersion of its own: a client resumes from the
 * last one it saw, and two events at one resourceVersion would make it skip the second. Changed
 * objects carry their own. A deletion happened at some revision in (from, to] that no surviving
 * object holds (so there are enough of those), but which one is unknown: the deletions get the
 * lowest such free revisions, so that by any resourceVersion a client has seen at least as many
 * deletions as had really happened (one that fails over to an apiserver mid-diff rather gets a
 * DELETED twice). Resuming from these resourceVersions is exact here; from other ones inside
 * (from, to) it is not, and the watch cache answers 410 (the `gap`, present when there were
 * deletions).
 */
export function relistDiff(before: Store, after: Store, from: bigint, to: bigint): { events: StoreEvent[]; gap: RelistGap | undefined } {
  const events: StoreEvent[] = [];
  const used = new Set<bigint>();
  for (const o of after.values()) {
    const old = before.get(o.key);
    if (!old) events.push({ type: 'ADDED', object: o, previous: undefined, resourceVersion: o.resourceVersion, relist: true });
    else if (old.resourceVersion !== o.resourceVersion) events.push({ type: 'MODIFIED', object: o, previous: old, resourceVersion: o.resourceVersion, relist: true });
    else continue;
    used.add(o.resourceVersion);
  }
  let next = from + 1n;
  let deletions = 0;
  for (const o of before.values()) {
    if (after.get(o.key)) continue;
    while (next <= to && used.has(next)) next++;
    // Past `to` only if the old store was not complete up to `from` (it is): then at `to`.
    const rv = next <= to ? next : to;
    used.add(rv);
    next = rv + 1n;
    deletions++;
    events.push({ type: 'DELETED', object: o, previous: o, resourceVersion: rv, relist: true });
  }
  events.sort((a, b) => (a.resourceVersion < b.resourceVersion ? -1 : a.resourceVersion > b.resourceVersion ? 1 : 0));
  return { events, gap: deletions > 0 ? { from, to, emitted: used } : undefined };
}
