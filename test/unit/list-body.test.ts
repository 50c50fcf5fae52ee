import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32, gunzipSync, inflateRawSync } from 'node:zlib';
import { gzipListBody, gzipListBodySize, listBody, listBodySize, objectBody, type BodyType, type ListMeta } from '../../cache/list-body.js';
import { crcCombine, crcShift, storedBlocks } from '../../cache/deflate-segments.js';
import { eventLine, eventObject, initialEncoder } from '../../cache/watch-encoding.js';
import { SnapshotStore, isSnapshotToken, type Page, type PageLookup } from '../../cache/snapshots.js';
import { itemBytes, itemSize, itemsBytes, storedObject, type StoredObject } from '../../cache/stored-object.js';
import { Store } from '../../cache/store.js';
import { fieldSetFor } from '../../indexes/selectable-fields.js';
import { parseLabelSelector, isLabelSelectorError } from '../../indexes/label-selector.js';
import { parseFieldSelector, isFieldSelectorError } from '../../indexes/field-selector.js';

const POD: BodyType = { kind: 'Pod', apiVersion: 'v1', sortedKeys: false };
const WIDGET: BodyType = { kind: 'Widget', apiVersion: 'example.com/v1', sortedKeys: true };
const PODS = fieldSetFor('', 'pods', true);
const WIDGETS = fieldSetFor('example.com', 'widgets', true);

/** A pod as a watch event carries it (with kind/apiVersion), `pad` bytes of annotation. */
function podBytes(ns: string, name: string, pad = 0): string {
  return `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"${name}","namespace":"${ns}","resourceVersion":"3","annotations":{"a":"\\u003cb\\u003e${'x'.repeat(pad)}"}},"spec":{"containers":[{"name":"c","image":"i"}]},"status":{"phase":"Running"}}`;
}
const pod = (ns: string, name: string, pad = 0) => storedObject(Buffer.from(podBytes(ns, name, pad)), PODS, true);
const itemOf = (ns: string, name: string, pad = 0) => podBytes(ns, name, pad).replace('"kind":"Pod","apiVersion":"v1",', '');
const meta = (resourceVersion: bigint, continueToken?: string, remainingItemCount?: number): ListMeta => ({ resourceVersion, continueToken, remainingItemCount });

function collect(gen: Iterable<Buffer>): { body: string; chunks: number } {
  const chunks = [...gen];
  return { body: Buffer.concat(chunks).toString('utf8'), chunks: chunks.length };
}

/** Gzip members in `gz`: its deflate stream read to its end, then what follows must be nothing. */
function memberCount(gz: Buffer): number {
  // inflateRaw stops at the final block; the 8-byte trailer must then be the end of the buffer.
  const raw = inflateRawSync(gz.subarray(10), { info: true }) as unknown as { engine: { bytesWritten: number } };
  return 10 + raw.engine.bytesWritten + 8 === gz.length ? 1 : 2;
}

/** The identity body, checked against the gzip body's decoding and both sizes. */
function bodies(t: BodyType, m: ListMeta, objs: readonly StoredObject[]): { body: string; chunks: number } {
  const identity = collect(listBody(t, m, objs));
  assert.equal(Buffer.byteLength(identity.body), listBodySize(t, m, objs), 'listBodySize');
  const gz = Buffer.concat([...gzipListBody(t, m, objs)]);
  assert.equal(gz.length, gzipListBodySize(t, m, objs), 'gzipListBodySize');
  assert.equal(gunzipSync(gz).toString('utf8'), identity.body, 'the assembled member decodes to exactly the identity body (its CRC checked)');
  assert.equal(memberCount(gz), 1, 'one gzip member, for decoders that read only the first');
  return identity;
}

test('listBody (built-in): 0, 1 and many items, byte-exact', () => {
  for (const n of [0, 1, 2, 25]) {
    const objs = Array.from({ length: n }, (_, i) => pod('ns', `p${i}`));
    const { body } = bodies(POD, meta(5n), objs);
    const items = Array.from({ length: n }, (_, i) => itemOf('ns', `p${i}`)).join(',');
    assert.equal(body, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[${items}]}\n`);
    const parsed = JSON.parse(body) as { items: unknown[] };
    assert.equal(parsed.items.length, n);
    assert.ok(n === 0 || body.includes('\\u003cb\\u003e'), 'the apiserver\'s HTML escapes are kept');
  }
});

test('listBody (built-in): ListMeta keys in the apiserver\'s order', () => {
  const objs = [pod('ns', 'a')];
  const cases: Array<[ListMeta, string]> = [
    [meta(5n), '{"resourceVersion":"5"}'],
    [meta(5n, 'kcp1.abc.1'), '{"resourceVersion":"5","continue":"kcp1.abc.1"}'],
    [meta(5n, 'kcp1.abc.1', 48), '{"resourceVersion":"5","continue":"kcp1.abc.1","remainingItemCount":48}'],
    [meta(123456789012345678901n, 'x', 1), '{"resourceVersion":"123456789012345678901","continue":"x","remainingItemCount":1}'],
  ];
  for (const [m, want] of cases) {
    const { body } = bodies(POD, m, objs);
    assert.equal(body, `{"kind":"PodList","apiVersion":"v1","metadata":${want},"items":[${itemOf('ns', 'a')}]}\n`);
  }
});

test('listBody: bodies over 64 KiB come in several chunks with the same bytes', () => {
  const objs = Array.from({ length: 300 }, (_, i) => pod('ns', `p${String(i).padStart(3, '0')}`, 700));
  const chunks = [...listBody(POD, meta(77n, 'kcp1.t.300', 12), objs)];
  bodies(POD, meta(77n, 'kcp1.t.300', 12), objs);
  const gzChunks = [...gzipListBody(POD, meta(77n, 'kcp1.t.300', 12), objs)];
  for (const c of gzChunks.slice(0, -1)) assert.ok(c.length >= 64 * 1024, 'gzip chunks too');
  assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
  for (const c of chunks.slice(0, -1)) assert.ok(c.length >= 64 * 1024, 'every chunk but the last is at least 64 KiB');
  const body = Buffer.concat(chunks).toString();
  const items = objs.map((_, i) => itemOf('ns', `p${String(i).padStart(3, '0')}`, 700)).join(',');
  assert.equal(body, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"77","continue":"kcp1.t.300","remainingItemCount":12},"items":[${items}]}\n`);
  assert.equal((JSON.parse(body) as { items: unknown[] }).items.length, 300);
});

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
}

test('listBody (CRD): keys sorted at every level, items keep kind/apiVersion', () => {
  const widget = (name: string) => storedObject(Buffer.from(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"${name}","namespace":"ns","resourceVersion":"4"},"spec":{"size":1}}`), WIDGETS, true);
  for (const [objs, m, wantMeta] of [
    [[], meta(9n), '{"continue":"","resourceVersion":"9"}'],
    [[widget('a')], meta(9n, 'c'), '{"continue":"c","resourceVersion":"9"}'],
    [[widget('a'), widget('b')], meta(9n, 'c', 2), '{"continue":"c","remainingItemCount":2,"resourceVersion":"9"}'],
  ] as Array<[StoredObject[], ListMeta, string]>) {
    const { body } = bodies(WIDGET, m, objs);
    const items = objs.map((o) => itemBytes(o).toString()).join(',');
    assert.equal(body, `{"apiVersion":"example.com/v1","items":[${items}],"kind":"WidgetList","metadata":${wantMeta}}\n`);
    assert.equal(`${JSON.stringify(sortKeys(JSON.parse(body)))}\n`, body, 'what a Go map encoder would write');
    assert.ok(objs.every((o) => itemBytes(o).toString().startsWith('{"apiVersion":"example.com/v1","kind":"Widget"')));
  }
});

test('objectBody: GET bodies', () => {
  assert.equal(objectBody(POD, pod('ns', 'a')).toString(), `${podBytes('ns', 'a')}\n`);
  const w = storedObject(Buffer.from('{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"ns","resourceVersion":"4"}}'), WIDGETS, true);
  assert.equal(objectBody(WIDGET, w).toString(), `${itemBytes(w).toString()}\n`);
});

test('stored segments: one per item, sized and inflated alone or in a batch', () => {
  const objs = Array.from({ length: 70 }, (_, i) => pod('ns', `p${i}`, i * 13));
  for (const [i, o] of objs.entries()) {
    assert.equal(itemBytes(o).toString(), itemOf('ns', `p${i}`, i * 13));
    assert.equal(itemSize(o), Buffer.byteLength(itemOf('ns', `p${i}`, i * 13)));
  }
  assert.deepEqual(itemsBytes(objs).map((b) => b.toString()), objs.map((_, i) => itemOf('ns', `p${i}`, i * 13)));
  assert.deepEqual(itemsBytes([]), []);
});

test('CRC-32 combination equals the CRC of the concatenation', () => {
  const parts = ['', 'a', '{"kind":"PodList"', 'x'.repeat(70_000), '\u00e9\u4e2d', ','].map((p) => Buffer.from(p));
  for (const a of parts) {
    for (const b of parts) assert.equal(crcCombine(crc32(a), crc32(b), crcShift(b.length)), crc32(Buffer.concat([a, b])), `${a.length}+${b.length}`);
  }
});

test('storedBlocks: stored blocks of any length inflate to their bytes', () => {
  for (const n of [0, 1, 100, 65535, 65536, 200_000]) {
    const data = Buffer.alloc(n, 'ab\u00e9');
    assert.ok(inflateRawSync(storedBlocks(data, true)).equals(data), `${n} bytes`);
  }
});

test('listBody: a very long continue token (head longer than one stored block)', () => {
  const token = 'k'.repeat(70_000);
  const { body } = bodies(POD, meta(3n, token), [pod('ns', 'a')]);
  assert.ok(body.includes(`"continue":"${token}"`));
});

test('watch lines: an event\'s object with kind/apiVersion; initial events inflated in batches, same bytes', () => {
  const objs = Array.from({ length: 150 }, (_, i) => pod('ns', `p${i}`, i));
  const want = objs.map((_, i) => `{"type":"ADDED","object":${podBytes('ns', `p${i}`, i)}}\n`);
  assert.equal(eventLine('ADDED', eventObject(POD, objs[3] as StoredObject)).toString(), want[3]);
  const inOrder = initialEncoder(POD, objs);
  assert.deepEqual(objs.map((o) => inOrder(o).toString()), want);
  // Out of order (not what a Watcher does) still gives each object's own line.
  const any = initialEncoder(POD, objs);
  for (const i of [5, 4, 149, 0, 70, 71, 3]) assert.equal(any(objs[i] as StoredObject).toString(), want[i]);
  assert.equal(any(pod('ns', 'other')).toString(), `{"type":"ADDED","object":${podBytes('ns', 'other')}}\n`);
  const widget = storedObject(Buffer.from('{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"ns","resourceVersion":"4"}}'), WIDGETS, true);
  assert.equal(initialEncoder(WIDGET, [widget])(widget).toString(), `{"type":"ADDED","object":${itemBytes(widget).toString()}}\n`);
});

// ---------------------------------------------------------------------------------------------
// Snapshots for limit/continue paging

const ITEMS = Array.from({ length: 10 }, (_, i) => pod('ns', `p${i}`));
const LIMITS = { maxSnapshots: 10, maxBytes: 1 << 20, ttlSeconds: 60 };

function page(p: PageLookup | 'too_large'): Page {
  if (typeof p === 'string') assert.fail(`expected a page, got ${p}`);
  return p;
}
const names = (p: Page) => p.items.map((o) => o.name);

test('snapshots: no snapshot without a limit or when everything fits', () => {
  const s = new SnapshotStore(LIMITS);
  for (const limit of [0, 10, 11]) {
    const p = page(s.firstPage({ scope: 'x', resourceVersion: 5n, items: ITEMS, withSelectors: false }, limit));
    assert.equal(p.items.length, 10);
    assert.equal(p.continueToken, undefined);
    assert.equal(p.remainingItemCount, undefined);
    assert.equal(p.resourceVersion, 5n);
  }
  assert.equal(s.size, 0);
});

test('snapshots: first and next pages, remainingItemCount only without selectors', () => {
  for (const withSelectors of [false, true]) {
    const s = new SnapshotStore(LIMITS);
    const first = page(s.firstPage({ scope: 'x', resourceVersion: 7n, items: ITEMS, withSelectors }, 3));
    assert.deepEqual(names(first), ['p0', 'p1', 'p2']);
    assert.ok(first.continueToken !== undefined && isSnapshotToken(first.continueToken));
    assert.equal(first.remainingItemCount, withSelectors ? undefined : 7);
    const seen = [...names(first)];
    const remaining: Array<number | undefined> = [];
    let token: string | undefined = first.continueToken;
    let limit = 3;
    while (token !== undefined) {
      const p = page(s.nextPage(token, 'x', limit));
      assert.equal(p.resourceVersion, 7n, 'every page has the first page\'s resourceVersion');
      seen.push(...names(p));
      remaining.push(p.remainingItemCount);
      token = p.continueToken;
      limit = 2; // the limit may change between pages
    }
    assert.deepEqual(seen, ITEMS.map((o) => o.name));
    assert.deepEqual(remaining, withSelectors ? [undefined, undefined, undefined] : [4, 2, undefined]);
    // a token can be used again (retries), and limit=0 on a continue returns the rest
    const again = page(s.nextPage(first.continueToken ?? '', 'x', 0));
    assert.deepEqual(names(again), ['p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9']);
    assert.equal(again.continueToken, undefined);
  }
});

test('snapshots: expired, evicted and mismatched tokens', async () => {
  const snap = (scope: string) => ({ scope, resourceVersion: 1n, items: ITEMS, withSelectors: false });
  const byCount = new SnapshotStore({ ...LIMITS, maxSnapshots: 2 });
  const tokens = ['a', 'b', 'c'].map((scope) => page(byCount.firstPage(snap(scope), 4)).continueToken ?? '');
  assert.equal(byCount.nextPage(tokens[0] ?? '', 'a', 4), 'expired', 'the oldest snapshot was evicted by count');
  assert.deepEqual(names(page(byCount.nextPage(tokens[1] ?? '', 'b', 4))), ['p4', 'p5', 'p6', 'p7']);
  assert.equal(byCount.nextPage(tokens[2] ?? '', 'b', 4), 'mismatch', 'another request\'s token');

  const itemBytes = ITEMS.reduce((n, o) => n + itemSize(o), 0);
  const byBytes = new SnapshotStore({ ...LIMITS, maxBytes: Math.floor(itemBytes * 1.5) });
  const t1 = page(byBytes.firstPage(snap('a'), 4)).continueToken ?? '';
  const t2 = page(byBytes.firstPage(snap('a'), 4)).continueToken ?? '';
  assert.equal(byBytes.nextPage(t1, 'a', 4), 'expired', 'evicted by bytes');
  assert.equal(typeof byBytes.nextPage(t2, 'a', 4), 'object');

  const byTtl = new SnapshotStore({ ...LIMITS, ttlSeconds: 0.05 });
  const t = page(byTtl.firstPage(snap('a'), 4)).continueToken ?? '';
  assert.equal(typeof byTtl.nextPage(t, 'a', 4), 'object');
  await sleep(120);
  assert.equal(byTtl.nextPage(t, 'a', 4), 'expired', 'evicted by age');

  const s = new SnapshotStore(LIMITS);
  const good = page(s.firstPage(snap('a'), 4)).continueToken ?? '';
  for (const bad of ['kcp1.', 'kcp1.short.4', `${good}x`, good.replace(/\.4$/, '.-1'), 'kcp1.AAAAAAAAAAAAAAAA.4', good.replace(/^kcp1\./, 'kcp2.')]) {
    assert.equal(s.nextPage(bad, 'a', 4), 'expired', bad);
  }
  assert.ok(isSnapshotToken(good) && !isSnapshotToken('eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiJhXHUwMDAwIn0'));
});

test('snapshots: a list larger than the byte bound gets no token it could never honour', () => {
  const itemBytes = ITEMS.reduce((n, o) => n + itemSize(o), 0);
  const s = new SnapshotStore({ ...LIMITS, maxBytes: Math.floor(itemBytes / 2) });
  assert.equal(s.firstPage({ scope: 'x', resourceVersion: 1n, items: ITEMS, withSelectors: false }, 4), 'too_large');
  assert.equal(page(s.firstPage({ scope: 'x', resourceVersion: 1n, items: ITEMS, withSelectors: false }, 0)).items.length, ITEMS.length);
});

test('snapshots: pages of a select() stay as they were while the store changes', () => {
  const store = new Store({ namespaced: true, indexedFields: [] });
  for (const o of ITEMS) store.upsert(o);
  const labels = parseLabelSelector('');
  const fields = parseFieldSelector('');
  if (isLabelSelectorError(labels) || isFieldSelectorError(fields)) assert.fail('selectors');
  const s = new SnapshotStore(LIMITS);
  const first = page(s.firstPage({ scope: 'x', resourceVersion: 3n, items: store.select({ namespace: undefined, labels, fields }).items, withSelectors: false }, 5));
  const replaced = pod('ns', 'p7', 50);
  store.upsert(replaced);
  store.delete('ns/p8');
  store.upsert(pod('ns', 'p10'));
  const next = page(s.nextPage(first.continueToken ?? '', 'x', 5));
  assert.deepEqual(names(next), ['p5', 'p6', 'p7', 'p8', 'p9']);
  assert.equal(next.items[2], ITEMS[7], 'the object as it was when the list was taken');
});
