// A LIST request's options, read as kube-apiserver reads them (docs/design.md, "Continue tokens and
// limit" and "resourceVersion semantics"), and what the cache can do with them. Anything the cache
// cannot answer exactly is forwarded, with a reason.
import { parseLabelSelector, isLabelSelectorError, type LabelSelector } from '../indexes/label-selector.js';
import { parseFieldSelector, isFieldSelectorError, type FieldSelector } from '../indexes/field-selector.js';
import type { FieldSet } from '../indexes/selectable-fields.js';
import { parseResourceVersion } from './resource-version.js';
import { isSnapshotToken } from './snapshots.js';

export type Query = ReadonlyMap<string, readonly string[]>;

export type ReadMode =
  | { readonly kind: 'consistent' }
  | { readonly kind: 'any' }
  | { readonly kind: 'notOlderThan'; readonly rv: bigint };

export interface ListOptions {
  readonly mode: ReadMode;
  /** 0: no limit. */
  readonly limit: number;
  /** A continue token this proxy issued. */
  readonly continueToken: string | undefined;
  readonly labels: LabelSelector;
  readonly fields: FieldSelector;
}

export interface Forward {
  readonly forward: string;
}

/** Parameters a LIST may carry that the cache answers exactly; anything else is forwarded. */
const KNOWN = new Set(['resourceVersion', 'resourceVersionMatch', 'limit', 'continue', 'labelSelector', 'fieldSelector', 'timeoutSeconds', 'allowWatchBookmarks', 'watch']);

const first = (q: Query, k: string): string => q.get(k)?.[0] ?? '';

export function isForward(v: ListOptions | Forward): v is Forward {
  return 'forward' in v;
}

export function parseListOptions(q: Query, fieldSet: FieldSet): ListOptions | Forward {
  for (const k of q.keys()) {
    if (k === 'pretty') return { forward: 'pretty' };
    if (!KNOWN.has(k)) return { forward: 'unknown_parameter' };
  }
  const rv = first(q, 'resourceVersion');
  const match = first(q, 'resourceVersionMatch');
  const cont = first(q, 'continue');
  const limitText = first(q, 'limit');
  let limit = 0;
  // The apiserver parses a present limit/timeoutSeconds with strconv.ParseInt, so `limit=` is a 400:
  // anything but plain digits is forwarded for the apiserver to judge.
  if (q.has('limit')) {
    if (!/^[0-9]{1,15}$/.test(limitText)) return { forward: 'invalid_limit' };
    limit = Number(limitText);
  }
  if (q.has('timeoutSeconds') && !/^[0-9]{1,15}$/.test(first(q, 'timeoutSeconds'))) return { forward: 'invalid_timeout' };
  const labels = parseLabelSelector(first(q, 'labelSelector'));
  if (isLabelSelectorError(labels)) return { forward: 'unsupported_selector' };
  const fields = parseFieldSelector(first(q, 'fieldSelector'));
  if (isFieldSelectorError(fields)) return { forward: 'unsupported_selector' };
  for (const t of fields.terms) if (!fieldSet.supported.has(t.field)) return { forward: 'unsupported_selector' };

  if (cont !== '') {
    // The apiserver answers continue with a resourceVersion or resourceVersionMatch with 400/422.
    if ((rv !== '' && rv !== '0') || match !== '') return { forward: 'invalid_continue' };
    if (!isSnapshotToken(cont)) return { forward: 'foreign_continue' };
    return { mode: { kind: 'consistent' }, limit, continueToken: cont, labels, fields };
  }
  // resourceVersionMatch without resourceVersion is a 422, whatever the match.
  if (rv === '' && match !== '') return { forward: 'invalid_rv' };
  if (match !== '' && match !== 'NotOlderThan') return { forward: match === 'Exact' ? 'exact_rv' : 'invalid_rv' };
  if (rv === '') return { mode: { kind: 'consistent' }, limit, continueToken: undefined, labels, fields };
  // resourceVersion=0: any state; the watch cache ignores limit then (whole list, no continue).
  if (rv === '0') return { mode: { kind: 'any' }, limit: 0, continueToken: undefined, labels, fields };
  const n = parseResourceVersion(rv);
  if (n === undefined) return { forward: 'invalid_rv' };
  // resourceVersion=N with a limit and no match means Exact.
  if (match === '' && limit > 0) return { forward: 'exact_rv' };
  return { mode: { kind: 'notOlderThan', rv: n }, limit, continueToken: undefined, labels, fields };
}
