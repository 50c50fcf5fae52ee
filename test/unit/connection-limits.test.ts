// The connection caps' counting and the write-stall rule (proxy/connection-limits.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionCounter, WriteProgress, type Admission } from '../../proxy/connection-limits.js';

test('per-source cap: one source refused at its cap, others still admitted; release frees the slot', () => {
  const c = new ConnectionCounter({ maxConnections: 0, maxConnectionsPerSource: 2 }, 10);
  const a1 = c.admit('10.0.0.1');
  const a2 = c.admit('10.0.0.1');
  assert.deepEqual([a1, a2], [{ kind: 'admitted' }, { kind: 'admitted' }]);
  const r = c.admit('10.0.0.1');
  assert.deepEqual(r, { kind: 'refused', reason: 'max_connections_per_source' });
  assert.deepEqual(c.admit('10.0.0.2'), { kind: 'admitted' });
  assert.equal(c.total, 3);
  assert.equal(c.refusing, 1);
  c.release('10.0.0.1', r);
  assert.equal(c.refusing, 0);
  assert.equal(c.total, 3, 'a refused connection never counted as open');
  c.release('10.0.0.1', a1);
  assert.deepEqual(c.admit('10.0.0.1'), { kind: 'admitted' });
});

test('overall cap applies before the per-source one, and to every source', () => {
  const c = new ConnectionCounter({ maxConnections: 3, maxConnectionsPerSource: 2 }, 10);
  c.admit('a');
  c.admit('b');
  c.admit('c');
  assert.deepEqual(c.admit('d'), { kind: 'refused', reason: 'max_connections' });
  assert.deepEqual(c.admit('a'), { kind: 'refused', reason: 'max_connections' });
});

test('refusals beyond their budget are dropped (not kept open to be answered)', () => {
  const c = new ConnectionCounter({ maxConnections: 1, maxConnectionsPerSource: 0 }, 2);
  c.admit('a');
  const refused: Admission[] = [c.admit('a'), c.admit('a')];
  assert.ok(refused.every((a) => a.kind === 'refused'));
  const dropped = c.admit('a');
  assert.deepEqual(dropped, { kind: 'dropped', reason: 'max_connections' });
  c.release('a', dropped);
  assert.equal(c.refusing, 2, 'releasing a dropped connection changes nothing');
  c.release('a', refused[0] as Admission);
  assert.equal(c.admit('a').kind, 'refused');
});

test('0 means no cap; per-source entries go away with their last connection', () => {
  const c = new ConnectionCounter({ maxConnections: 0, maxConnectionsPerSource: 0 }, 0);
  const all = Array.from({ length: 1000 }, (_, i) => [`s${i % 10}`, c.admit(`s${i % 10}`)] as const);
  assert.ok(all.every(([, a]) => a.kind === 'admitted'));
  assert.equal(c.sources(), 10);
  for (const [s, a] of all) c.release(s, a);
  assert.equal(c.sources(), 0);
  assert.equal(c.total, 0);
});

test('write progress: stalled only after the timeout with bytes waiting and no progress', () => {
  const p = new WriteProgress(0);
  assert.equal(p.sample(100, 5_000, 10_000), false);
  assert.equal(p.sample(100, 10_001, 10_000), true, 'the same bytes waiting for longer than the timeout');
  p.progressed(10_001);
  assert.equal(p.sample(100, 15_000, 10_000), false, 'a drain restarts the clock');
  assert.equal(p.sample(0, 30_000, 10_000), false, 'nothing waiting: never stalled (an idle watch)');
  assert.equal(p.sample(100, 39_000, 10_000), false, 'the clock restarted when nothing was waiting');
  assert.equal(p.sample(100, 40_001, 10_000), true);
  assert.equal(p.sample(100, 1e9, 0), false, 'timeout 0: off');
});

test('write progress: a steady slow reader is never stalled, a writer ignoring backpressure is', () => {
  const steady = new WriteProgress(0);
  // Bytes always waiting at each sample, but fewer than before now and then, or more flushed.
  for (let t = 1_000, i = 0; t < 120_000; t += 1_000, i++) {
    assert.equal(steady.sample(i % 2 === 0 ? 5_000 : 4_000, t, 10_000), false, `fluctuating at ${t}`);
  }
  const flushing = new WriteProgress(0);
  for (let t = 1_000; t < 120_000; t += 1_000) assert.equal(flushing.sample(5_000, t, 10_000, t * 10), false, `flushing at ${t}`);
  const growing = new WriteProgress(0);
  let stalled = false;
  for (let t = 1_000; t < 20_000 && !stalled; t += 1_000) stalled = growing.sample(t * 100, t, 10_000, 42);
  assert.ok(stalled, 'only growing, nothing flushed');
});
