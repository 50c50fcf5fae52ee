// A WATCH request's options, read as kube-apiserver reads them (docs/design.md, "Watch streams" and
// "resourceVersion semantics"), and what the cache can do with them; anything it cannot answer
// exactly is a reason to forward.
import { parseLabelSelector, isLabelSelectorError } from '../indexes/label-selector.js';
import { parseFieldSelector, isFieldSelectorError } from '../indexes/field-selector.js';
import type { FieldSet } from '../indexes/selectable-fields.js';
import { parseResourceVersion } from './resource-version.js';
import type { Query } from './list-options.js';
import type { WatchRequest } from './watch-cache.js';

// `timeout` (client-go sends it on every watch, e.g. timeout=6m44s) bounds short requests only: the
// apiserver ignores it on watches, which are long-running (the deadline filter skips them).
const KNOWN = new Set(['watch', 'resourceVersion', 'resourceVersionMatch', 'allowWatchBookmarks', 'timeoutSeconds', 'timeout', 'labelSelector', 'fieldSelector', 'sendInitialEvents']);
const first = (q: Query, k: string): string | undefined => q.get(k)?.[0];
/** runtime.Convert_Slice_string_To_bool: only "0" and strings.EqualFold(v, "false") are false (the u flag folds as EqualFold does: "falſe"). */
const truthy = (v: string | undefined) => v !== undefined && v !== '0' && !/^false$/iu.test(v);

export type WatchPlan = { readonly request: Omit<WatchRequest, 'timeoutMs'>; readonly timeoutMs: number; readonly waitFor: 'probe' | bigint | undefined };

/** What the apiserver would do with this watch, if the cache can do exactly that. */
export function planWatch(q: Query, path: { readonly namespace: string; readonly namedPath: boolean }, fieldSet: FieldSet): WatchPlan | string {
  for (const k of q.keys()) if (!KNOWN.has(k)) return k === 'pretty' ? 'pretty' : 'unknown_parameter';
  if (path.namedPath) return 'watch_path';
  const labels = parseLabelSelector(first(q, 'labelSelector') ?? '');
  const fields = parseFieldSelector(first(q, 'fieldSelector') ?? '');
  if (isLabelSelectorError(labels) || isFieldSelectorError(fields)) return 'unsupported_selector';
  for (const t of fields.terms) if (!fieldSet.supported.has(t.field)) return 'unsupported_selector';
  const timeoutText = first(q, 'timeoutSeconds');
  if (timeoutText !== undefined && !/^[0-9]{1,9}$/.test(timeoutText)) return 'invalid_timeout';
  // kube-apiserver's default: --min-request-timeout (1800 s) times a random factor in [1, 2).
  const timeoutMs = timeoutText !== undefined && Number(timeoutText) > 0 ? Number(timeoutText) * 1000 : 1800_000 * (1 + Math.random());
  const rv = first(q, 'resourceVersion') ?? '';
  const match = first(q, 'resourceVersionMatch') ?? '';
  const sendInitial = first(q, 'sendInitialEvents');
  const bookmarks = truthy(first(q, 'allowWatchBookmarks'));
  const filter = { namespace: path.namespace || undefined, labels, fields };
  const parsedRV = rv === '' || rv === '0' ? undefined : parseResourceVersion(rv);
  if (rv !== '' && rv !== '0' && parsedRV === undefined) return 'invalid_rv';
  if (sendInitial !== undefined) {
    // Watch-list: initial state, then (with bookmarks) the initial-events-end bookmark.
    if (!truthy(sendInitial) || match !== 'NotOlderThan' || !bookmarks) return 'watch_options';
    return { request: { filter, bookmarks, start: { kind: 'state', initialEventsEnd: true } }, timeoutMs, waitFor: rv === '' ? 'probe' : parsedRV };
  }
  if (match !== '') return 'watch_options';
  // Since 1.34 a watch with resourceVersion unset or 0 is served as a watch-list.
  if (parsedRV === undefined) return { request: { filter, bookmarks, start: { kind: 'state', initialEventsEnd: true } }, timeoutMs, waitFor: rv === '' ? 'probe' : undefined };
  return { request: { filter, bookmarks, start: { kind: 'from', rv: parsedRV } }, timeoutMs, waitFor: parsedRV };
}

