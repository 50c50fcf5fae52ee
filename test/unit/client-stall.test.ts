import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drained, onClientStall, waitingForDrain, type StallTimers } from '../../proxy/client-stall.js';

/** A manual clock: timers fire on advance(). */
function fakeTimers(): StallTimers & { advance(ms: number): void; pending(): number } {
  let now = 0;
  let id = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    setTimeout(fn, ms) {
      timers.set(++id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(t) {
      timers.delete(t as number);
    },
    advance(ms) {
      now += ms;
      for (const [k, t] of [...timers]) {
        if (t.at <= now) {
          timers.delete(k);
          t.fn();
        }
      }
    },
    pending: () => timers.size,
  };
}

test('a wait for drain longer than the stall time runs the hook, once', () => {
  const clock = fakeTimers();
  const res = {};
  let runs = 0;
  onClientStall(res, () => runs++, 1000, clock);
  waitingForDrain(res);
  clock.advance(999);
  assert.equal(runs, 0);
  clock.advance(1);
  assert.equal(runs, 1);
  drained(res);
  waitingForDrain(res);
  clock.advance(5000);
  assert.equal(runs, 1, 'the hook runs once per registration');
  assert.equal(clock.pending(), 0);
});

test('waits shorter than the stall time never run the hook, however many', () => {
  const clock = fakeTimers();
  const res = {};
  let runs = 0;
  onClientStall(res, () => runs++, 1000, clock);
  for (let i = 0; i < 100; i++) {
    waitingForDrain(res);
    clock.advance(900);
    drained(res);
    clock.advance(900);
  }
  assert.equal(runs, 0);
});

test('repeated waitingForDrain during one wait keeps the first deadline', () => {
  const clock = fakeTimers();
  const res = {};
  let runs = 0;
  onClientStall(res, () => runs++, 1000, clock);
  waitingForDrain(res);
  clock.advance(600);
  waitingForDrain(res);
  clock.advance(400);
  assert.equal(runs, 1);
});

test('unregistering clears the timer; a response without a hook is ignored', () => {
  const clock = fakeTimers();
  const res = {};
  let runs = 0;
  const off = onClientStall(res, () => runs++, 1000, clock);
  waitingForDrain(res);
  off();
  off();
  assert.equal(clock.pending(), 0);
  clock.advance(2000);
  assert.equal(runs, 0);
  // A response without a hook: nothing to do, nothing thrown.
  waitingForDrain({});
  drained({});
});

test('a new registration replaces the old one; the old unregistration leaves it alone', () => {
  const clock = fakeTimers();
  const res = {};
  const ran: string[] = [];
  const offA = onClientStall(res, () => ran.push('a'), 1000, clock);
  offA();
  onClientStall(res, () => ran.push('b'), 1000, clock);
  offA();
  waitingForDrain(res);
  clock.advance(1000);
  assert.deepEqual(ran, ['b']);
});
