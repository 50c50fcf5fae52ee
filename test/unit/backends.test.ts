// The balancer and the health rules of the backend set, alone (pure: time passed in).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Balancer, decayedThrottle, type Candidate } from '../../proxy/balancer.js';
import { BackendHealth, READMIT_AFTER } from '../../proxy/backend-health.js';

function cand(key: string, short = 0, long = 0, weight = 1, throttle = 0): Candidate {
  return { key, weight, throttle, outstanding: { short, long } };
}

function shares(picks: Array<Candidate | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) if (p) out[p.key] = (out[p.key] ?? 0) + 1;
  return out;
}

test('least outstanding: idle backends take turns, so one sequential client is spread evenly', () => {
  const b = new Balancer('least-outstanding');
  const cs = [cand('a'), cand('b'), cand('c')];
  assert.deepEqual(shares(Array.from({ length: 300 }, () => b.pick(cs, 'short'))), { a: 100, b: 100, c: 100 });
});

test('least outstanding: the backend with fewest short requests wins; watches are counted apart', () => {
  const b = new Balancer('least-outstanding');
  // b holds 50 watches but no short request: it is the idlest for short requests, not for watches.
  const cs = [cand('a', 3, 0), cand('b', 0, 50), cand('c', 2, 0)];
  for (let i = 0; i < 10; i++) assert.equal(b.pick(cs, 'short')?.key, 'b');
  const longPicks = shares(Array.from({ length: 10 }, () => b.pick(cs, 'long')));
  assert.equal(longPicks['b'], undefined);
});

test('weighted round-robin: shares follow the weights, smoothly', () => {
  const b = new Balancer('round-robin');
  const cs = [cand('a', 0, 0, 1), cand('b', 0, 0, 2), cand('c', 0, 0, 1)];
  const picks = Array.from({ length: 400 }, () => b.pick(cs, 'short'));
  assert.deepEqual(shares(picks), { a: 100, b: 200, c: 100 });
  // Smooth: never the same backend three times in a row.
  for (let i = 2; i < picks.length; i++) assert.ok(!(picks[i] === picks[i - 1] && picks[i] === picks[i - 2]), `run at ${i}`);
});

test('a throttled backend (recent 429s) gets fewer requests, and recovers as they decay', () => {
  const b = new Balancer('least-outstanding');
  const p = decayedThrottle(decayedThrottle(0, 0, 0, true), 0, 0, true); // two 429s just now
  const cs = [cand('a', 1), cand('b', 1), cand('t', 1, 0, 1, p)];
  assert.equal(shares(Array.from({ length: 100 }, () => b.pick(cs, 'short')))['t'], undefined);
  // Busy elsewhere, it is still used: not cut off.
  const busy = [cand('a', 9), cand('b', 9), cand('t', 1, 0, 1, p)];
  assert.equal(b.pick(busy, 'short')?.key, 't');
  // A minute later the throttle is gone.
  assert.equal(decayedThrottle(p, 0, 60_000), 0);
  const wrr = new Balancer('round-robin');
  const picks = shares(Array.from({ length: 300 }, () => wrr.pick([cand('a'), cand('t', 0, 0, 1, 2)], 'short')));
  assert.equal(picks['a'], 225);
  assert.equal(picks['t'], 75);
});

test('health: connection refused ejects at once; a reset only after 3 within 10 s', () => {
  const h = new BackendHealth();
  assert.equal(h.record(0, 'connection_refused'), 'connection_refused');
  assert.equal(h.healthy, false);
  const r = new BackendHealth();
  assert.equal(r.record(0, 'connection_error'), undefined);
  assert.equal(r.record(5_000, 'connection_error'), undefined);
  assert.equal(r.record(11_000, 'connection_error'), undefined, 'the first one is out of the window');
  assert.equal(r.record(12_000, 'connection_error'), 'connection_errors');
});

test('health: a burst of 5xx ejects only when it is half the answers or more', () => {
  const mostlyOk = new BackendHealth();
  for (let i = 0; i < 20; i++) mostlyOk.record(i, 'ok');
  for (let i = 0; i < 6; i++) assert.equal(mostlyOk.record(100 + i, 'server_error'), undefined);
  assert.equal(mostlyOk.healthy, true);
  const burst = new BackendHealth();
  const got = Array.from({ length: 5 }, (_, i) => burst.record(i, 'server_error'));
  assert.deepEqual(got, [undefined, undefined, undefined, undefined, 'server_errors']);
});

test('health: a run of 20 429s ejects; any other answer resets the run', () => {
  const h = new BackendHealth();
  for (let i = 0; i < 19; i++) assert.equal(h.record(i, 'throttled'), undefined);
  h.record(20, 'ok');
  for (let i = 0; i < 19; i++) assert.equal(h.record(30 + i, 'throttled'), undefined);
  assert.equal(h.record(60, 'throttled'), 'throttled');
});

test('health: a failed /readyz ejects; READMIT_AFTER passed checks in a row re-admit', () => {
  const h = new BackendHealth();
  assert.equal(h.check(0, true), undefined);
  assert.equal(h.check(1, false), 'readyz');
  assert.equal(h.check(2, false), undefined);
  for (let i = 1; i < READMIT_AFTER; i++) assert.equal(h.check(2 + i, true), undefined);
  assert.equal(h.check(10, false), undefined, 'a failure in between starts over');
  for (let i = 1; i < READMIT_AFTER; i++) assert.equal(h.check(10 + i, true), undefined);
  assert.equal(h.check(20, true), 'readmitted');
  assert.equal(h.healthy, true);
});
