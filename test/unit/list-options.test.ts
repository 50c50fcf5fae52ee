import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseListOptions, isForward, type Query } from '../../cache/list-options.js';
import { fieldSetFor } from '../../indexes/selectable-fields.js';

const PODS = fieldSetFor('', 'pods', true);
const NAMESPACES = fieldSetFor('', 'namespaces', false);

/** A query as Go's url.ParseQuery reads it: every value per key, in order. */
function qs(raw: string): Query {
  const m = new Map<string, string[]>();
  for (const [k, v] of new URLSearchParams(raw)) m.set(k, [...(m.get(k) ?? []), v]);
  return m;
}

const OURS = 'kcp1.AbCdEfGhIjKlMnOp.500';
// What the apiserver hands out: base64url of {"v":"meta.k8s.io/v1","rv":5,"start":"a\u0000"}
const FOREIGN = Buffer.from('{"v":"meta.k8s.io/v1","rv":5,"start":"a\\u0000"}').toString('base64url');

type Want =
  | { mode: 'consistent' | 'any'; limit: number; cont?: string }
  | { mode: 'notOlderThan'; rv: bigint; limit: number }
  | { forward: string };

const c = (limit = 0, cont?: string): Want => ({ mode: 'consistent', limit, ...(cont !== undefined ? { cont } : {}) });
const any: Want = { mode: 'any', limit: 0 };
const not = (rv: bigint, limit = 0): Want => ({ mode: 'notOlderThan', rv, limit });
const fwd = (forward: string): Want => ({ forward });

// docs/design.md, "resourceVersion semantics" and "Continue tokens and limit":
// resourceVersion × resourceVersionMatch × limit × continue.
const cases: ReadonlyArray<readonly [query: string, want: Want]> = [
  // resourceVersion unset: consistent read (most recent)
  ['', c()],
  ['limit=500', c(500)],
  ['limit=0', c()],
  ['resourceVersion=', c()],
  ['resourceVersion=&limit=5', c(5)],
  ['resourceVersionMatch=NotOlderThan', fwd('invalid_rv')], // 422: match without resourceVersion
  ['resourceVersionMatch=Exact', fwd('invalid_rv')],
  ['resourceVersionMatch=Exact&limit=5', fwd('invalid_rv')],
  ['resourceVersionMatch=Bogus', fwd('invalid_rv')],
  // resourceVersion=0: any; the watch cache ignores limit (whole list, no continue)
  ['resourceVersion=0', any],
  ['resourceVersion=0&limit=500', any],
  ['resourceVersion=0&resourceVersionMatch=NotOlderThan', any],
  ['resourceVersion=0&resourceVersionMatch=NotOlderThan&limit=5', any],
  ['resourceVersion=0&resourceVersionMatch=Exact', fwd('exact_rv')], // 422 upstream; forwarded either way
  ['resourceVersion=0&resourceVersionMatch=Bogus', fwd('invalid_rv')],
  // resourceVersion=N
  ['resourceVersion=10', not(10n)],
  ['resourceVersion=10&limit=0', not(10n)],
  ['resourceVersion=10&limit=5', fwd('exact_rv')], // legacy exact
  ['resourceVersion=10&resourceVersionMatch=NotOlderThan', not(10n)],
  ['resourceVersion=10&resourceVersionMatch=NotOlderThan&limit=5', not(10n, 5)],
  ['resourceVersion=10&resourceVersionMatch=Exact', fwd('exact_rv')],
  ['resourceVersion=10&resourceVersionMatch=Exact&limit=5', fwd('exact_rv')],
  ['resourceVersion=10&resourceVersionMatch=notolderthan', fwd('invalid_rv')],
  ['resourceVersion=18446744073709551615', not(18446744073709551615n)],
  ['resourceVersion=abc', fwd('invalid_rv')],
  ['resourceVersion=-1', fwd('invalid_rv')],
  ['resourceVersion=007', fwd('invalid_rv')],
  ['resourceVersion=1e3', fwd('invalid_rv')],
  // first value wins, as Go's conversion takes (*in)[0]
  ['resourceVersion=0&resourceVersion=10&limit=5', any],
  ['limit=5&limit=abc', c(5)],
  // limit
  ['limit=abc', fwd('invalid_limit')],
  ['limit=-1', fwd('invalid_limit')],
  ['limit=+5', fwd('invalid_limit')],
  ['limit=', fwd('invalid_limit')], // strconv.ParseInt("") fails: the apiserver's 400
  ['limit=1.5', fwd('invalid_limit')],
  ['limit=9999999999999999', fwd('invalid_limit')],
  ['limit=999999999999999', c(999999999999999)],
  // continue: ours, foreign, and the combinations the apiserver rejects
  [`continue=${OURS}`, c(0, OURS)],
  [`continue=${OURS}&limit=500`, c(500, OURS)],
  [`continue=${OURS}&resourceVersion=0`, c(0, OURS)],
  [`continue=${OURS}&resourceVersion=`, c(0, OURS)],
  [`continue=${OURS}&resourceVersion=10`, fwd('invalid_continue')], // 400
  [`continue=${OURS}&resourceVersionMatch=NotOlderThan`, fwd('invalid_continue')], // 422
  [`continue=${OURS}&resourceVersion=0&resourceVersionMatch=NotOlderThan`, fwd('invalid_continue')],
  [`continue=${OURS}&labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1&limit=5`, c(5, OURS)],
  [`continue=${FOREIGN}`, fwd('foreign_continue')],
  [`continue=${FOREIGN}&limit=500`, fwd('foreign_continue')],
  [`continue=${FOREIGN}&resourceVersion=10`, fwd('invalid_continue')],
  ['continue=', c()],
  ['continue=&resourceVersion=10&limit=5', fwd('exact_rv')],
  // parameters: known, pretty, unknown
  ['timeoutSeconds=30&allowWatchBookmarks=true&watch=false', c()],
  ['timeoutSeconds=abc', fwd('invalid_timeout')],
  ['timeoutSeconds=', fwd('invalid_timeout')],
  ['pretty=true', fwd('pretty')],
  ['pretty=false', fwd('pretty')],
  ['limit=5&pretty=1', fwd('pretty')],
  ['foo=bar', fwd('unknown_parameter')],
  ['sendInitialEvents=true', fwd('unknown_parameter')],
  ['ResourceVersion=0', fwd('unknown_parameter')],
  ['resourceVersion=0&includeUninitialized=true', fwd('unknown_parameter')],
  // selectors: bad ones and unsupported fields go to the apiserver, which writes the 400
  ['labelSelector=app%3Dweb', c()],
  ['labelSelector=app%20in%20(a%2Cb)%2C!gone', c()],
  ['labelSelector=app%20in%20(', fwd('unsupported_selector')],
  ['labelSelector=a%3Db%20c', fwd('unsupported_selector')],
  ['labelSelector=-bad-%3Dx', fwd('unsupported_selector')],
  ['fieldSelector=spec.nodeName%3Dn1%2Cstatus.phase!%3DFailed', c()],
  ['fieldSelector=spec.nodeName', fwd('unsupported_selector')],
  ['fieldSelector=a%3Db%5Cx', fwd('unsupported_selector')],
  ['fieldSelector=spec.foo%3D1', fwd('unsupported_selector')],
  ['fieldSelector=spec.host%3Dn1', fwd('unsupported_selector')], // converted to spec.nodeName upstream
  ['fieldSelector=status.podIPs%3D', fwd('unsupported_selector')], // accepted upstream, compares as ""
  ['resourceVersion=0&fieldSelector=spec.foo%3D1', fwd('unsupported_selector')],
];

for (const [raw, want] of cases) {
  test(`list options: ${raw || '(none)'}`, () => {
    const got = parseListOptions(qs(raw), PODS);
    if (isForward(got)) {
      assert.deepEqual({ forward: got.forward }, want);
      return;
    }
    const shaped: Want = got.mode.kind === 'notOlderThan'
      ? { mode: 'notOlderThan', rv: got.mode.rv, limit: got.limit }
      : { mode: got.mode.kind, limit: got.limit, ...(got.continueToken !== undefined ? { cont: got.continueToken } : {}) };
    assert.deepEqual(shaped, want);
  });
}

test('list options: the parsed selectors are handed on', () => {
  const got = parseListOptions(qs('labelSelector=app%3Dweb%2Ctier&fieldSelector=spec.nodeName%3Dn1'), PODS);
  if (isForward(got)) assert.fail(got.forward);
  assert.equal(got.labels.requiredValue('app'), 'web');
  assert.equal(got.labels.requirements.length, 2);
  assert.equal(got.fields.requiredValue('spec.nodeName'), 'n1');
  const none = parseListOptions(qs(''), PODS);
  if (isForward(none)) assert.fail(none.forward);
  assert.ok(none.labels.empty && none.fields.empty);
});

test('list options: the supported fields are the resource\'s', () => {
  const ok = (raw: string) => !isForward(parseListOptions(qs(raw), NAMESPACES));
  assert.ok(ok('fieldSelector=metadata.name%3Ddefault'));
  assert.ok(ok('fieldSelector=status.phase%3DActive'));
  assert.ok(!ok('fieldSelector=metadata.namespace%3Ddefault'), 'cluster-scoped: no metadata.namespace');
  assert.ok(!ok('fieldSelector=spec.nodeName%3Dn1'));
});
