import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../../cache/store.js';
import { itemBytes, itemSize, storedObject, ObjectParseError, type StoredObject } from '../../cache/stored-object.js';
import { fieldSetFor } from '../../indexes/selectable-fields.js';
import { parseLabelSelector, isLabelSelectorError } from '../../indexes/label-selector.js';
import { parseFieldSelector, isFieldSelectorError } from '../../indexes/field-selector.js';
import type { ListQuery } from '../../indexes/planner.js';
import { mulberry32 as rng } from '../helpers/prng.js';

const PODS = fieldSetFor('', 'pods', true);
const NODES = fieldSetFor('', 'nodes', false);

function pod(ns: string, name: string, o: { rv?: number; labels?: Record<string, string>; node?: string; phase?: string } = {}): StoredObject {
  const json = { kind: 'Pod', apiVersion: 'v1', metadata: { name, namespace: ns, resourceVersion: String(o.rv ?? 1), labels: o.labels ?? {} }, spec: { nodeName: o.node ?? '' }, status: { phase: o.phase ?? 'Pending' } };
  return storedObject(Buffer.from(JSON.stringify(json)), PODS, true);
}

function query(namespace: string | undefined, l = '', f = ''): ListQuery {
  const labels = parseLabelSelector(l);
  const fields = parseFieldSelector(f);
  if (isLabelSelectorError(labels)) assert.fail(`${l}: ${labels.error}`);
  if (isFieldSelectorError(fields)) assert.fail(`${f}: ${fields.error}`);
  return { namespace, labels, fields };
}

const keys = (items: readonly StoredObject[]) => items.map((o) => o.key);
const setOf = (s: ReadonlySet<string> | undefined | null) => [...(s ?? [])].sort();
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

test('storedObject: key, fields, labels and the item without kind/apiVersion', () => {
  const o = pod('ns', 'p', { rv: 42, labels: { app: 'web' }, node: 'n1', phase: 'Running' });
  assert.equal(o.key, 'ns/p');
  assert.equal(o.resourceVersion, 42n);
  assert.deepEqual(o.labels, { app: 'web' });
  assert.equal(o.fields['spec.nodeName'], 'n1');
  assert.equal(o.fields['metadata.namespace'], 'ns');
  assert.ok(itemBytes(o).toString().startsWith('{"metadata":{"name":"p"'));
  const node = storedObject(Buffer.from('{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1","resourceVersion":"3"},"spec":{"unschedulable":true}}'), NODES, false);
  assert.equal(node.key, 'n1');
  assert.equal(node.fields['spec.unschedulable'], 'true');
  for (const bad of ['nope', '{"metadata":{"name":"p","resourceVersion":"1"}}', '{"metadata":{"namespace":"a","resourceVersion":"1"}}', '{"metadata":{"name":"p","namespace":"a"}}']) {
    assert.throws(() => storedObject(Buffer.from(bad), PODS, true), ObjectParseError, bad);
  }
});

test('Store: upsert, replace and delete keep every index right', () => {
  const s = new Store({ namespaced: true, indexedFields: ['spec.nodeName'] });
  const a = pod('a', 'x', { labels: { app: 'web', tier: 'fe' }, node: 'n1' });
  assert.equal(s.upsert(a), undefined);
  s.upsert(pod('a', 'y', { labels: { app: 'web' }, node: 'n1' }));
  assert.deepEqual(setOf(s.byNamespace('a')), ['a/x', 'a/y']);
  assert.deepEqual(setOf(s.byField('spec.nodeName', 'n1')), ['a/x', 'a/y']);
  assert.equal(s.byField('status.phase', 'Pending'), null, 'not an indexed field');
  assert.deepEqual(setOf(s.byLabel('app', 'web')), ['a/x', 'a/y']);
  const y = s.get('a/y');
  assert.ok(y);
  assert.equal(s.bytes, itemSize(a) + itemSize(y));
  assert.equal(s.storedBytes, a.z.length + y.z.length);

  const a2 = pod('a', 'x', { rv: 2, labels: { app: 'db' }, node: 'n2' });
  assert.equal(s.upsert(a2), a, 'upsert returns the previous object');
  assert.equal(s.get('a/x'), a2);
  assert.equal(s.size, 2);
  assert.deepEqual(setOf(s.byField('spec.nodeName', 'n1')), ['a/y']);
  assert.deepEqual(setOf(s.byField('spec.nodeName', 'n2')), ['a/x']);
  assert.deepEqual(setOf(s.byLabel('app', 'web')), ['a/y']);
  assert.deepEqual(setOf(s.byLabel('app', 'db')), ['a/x']);
  assert.equal(s.byLabelKey('tier'), undefined, 'removed label leaves no empty set');
  assert.deepEqual(setOf(s.byNamespace('a')), ['a/x', 'a/y']);

  assert.equal(s.delete('a/x'), a2);
  assert.equal(s.delete('a/x'), undefined);
  assert.equal(s.byField('spec.nodeName', 'n2'), undefined);
  assert.equal(s.byLabel('app', 'db'), undefined);
  s.delete('a/y');
  assert.equal(s.byNamespace('a'), undefined, 'the empty namespace set is deleted');
  assert.equal(s.byLabelKey('app'), undefined);
  assert.equal(s.size, 0);
  assert.equal(s.bytes, 0);
});

test('Store: items in byte order of namespace/name (a-b/x < a.b/x < a/x < ab/x)', () => {
  const s = new Store({ namespaced: true, indexedFields: [] });
  for (const ns of ['b', 'ab', 'a', 'a.b', 'a-b']) for (const n of ['x', 'x-1', 'x.1']) s.upsert(pod(ns, n, { labels: { app: 'web' } }));
  const want = ['a-b/x', 'a-b/x-1', 'a-b/x.1', 'a.b/x', 'a.b/x-1', 'a.b/x.1', 'a/x', 'a/x-1', 'a/x.1', 'ab/x', 'ab/x-1', 'ab/x.1', 'b/x', 'b/x-1', 'b/x.1'];
  assert.deepEqual(keys(s.select(query(undefined)).items), want);
  assert.deepEqual(keys(s.select(query(undefined, 'app=web')).items), want);
  assert.deepEqual(keys(s.select(query(undefined, 'app!=db')).items), want);
  assert.deepEqual(keys(s.select(query('a')).items), ['a/x', 'a/x-1', 'a/x.1']);
});

test('Store: the index each select uses', () => {
  const s = new Store({ namespaced: true, indexedFields: ['spec.nodeName'] });
  for (let i = 0; i < 20; i++) s.upsert(pod(i < 15 ? 'big' : 'small', `p${i}`, { labels: i === 3 ? { rare: 'y' } : {}, node: i < 2 ? 'n1' : 'n2' }));
  const cases: Array<[ListQuery, string, number]> = [
    [query(undefined), 'all', 20],
    [query('small'), 'namespace', 5],
    [query('big', '', 'metadata.name=p3'), 'name', 1],
    [query('small', '', 'metadata.name=p3'), 'name', 0],
    [query(undefined, '', 'spec.nodeName=n1'), 'spec.nodeName', 2],
    [query(undefined, 'rare'), 'label', 1],
    [query(undefined, '!rare'), 'all', 19],
    [query(undefined, '', 'status.phase=Pending'), 'all', 20],
  ];
  for (const [q, index, n] of cases) {
    const sel = s.select(q);
    assert.equal(sel.index, index);
    assert.equal(sel.items.length, n);
  }
  const nodes = new Store({ namespaced: false, indexedFields: [] });
  for (const n of ['n2', 'n1', 'n10']) nodes.upsert(storedObject(Buffer.from(`{"metadata":{"name":"${n}","resourceVersion":"1"}}`), NODES, false));
  assert.deepEqual(keys(nodes.select(query(undefined)).items), ['n1', 'n10', 'n2']);
  const one = nodes.select(query(undefined, '', 'metadata.name=n10'));
  assert.equal(one.index, 'name');
  assert.deepEqual(keys(one.items), ['n10']);
  assert.deepEqual(keys(nodes.select(query(undefined, '', 'spec.unschedulable=false')).items), ['n1', 'n10', 'n2']);
});

test('Store: an unfiltered select result is never mutated later (copy on write)', () => {
  const s = new Store({ namespaced: true, indexedFields: [] });
  for (const n of ['a', 'b', 'c']) s.upsert(pod('ns', n));
  const first = s.select(query(undefined)).items;
  const snapshot = [...first];
  const b2 = pod('ns', 'b', { rv: 2 });
  s.upsert(b2); // replace
  assert.deepEqual(first, snapshot);
  const second = s.select(query(undefined)).items;
  assert.equal(second[1], b2, 'the replacement is visible to new selects');
  s.upsert(pod('ns', 'aa')); // insert
  s.delete('ns/c');
  assert.deepEqual(first, snapshot);
  assert.deepEqual(keys(second), ['ns/a', 'ns/b', 'ns/c']);
  assert.deepEqual(keys(s.select(query(undefined)).items), ['ns/a', 'ns/aa', 'ns/b']);
});

// ---------------------------------------------------------------------------------------------
// Differential: select() against a brute-force filter and byte-order sort, on a random population


const NAMESPACES = ['a', 'a-b', 'a.b', 'ab', 'b', 'kube-system'];
const LABEL_KEYS = ['app', 'tier', 'v', 'constructor'];
const LABEL_VALUES = ['1', '2', '10', '007', 'a', 'b', ''];
const NODES_ = ['', 'n1', 'n2', 'n3'];
const PHASES = ['Pending', 'Running', 'Succeeded'];

interface Model { readonly ns: string; readonly name: string; readonly labels: Record<string, string>; readonly node: string; readonly phase: string }
type Pred = (m: Model) => boolean;

function int64(v: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(v)) return undefined;
  const n = BigInt(v);
  return n >= -(2n ** 63n) && n < 2n ** 63n ? n : undefined;
}

test('Store: select() equals brute force for random queries on a random population', () => {
  const r = rng(20240611);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const s = new Store({ namespaced: true, indexedFields: ['spec.nodeName'] });
  const model = new Map<string, Model>();

  const mutate = (n: number) => {
    for (let i = 0; i < n; i++) {
      const ns = pick(NAMESPACES);
      const name = `${pick(['x', 'x-', 'x.', 'y'])}${Math.floor(r() * 12)}`;
      if (r() < 0.15) {
        const had = model.delete(`${ns}/${name}`);
        assert.equal(s.delete(`${ns}/${name}`) !== undefined, had);
        continue;
      }
      const labels: Record<string, string> = {};
      for (const k of LABEL_KEYS) if (r() < 0.5) labels[k] = pick(LABEL_VALUES);
      const m: Model = { ns, name, labels, node: pick(NODES_), phase: pick(PHASES) };
      model.set(`${ns}/${name}`, m);
      s.upsert(pod(ns, name, { labels, node: m.node, phase: m.phase }));
    }
  };

  const labelReq = (): [string, Pred] => {
    const k = pick([...LABEL_KEYS, 'missing']);
    const has = (m: Model) => Object.hasOwn(m.labels, k);
    const val = (m: Model) => m.labels[k] ?? '';
    const vals = [pick(LABEL_VALUES.filter(Boolean)), pick(LABEL_VALUES.filter(Boolean))];
    const v = pick(LABEL_VALUES);
    const num = pick(['0', '1', '5', '10', '007']);
    switch (pick(['=', '==', '!=', 'in', 'notin', 'exists', '!exists', '>', '<'])) {
      case '=': return [`${k}=${v}`, (m) => has(m) && val(m) === v];
      case '==': return [`${k}==${v}`, (m) => has(m) && val(m) === v];
      case '!=': return [`${k}!=${v}`, (m) => !has(m) || val(m) !== v];
      case 'in': return [`${k} in (${vals.join(',')})`, (m) => has(m) && vals.includes(val(m))];
      case 'notin': return [`${k} notin (${vals.join(',')})`, (m) => !has(m) || !vals.includes(val(m))];
      case 'exists': return [k, has];
      case '!exists': return [`!${k}`, (m) => !has(m)];
      case '>': return [`${k}>${num}`, (m) => { const x = has(m) ? int64(val(m)) : undefined; return x !== undefined && x > BigInt(num); }];
      default: return [`${k}<${num}`, (m) => { const x = has(m) ? int64(val(m)) : undefined; return x !== undefined && x < BigInt(num); }];
    }
  };

  const fieldTerm = (): [string, Pred] => {
    const [field, get, domain] = pick<[string, (m: Model) => string, readonly string[]]>([
      ['spec.nodeName', (m) => m.node, [...NODES_, 'n9']],
      ['status.phase', (m) => m.phase, [...PHASES, 'Failed']],
      ['metadata.name', (m) => m.name, ['x1', 'x-2', 'y3', 'x.4', 'zz']],
      ['metadata.namespace', (m) => m.ns, [...NAMESPACES, 'nope']],
    ]);
    const v = pick(domain);
    const op = pick(['=', '==', '!=']);
    return [`${field}${op}${v}`, op === '!=' ? (m) => get(m) !== v : (m) => get(m) === v];
  };

  let checked = 0;
  let nonEmpty = 0;
  const indexes = new Set<string>();
  for (let round = 0; round < 40; round++) {
    mutate(round === 0 ? 300 : 20);
    for (let i = 0; i < 10; i++) {
      const ns = r() < 0.5 ? undefined : pick([...NAMESPACES, 'nope']);
      const ls = Array.from({ length: Math.floor(r() * 3) }, labelReq);
      const fs = Array.from({ length: Math.floor(r() * 3) }, fieldTerm);
      const preds = [...ls, ...fs].map(([, p]) => p);
      const q = query(ns, ls.map(([t]) => t).join(','), fs.map(([t]) => t).join(','));
      const want = [...model.entries()].filter(([, m]) => (ns === undefined || m.ns === ns) && preds.every((p) => p(m))).map(([k]) => k).sort(byteOrder);
      const sel = s.select(q);
      assert.deepEqual(keys(sel.items), want, `ns=${String(ns)} labels=${ls.map(([t]) => t).join(',')} fields=${fs.map(([t]) => t).join(',')}`);
      for (const o of sel.items) assert.equal(o.labels, s.get(o.key)?.labels, 'the current object');
      checked++;
      if (want.length > 0) nonEmpty++;
      indexes.add(sel.index);
    }
    // indexes agree with the model after every round of changes
    assert.equal(s.size, model.size);
    const all = [...model.entries()];
    const where = (p: (m: Model) => boolean) => all.filter(([, m]) => p(m)).map(([k]) => k).sort();
    for (const ns of NAMESPACES) assert.deepEqual(setOf(s.byNamespace(ns)), where((m) => m.ns === ns));
    for (const n of NODES_) assert.deepEqual(setOf(s.byField('spec.nodeName', n)), where((m) => m.node === n));
    for (const k of LABEL_KEYS) {
      assert.deepEqual(setOf(s.byLabelKey(k)), where((m) => Object.hasOwn(m.labels, k)));
      for (const v of LABEL_VALUES) assert.deepEqual(setOf(s.byLabel(k, v)), where((m) => Object.hasOwn(m.labels, k) && m.labels[k] === v));
    }
    assert.equal(s.bytes, [...s.values()].reduce((n, o) => n + itemSize(o), 0));
    assert.equal(s.storedBytes, [...s.values()].reduce((n, o) => n + o.z.length, 0));
  }
  assert.equal(checked, 400);
  assert.ok(nonEmpty > 100, `enough non-empty answers (${nonEmpty})`);
  for (const ix of ['all', 'namespace', 'label', 'spec.nodeName', 'name']) assert.ok(indexes.has(ix), `index ${ix} exercised`);
});
