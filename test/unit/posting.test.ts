// Sorted postings (indexes/posting.ts) against a plain Set driven by the same random operations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Posting, PostingUnion } from '../../indexes/posting.js';
import { LabelIndex } from '../../indexes/label-index.js';
import { mulberry32 as rng } from '../helpers/prng.js';

test('Posting: the same members as a Set under random adds and deletes, always in key order', () => {
  for (const universe of [3, 40, 500]) {
    const r = rng(universe);
    const keys = Array.from({ length: universe }, (_, i) => `ns-${i % 7}/pod-${(i * 7919) % universe}`);
    const first = keys[0] as string;
    const p = new Posting(first);
    const want = new Set([first]);
    for (let step = 0; step < 5000; step++) {
      const k = keys[Math.floor(r() * keys.length)] as string;
      if (r() < 0.55) {
        assert.equal(p.add(k), !want.has(k), `add ${k}`);
        want.add(k);
      } else {
        assert.equal(p.delete(k), want.has(k), `delete ${k}`);
        want.delete(k);
      }
      if (step % 97 === 0 || universe === 3) {
        assert.equal(p.size, want.size);
        assert.deepEqual([...p], [...want].sort());
      }
    }
  }
});

test('Posting: one key, then two, then back to one and to none; the Set interface', () => {
  const p = new Posting('b');
  assert.deepEqual([...p], ['b']);
  assert.equal(p.add('b'), false);
  assert.equal(p.add('a'), true);
  assert.deepEqual([...p.keys()], ['a', 'b']);
  assert.deepEqual([...p.entries()], [['a', 'a'], ['b', 'b']]);
  const seen: string[] = [];
  p.forEach((v, k, s) => { assert.equal(v, k); assert.equal(s, p); seen.push(v); });
  assert.deepEqual(seen, ['a', 'b']);
  assert.equal(p.delete('c'), false);
  assert.equal(p.delete('a'), true);
  assert.deepEqual([...p.values()], ['b']);
  assert.equal(p.delete('b'), true);
  assert.equal(p.size, 0);
  assert.deepEqual([...p], []);
});

test('Posting: appending in key order, as a relist does, and inserting anywhere past the small size', () => {
  const p = new Posting('k00000');
  for (let i = 1; i < 1000; i++) p.add(`k${String(i).padStart(5, '0')}`);
  p.add('k00500x');
  p.add('a');
  const all = [...p];
  assert.equal(all.length, 1002);
  assert.deepEqual(all, [...all].sort());
  assert.equal(all[0], 'a');
});

test('LabelIndex: withKey is the union of the key\'s values, its size kept exactly', () => {
  const ix = new LabelIndex();
  ix.update('a/1', undefined, { app: 'web', tier: 'fe' });
  ix.update('a/2', undefined, { app: 'db' });
  ix.update('a/3', undefined, { app: 'web' });
  const u = ix.withKey('app');
  assert.ok(u instanceof PostingUnion);
  assert.equal(u.size, 3);
  assert.deepEqual([...u].sort(), ['a/1', 'a/2', 'a/3']);
  assert.equal(u.has('a/2'), true);
  assert.equal(u.has('a/9'), false);
  ix.update('a/1', { app: 'web', tier: 'fe' }, { app: 'db', tier: 'fe' });
  assert.equal(ix.withKey('app')?.size, 3);
  assert.deepEqual([...(ix.withValue('app', 'db') ?? [])], ['a/1', 'a/2']);
  ix.update('a/3', { app: 'web' }, undefined);
  assert.equal(ix.withKey('app')?.size, 2);
  assert.equal(ix.withValue('app', 'web'), undefined);
  assert.equal(ix.distinctPairs, 2);
});
