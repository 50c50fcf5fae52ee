import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../../cache/store.js';
import { itemBytes, itemSize, storedObject, type StoredObject } from '../../cache/stored-object.js';
import { fieldSetFor } from '../../indexes/selectable-fields.js';
import { prng } from '../../bench/stats.js';

const PODS = fieldSetFor('', 'pods', true);


function podJson(name: string, rv: number, pad: string): string {
  return JSON.stringify({ kind: 'Pod', apiVersion: 'v1', metadata: { name, namespace: 'ns', resourceVersion: String(rv) }, spec: { nodeName: `n${rv % 7}` }, data: pad });
}

const item = (json: string) => json.replace('{"kind":"Pod","apiVersion":"v1",', '{');

test('slabs: objects written for a store are adopted without a copy, others copied in; bytes stay right', () => {
  const s = new Store({ namespaced: true, indexedFields: [] });
  const mine = storedObject(Buffer.from(podJson('a', 1, 'x')), PODS, true, s.arena);
  const slab = mine.slab;
  s.upsert(mine);
  assert.equal(mine.slab, slab, 'written in the store\'s arena: no copy');
  const other = storedObject(Buffer.from(podJson('b', 2, 'y')), PODS, true);
  assert.notEqual(other.slab.arena, s.arena);
  s.upsert(other);
  assert.equal(other.slab.arena, s.arena, 'copied into the store\'s slabs');
  assert.equal(itemBytes(other).toString(), item(podJson('b', 2, 'y')));
  assert.equal(itemBytes(mine).toString(), item(podJson('a', 1, 'x')));
});

test('slabs: churn compacts sparse slabs; current and released objects keep their bytes', () => {
  const s = new Store({ namespaced: true, indexedFields: ['spec.nodeName'] });
  const rand = prng(7);
  const want = new Map<string, string>();
  const held: Array<[StoredObject, string]> = [];
  let rv = 1;
  const write = (name: string) => {
    // Incompressible padding of varying length: segments of 100 B to ~12 KB.
    const pad = Array.from({ length: Math.floor(rand() * 400) }, () => Math.floor(rand() * 2 ** 32).toString(36)).join('');
    const json = podJson(name, rv++, pad);
    const o = storedObject(Buffer.from(json), PODS, true, s.arena);
    // Now and then an object the store never adopts (what a DELETED event carries).
    if (rand() < 0.1) {
      held.push([o, item(json)]);
      return;
    }
    const old = s.upsert(o);
    if (old && rand() < 0.05) held.push([old, want.get(name) ?? '']);
    want.set(name, item(json));
  };
  for (let i = 0; i < 2000; i++) write(`p${i}`);
  for (let round = 0; round < 8000; round++) {
    const name = `p${Math.floor(rand() * 2000)}`;
    if (rand() < 0.1) {
      s.delete(`ns/${name}`);
      want.delete(name);
    } else write(name);
  }
  assert.equal(s.size, want.size);
  for (const [name, json] of want) assert.equal(itemBytes(s.get(`ns/${name}`) as StoredObject).toString(), json, name);
  for (const [o, json] of held) assert.equal(itemBytes(o).toString(), json, 'an object the store no longer holds keeps its bytes');
  assert.equal(s.bytes, [...s.values()].reduce((n, o) => n + itemSize(o), 0));
  // The live objects' slabs: compaction keeps every one but the slab being filled at least 2/3 full.
  const slabs = new Set([...s.values()].map((o) => o.slab));
  const current = s.arena.room(0).slab;
  assert.ok(slabs.size > 2, `${slabs.size} slabs`);
  for (const x of slabs) if (x !== current) assert.ok(x.live >= x.used * (2 / 3), `slab of ${x.used} B holds ${x.live} B`);
  for (const x of slabs) assert.equal(x.live, x.members.reduce((n, p) => n + (p ? p.len : 0), 0), 'live bytes are the members\'');
});
