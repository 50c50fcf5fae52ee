import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValueIndex } from '../../indexes/value-index.js';
import { LabelIndex, type Labels } from '../../indexes/label-index.js';
import { plan, type IndexView, type ListQuery, type Plan } from '../../indexes/planner.js';
import { fieldSetFor } from '../../indexes/selectable-fields.js';
import { parseLabelSelector, isLabelSelectorError, type LabelSelector } from '../../indexes/label-selector.js';
import { parseFieldSelector, isFieldSelectorError, type FieldSelector } from '../../indexes/field-selector.js';

function labels(s: string): LabelSelector {
  const r = parseLabelSelector(s);
  if (isLabelSelectorError(r)) assert.fail(`label selector ${s}: ${r.error}`);
  return r;
}
function fields(s: string): FieldSelector {
  const r = parseFieldSelector(s);
  if (isFieldSelectorError(r)) assert.fail(`field selector ${s}: ${r.error}`);
  return r;
}
const sorted = (s: ReadonlySet<string> | undefined | null): string[] => [...(s ?? [])].sort();

test('ValueIndex: add, remove, update, empty sets deleted', () => {
  const ix = new ValueIndex();
  ix.add('n1', 'a/x');
  ix.add('n1', 'a/y');
  ix.add('n1', 'a/y'); // idempotent
  ix.add('n2', 'b/z');
  assert.deepEqual(sorted(ix.get('n1')), ['a/x', 'a/y']);
  assert.equal(ix.values, 2);

  ix.remove('n1', 'a/x');
  assert.deepEqual(sorted(ix.get('n1')), ['a/y']);
  ix.remove('n1', 'a/nope'); // unknown key: no-op
  ix.remove('n9', 'a/y'); // unknown value: no-op
  assert.equal(ix.values, 2);
  ix.remove('n1', 'a/y');
  assert.equal(ix.get('n1'), undefined, 'the empty set is deleted');
  assert.equal(ix.values, 1);

  ix.update('b/z', 'n2', 'n3'); // move
  assert.equal(ix.get('n2'), undefined);
  assert.deepEqual(sorted(ix.get('n3')), ['b/z']);
  ix.update('c/w', undefined, 'n3'); // add
  ix.update('b/z', 'n3', undefined); // remove
  assert.deepEqual(sorted(ix.get('n3')), ['c/w']);
  ix.update('c/w', 'n3', undefined);
  assert.equal(ix.values, 0);
});

test('ValueIndex: the unchanged update does no work', () => {
  const ix = new ValueIndex();
  ix.add('v', 'k1');
  const before = ix.get('v');
  ix.update('k2', 'v', 'v'); // k2 was never indexed: a real remove+add would index it
  assert.equal(ix.get('v'), before);
  assert.deepEqual(sorted(ix.get('v')), ['k1']);
  ix.update('k3', undefined, undefined);
  assert.equal(ix.values, 1);
});

test('ValueIndex: the empty string is a value like any other', () => {
  const ix = new ValueIndex();
  ix.update('k', undefined, '');
  assert.deepEqual(sorted(ix.get('')), ['k']);
  ix.update('k', '', 'x');
  assert.equal(ix.get(''), undefined);
});

test('LabelIndex: re-indexing follows the labels that changed', () => {
  const ix = new LabelIndex();
  ix.update('a/x', undefined, { app: 'web', tier: 'fe' });
  ix.update('a/y', undefined, { app: 'web' });
  assert.deepEqual(sorted(ix.withValue('app', 'web')), ['a/x', 'a/y']);
  assert.deepEqual(sorted(ix.withKey('tier')), ['a/x']);
  assert.equal(ix.distinctPairs, 2);

  // value change keeps the key entry, moves the pair
  ix.update('a/x', { app: 'web', tier: 'fe' }, { app: 'db', tier: 'fe' });
  assert.deepEqual(sorted(ix.withValue('app', 'web')), ['a/y']);
  assert.deepEqual(sorted(ix.withValue('app', 'db')), ['a/x']);
  assert.deepEqual(sorted(ix.withKey('app')), ['a/x', 'a/y']);
  assert.equal(ix.distinctPairs, 3);

  // a removed label leaves neither pair nor key
  ix.update('a/x', { app: 'db', tier: 'fe' }, { app: 'db' });
  assert.equal(ix.withKey('tier'), undefined);
  assert.equal(ix.withValue('tier', 'fe'), undefined);
  assert.equal(ix.distinctPairs, 2);

  // deleting every object empties every set
  ix.update('a/x', { app: 'db' }, undefined);
  ix.update('a/y', { app: 'web' }, undefined);
  assert.equal(ix.distinctPairs, 0);
  assert.equal(ix.withKey('app'), undefined);
});

test('LabelIndex: the same labels object is a no-op; equal content touches nothing', () => {
  const ix = new LabelIndex();
  const l: Labels = { a: '1' };
  ix.update('k', undefined, l);
  ix.update('k', l, l);
  ix.update('k', { a: '1' }, { a: '1' });
  assert.deepEqual(sorted(ix.withValue('a', '1')), ['k']);
  // 'other' was never indexed: a no-op update must not index it
  ix.update('other', { a: '1' }, { a: '1' });
  assert.deepEqual(sorted(ix.withValue('a', '1')), ['k']);
});

test('LabelIndex: keys named like Object.prototype members', () => {
  const ix = new LabelIndex();
  // JSON.parse makes "__proto__" an own property, as parsed apiserver labels would be.
  const odd = JSON.parse('{"constructor":"c","__proto__":"p","toString":"t","hasOwnProperty":""}') as Labels;
  ix.update('ns/odd', undefined, {});
  assert.equal(ix.withKey('constructor'), undefined, 'an inherited member is not a label');
  assert.equal(ix.withKey('toString'), undefined);
  ix.update('ns/odd', {}, odd);
  for (const [k, v] of [['constructor', 'c'], ['__proto__', 'p'], ['toString', 't'], ['hasOwnProperty', '']] as const) {
    assert.deepEqual(sorted(ix.withValue(k, v)), ['ns/odd'], k);
    assert.deepEqual(sorted(ix.withKey(k)), ['ns/odd'], k);
  }
  ix.update('ns/odd', odd, { constructor: 'c2' });
  assert.deepEqual(sorted(ix.withValue('constructor', 'c2')), ['ns/odd']);
  assert.equal(ix.withValue('constructor', 'c'), undefined);
  assert.equal(ix.withKey('__proto__'), undefined);
  assert.equal(ix.withKey('toString'), undefined);
  ix.update('ns/odd', { constructor: 'c2' }, undefined);
  assert.equal(ix.distinctPairs, 0);
});

// ---------------------------------------------------------------------------------------------
// Planner, over a small fixed view

interface Obj { readonly key: string; readonly ns: string; readonly labels: Labels; readonly node: string }

class FakeView implements IndexView {
  readonly size: number;
  readonly #ns = new ValueIndex();
  readonly #node = new ValueIndex();
  readonly #labels = new LabelIndex();
  constructor(readonly namespaced: boolean, objs: readonly Obj[]) {
    this.size = objs.length;
    for (const o of objs) {
      this.#ns.add(o.ns, o.key);
      this.#node.add(o.node, o.key);
      this.#labels.update(o.key, undefined, o.labels);
    }
  }
  byNamespace(ns: string) { return this.#ns.get(ns); }
  byField(f: string, v: string) { return f === 'spec.nodeName' ? this.#node.get(v) : null; }
  byLabel(k: string, v: string) { return this.#labels.withValue(k, v); }
  byLabelKey(k: string) { return this.#labels.withKey(k); }
}

const OBJS: Obj[] = [];
for (let i = 0; i < 12; i++) {
  const ns = i < 8 ? 'big' : 'small'; // big: 8, small: 4
  const l: Record<string, string> = { app: i % 3 === 0 ? 'web' : i % 3 === 1 ? 'db' : 'cache' }; // 4 each
  if (i === 5) l['rare'] = 'yes';
  if (i < 6) l['tier'] = 'fe'; // 6 objects
  OBJS.push({ key: `${ns}/o${i}`, ns, labels: l, node: i < 2 ? 'n1' : 'n2' }); // n1: 2, n2: 10
}
const view = new FakeView(true, OBJS);

type Want = { kind: 'all'; filter: boolean } | { kind: 'key'; key: string } | { kind: 'candidates'; index: string; keys: string[] };

function q(ns: string | undefined, l = '', f = ''): ListQuery {
  return { namespace: ns, labels: labels(l), fields: fields(f) };
}
function shape(p: Plan): Want {
  if (p.kind !== 'candidates') return p.kind === 'all' ? { kind: 'all', filter: p.filter } : { kind: 'key', key: p.key };
  const keys = [...p.keys].sort();
  assert.equal(p.size, keys.length, 'size is the number of candidates');
  return { kind: 'candidates', index: p.index, keys };
}
const keysWhere = (pred: (o: Obj) => boolean) => OBJS.filter(pred).map((o) => o.key).sort();

const planCases: ReadonlyArray<readonly [name: string, view: IndexView, query: ListQuery, want: Want]> = [
  ['no filter', view, q(undefined), { kind: 'all', filter: false }],
  ['name in namespace (path)', view, q('big', '', 'metadata.name=o3'), { kind: 'key', key: 'big/o3' }],
  ['name in namespace (field)', view, q(undefined, '', 'metadata.namespace=big,metadata.name=o3'), { kind: 'key', key: 'big/o3' }],
  ['name with labels still a key', view, q('big', 'app=web', 'metadata.name==o3'), { kind: 'key', key: 'big/o3' }],
  ['name across namespaces: not a key', view, q(undefined, '', 'metadata.name=o3'), { kind: 'all', filter: true }],
  ['name, cluster-scoped', new FakeView(false, []), q(undefined, '', 'metadata.name=node-1'), { kind: 'key', key: 'node-1' }],
  ['name != is not a key', view, q('small', '', 'metadata.name!=o3'), { kind: 'candidates', index: 'namespace', keys: keysWhere((o) => o.ns === 'small') }],
  ['namespace (path)', view, q('small'), { kind: 'candidates', index: 'namespace', keys: keysWhere((o) => o.ns === 'small') }],
  ['namespace (field)', view, q(undefined, '', 'metadata.namespace=small'), { kind: 'candidates', index: 'namespace', keys: keysWhere((o) => o.ns === 'small') }],
  ['unknown namespace: no candidates', view, q('nope'), { kind: 'candidates', index: 'namespace', keys: [] }],
  ['indexed field =', view, q(undefined, '', 'spec.nodeName=n1'), { kind: 'candidates', index: 'spec.nodeName', keys: keysWhere((o) => o.node === 'n1') }],
  ['indexed field ==', view, q(undefined, '', 'spec.nodeName==n1'), { kind: 'candidates', index: 'spec.nodeName', keys: keysWhere((o) => o.node === 'n1') }],
  ['indexed field = absent value', view, q(undefined, '', 'spec.nodeName=zz'), { kind: 'candidates', index: 'spec.nodeName', keys: [] }],
  ['indexed field != never used', view, q(undefined, '', 'spec.nodeName!=n2'), { kind: 'all', filter: true }],
  ['unindexed field not used', view, q(undefined, '', 'status.phase=Running'), { kind: 'all', filter: true }],
  ['label =', view, q(undefined, 'app=web'), { kind: 'candidates', index: 'label', keys: keysWhere((o) => o.labels['app'] === 'web') }],
  ['label ==', view, q(undefined, 'app==db'), { kind: 'candidates', index: 'label', keys: keysWhere((o) => o.labels['app'] === 'db') }],
  ['label in: union', view, q(undefined, 'app in (web,db,nope)'), { kind: 'candidates', index: 'label', keys: keysWhere((o) => o.labels['app'] !== 'cache') }],
  ['label exists', view, q(undefined, 'rare'), { kind: 'candidates', index: 'label', keys: ['big/o5'] }],
  ['label = absent pair', view, q(undefined, 'app=nope'), { kind: 'candidates', index: 'label', keys: [] }],
  ['label exists absent key', view, q(undefined, 'nokey'), { kind: 'candidates', index: 'label', keys: [] }],
  ['label != never used', view, q(undefined, 'app!=web'), { kind: 'all', filter: true }],
  ['label notin never used', view, q(undefined, 'app notin (web)'), { kind: 'all', filter: true }],
  ['label !exists never used', view, q(undefined, '!rare'), { kind: 'all', filter: true }],
  ['label gt/lt never used', view, q(undefined, 'n>1,m<5'), { kind: 'all', filter: true }],
  ['candidates as large as the store: all', view, q(undefined, 'app'), { kind: 'all', filter: true }],
  ['smallest: label beats namespace', view, q('big', 'rare=yes'), { kind: 'candidates', index: 'label', keys: ['big/o5'] }],
  ['smallest: field beats label and namespace', view, q('big', 'tier=fe', 'spec.nodeName=n1'), { kind: 'candidates', index: 'spec.nodeName', keys: keysWhere((o) => o.node === 'n1') }],
  ['smallest: namespace beats label', view, q('small', 'tier=fe'), { kind: 'candidates', index: 'namespace', keys: keysWhere((o) => o.ns === 'small') }],
  ['smallest: in union before a larger =', view, q(undefined, 'tier=fe,app in (web)'), { kind: 'candidates', index: 'label', keys: keysWhere((o) => o.labels['app'] === 'web') }],
  ['smallest: = after a larger in union', view, q(undefined, 'app in (web,db),rare=yes'), { kind: 'candidates', index: 'label', keys: ['big/o5'] }],
  ['smallest: an empty candidate set wins', view, q('big', 'app=web,zzz=1'), { kind: 'candidates', index: 'label', keys: [] }],
];

for (const [name, v, query, want] of planCases) {
  test(`plan: ${name}`, () => assert.deepEqual(shape(plan(v, query)), want));
}

// ---------------------------------------------------------------------------------------------
// Selectable fields, as upstream's ToSelectableFields/GetAttrs compute them

const selectableCases: ReadonlyArray<readonly [resource: string, group: string, namespaced: boolean, obj: Record<string, unknown>, want: Record<string, string>]> = [
  ['pods', '', true, { metadata: { name: 'p', namespace: 'ns' }, spec: { nodeName: 'n1', restartPolicy: 'Always', schedulerName: 'default-scheduler', serviceAccountName: 'sa', hostNetwork: true }, status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }], nominatedNodeName: 'n2' } },
    { 'metadata.name': 'p', 'metadata.namespace': 'ns', 'spec.nodeName': 'n1', 'spec.restartPolicy': 'Always', 'spec.schedulerName': 'default-scheduler', 'spec.serviceAccountName': 'sa', 'spec.hostNetwork': 'true', 'status.phase': 'Running', 'status.podIP': '10.0.0.1', 'status.nominatedNodeName': 'n2' }],
  ['pods', '', true, { metadata: { name: 'p', namespace: 'ns' }, spec: {}, status: {} },
    { 'metadata.name': 'p', 'metadata.namespace': 'ns', 'spec.nodeName': '', 'spec.restartPolicy': '', 'spec.schedulerName': '', 'spec.serviceAccountName': '', 'spec.hostNetwork': 'false', 'status.phase': '', 'status.podIP': '', 'status.nominatedNodeName': '' }],
  // v1 status.podIP wins over a differing podIPs[0] (Convert_v1_PodStatus_To_core_PodStatus); podIPs alone is used too.
  ['pods', '', true, { metadata: { name: 'p', namespace: 'ns' }, status: { podIP: '1.1.2.1', podIPs: [{ ip: '1.1.1.1' }] } }, { 'status.podIP': '1.1.2.1' }],
  ['pods', '', true, { metadata: { name: 'p', namespace: 'ns' }, status: { podIPs: [{ ip: '1.1.1.1' }] } }, { 'status.podIP': '1.1.1.1' }],
  ['pods', '', true, { metadata: { name: 'p', namespace: 'ns' }, status: { podIP: '1.1.1.1' } }, { 'status.podIP': '1.1.1.1' }],
  ['nodes', '', false, { metadata: { name: 'n' }, spec: { unschedulable: true } }, { 'metadata.name': 'n', 'spec.unschedulable': 'true' }],
  ['nodes', '', false, { metadata: { name: 'n' } }, { 'metadata.name': 'n', 'spec.unschedulable': 'false' }],
  ['namespaces', '', false, { metadata: { name: 'ns' }, status: { phase: 'Terminating' } }, { 'metadata.name': 'ns', 'status.phase': 'Terminating' }],
  ['secrets', '', true, { metadata: { name: 's', namespace: 'ns' }, type: 'kubernetes.io/tls' }, { 'metadata.name': 's', 'metadata.namespace': 'ns', type: 'kubernetes.io/tls' }],
  ['services', '', true, { metadata: { name: 's', namespace: 'ns' }, spec: { clusterIP: 'None', type: 'ClusterIP' } }, { 'metadata.name': 's', 'metadata.namespace': 'ns', 'spec.clusterIP': 'None', 'spec.type': 'ClusterIP' }],
  ['replicationcontrollers', '', true, { metadata: { name: 'r', namespace: 'ns' }, status: { replicas: 3 } }, { 'metadata.name': 'r', 'metadata.namespace': 'ns', 'status.replicas': '3' }],
  ['replicationcontrollers', '', true, { metadata: { name: 'r', namespace: 'ns' }, status: {} }, { 'status.replicas': '0' }],
  ['events', '', true, { metadata: { name: 'e', namespace: 'ns' }, involvedObject: { kind: 'Pod', namespace: 'ns', name: 'p', uid: 'u', apiVersion: 'v1', resourceVersion: '7', fieldPath: 'spec.containers{c}' }, reason: 'Started', source: { component: 'kubelet' }, reportingComponent: 'kubelet', type: 'Normal' },
    { 'metadata.name': 'e', 'metadata.namespace': 'ns', 'involvedObject.kind': 'Pod', 'involvedObject.namespace': 'ns', 'involvedObject.name': 'p', 'involvedObject.uid': 'u', 'involvedObject.apiVersion': 'v1', 'involvedObject.resourceVersion': '7', 'involvedObject.fieldPath': 'spec.containers{c}', reason: 'Started', reportingComponent: 'kubelet', source: 'kubelet', type: 'Normal' }],
  // an events.k8s.io-written event has no source.component: upstream falls back to reportingController
  ['events', '', true, { metadata: { name: 'e', namespace: 'ns' }, reportingComponent: 'my-controller', source: {} }, { source: 'my-controller', reportingComponent: 'my-controller' }],
  ['events', '', true, { metadata: { name: 'e', namespace: 'ns' }, reportingComponent: 'rc', source: { component: 'sc' } }, { source: 'sc', reportingComponent: 'rc' }],
  // same resource name in another group: defaults only
  ['pods', 'example.com', true, { metadata: { name: 'w', namespace: 'ns' }, spec: { nodeName: 'n1' } }, { 'metadata.name': 'w', 'metadata.namespace': 'ns' }],
  ['widgets', 'example.com', false, { metadata: { name: 'w', namespace: 'ignored' } }, { 'metadata.name': 'w' }],
];

for (const [resource, group, namespaced, obj, want] of selectableCases) {
  test(`selectable fields: ${group ? `${resource}.${group}` : resource} ${JSON.stringify(want)}`, () => {
    const fs = fieldSetFor(group, resource, namespaced);
    const got = fs.values(obj, namespaced);
    for (const [k, v] of Object.entries(want)) assert.equal(got[k], v, k);
    for (const k of Object.keys(got)) assert.ok(fs.supported.has(k), `${k} is a supported field`);
  });
}

test('selectable fields: supported sets', () => {
  const names = (g: string, r: string, n: boolean) => [...fieldSetFor(g, r, n).supported].sort();
  assert.deepEqual(names('', 'nodes', false), ['metadata.name', 'spec.unschedulable']);
  assert.deepEqual(names('', 'namespaces', false), ['metadata.name', 'status.phase']);
  assert.deepEqual(names('', 'secrets', true), ['metadata.name', 'metadata.namespace', 'type']);
  assert.deepEqual(names('', 'configmaps', true), ['metadata.name', 'metadata.namespace']);
  assert.deepEqual(names('apps', 'replicasets', true), ['metadata.name', 'metadata.namespace']);
  assert.deepEqual(names('', 'pods', true), ['metadata.name', 'metadata.namespace', 'spec.hostNetwork', 'spec.nodeName', 'spec.restartPolicy',
    'spec.schedulerName', 'spec.serviceAccountName', 'status.nominatedNodeName', 'status.phase', 'status.podIP']);
  assert.equal(names('', 'events', true).length, 13);
});
