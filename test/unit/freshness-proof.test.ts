// FreshnessProofs (cache/freshness-proof.ts) with a probe driven by hand: each probe is a promise the
// test settles itself. A logical clock stands in for the etcd revision: it ticks at every read's
// arrival and every probe's start, and a probe answers the tick at which it started, so "the answer
// proves freshness for the read" is checkable as answer > the read's arrival tick.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CacheStoppedError, FreshnessProofs } from '../../cache/freshness-proof.js';
import { mulberry32 as prng } from '../helpers/prng.js';

interface PendingProbe {
  /** The clock when it started: what it answers. */
  readonly startedAt: bigint;
  readonly signal: AbortSignal;
  answer(): void;
  fail(err?: Error): void;
  settled: boolean;
}

interface Read {
  readonly arrivedAt: bigint;
  outcome: { kind: 'pending' } | { kind: 'rv'; rv: bigint } | { kind: 'error'; err: unknown };
}

class Harness {
  clock = 0n;
  readonly probes: PendingProbe[] = [];
  readonly reads: Read[] = [];
  readonly stop = new AbortController();
  inFlight = 0;
  maxInFlight = 0;
  readonly proofs: FreshnessProofs;
  /** The probe ignores its abort signal (a probe stuck in a dead connection). */
  deaf = false;

  constructor() {
    this.proofs = new FreshnessProofs((signal) => this.#probe(signal), this.stop.signal);
  }

  #probe(signal: AbortSignal): Promise<bigint> {
    const startedAt = ++this.clock;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise<bigint>((resolve, reject) => {
      const onAbort = () => { if (!p.settled) p.fail(new Error('aborted')); };
      const p: PendingProbe = {
        startedAt, signal, settled: false,
        answer: () => {
          assert.equal(p.settled, false, 'a probe settled twice');
          p.settled = true;
          this.inFlight--;
          signal.removeEventListener('abort', onAbort);
          resolve(startedAt);
        },
        fail: (err = new Error('probe failed')) => {
          assert.equal(p.settled, false, 'a probe settled twice');
          p.settled = true;
          this.inFlight--;
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      if (!this.deaf) signal.addEventListener('abort', onAbort, { once: true });
      this.probes.push(p);
    });
  }

  /** What ResourceCache.stop() does: abort the probes, stop the proofs. */
  stopCache(): void {
    this.stop.abort();
    this.proofs.stop();
  }

  read(): Read {
    const r: Read = { arrivedAt: ++this.clock, outcome: { kind: 'pending' } };
    this.reads.push(r);
    this.proofs.target().then((rv) => { r.outcome = { kind: 'rv', rv }; }, (err: unknown) => { r.outcome = { kind: 'error', err }; });
    return r;
  }

  /** The probe currently running (the last started, not settled). */
  current(): PendingProbe {
    const p = this.probes.at(-1);
    assert.ok(p && !p.settled, 'no probe in flight');
    return p;
  }

  /** Every read answered with an RV got one from a probe that started after it arrived. */
  assertSound(): void {
    for (const r of this.reads) {
      if (r.outcome.kind !== 'rv') continue;
      assert.ok(r.outcome.rv > r.arrivedAt, `read at ${r.arrivedAt} answered by a probe started at ${r.outcome.rv}`);
      assert.ok(this.probes.some((p) => p.startedAt === (r.outcome as { rv: bigint }).rv), 'answered by no probe');
    }
  }
}

/** Lets the promise callbacks run (the proofs settle batches and start probes in them). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('one read, one probe, its answer', async () => {
  const h = new Harness();
  const r = h.read();
  assert.equal(h.probes.length, 1);
  h.current().answer();
  await settle();
  assert.deepEqual(r.outcome, { kind: 'rv', rv: 2n });
  assert.equal(h.probes.length, 1, 'no probe without reads');
  assert.deepEqual(h.proofs.stats, { probes: 1, reads: 1, failures: 0, maxInFlight: 1 });
  h.assertSound();
});

test('a read arriving while a probe is in flight never gets that probe\'s answer', async () => {
  const h = new Harness();
  const a = h.read();
  const first = h.current();
  const b = h.read();
  assert.equal(h.probes.length, 1, 'b must not start a second probe while one is in flight');
  first.answer();
  await settle();
  assert.deepEqual(a.outcome, { kind: 'rv', rv: first.startedAt });
  assert.equal(b.outcome.kind, 'pending', 'b must wait for a probe that started after it');
  assert.equal(h.probes.length, 2, 'the next probe starts as soon as the first ends');
  const second = h.current();
  assert.ok(second.startedAt > b.arrivedAt);
  second.answer();
  await settle();
  assert.deepEqual(b.outcome, { kind: 'rv', rv: second.startedAt });
  h.assertSound();
});

test('N reads during one probe cost exactly one more probe, and nothing waits on an empty batch', async () => {
  for (const n of [1, 2, 8, 1000]) {
    const h = new Harness();
    h.read();
    const first = h.current();
    const during = Array.from({ length: n }, () => h.read());
    assert.equal(h.probes.length, 1);
    first.answer();
    await settle();
    assert.equal(h.probes.length, 2, `${n} reads during one probe: one more probe`);
    h.current().answer();
    await settle();
    assert.equal(h.probes.length, 2, 'no third probe: nobody is waiting');
    for (const r of during) assert.deepEqual(r.outcome, { kind: 'rv', rv: h.probes[1]?.startedAt });
    assert.deepEqual(h.proofs.stats, { probes: 2, reads: n + 1, failures: 0, maxInFlight: 1 });
    h.assertSound();
  }
});

test('a failed probe rejects exactly its batch; the reads that came during it get a probe of their own', async () => {
  const h = new Harness();
  const a1 = h.read();
  const a2 = h.read();
  const first = h.current();
  const b1 = h.read();
  const b2 = h.read();
  first.fail(new Error('503'));
  await settle();
  assert.equal(a1.outcome.kind, 'error');
  // a2 arrived during the first probe (a1 started it): it belongs to the next batch.
  assert.equal(a2.outcome.kind, 'pending');
  assert.equal(b1.outcome.kind, 'pending');
  assert.equal(b2.outcome.kind, 'pending');
  const a1o = a1.outcome;
  assert.ok(a1o.kind === 'error' && a1o.err instanceof Error && a1o.err.message === '503');
  assert.equal(h.probes.length, 2);
  h.current().answer();
  await settle();
  for (const r of [a2, b1, b2]) assert.deepEqual(r.outcome, { kind: 'rv', rv: h.probes[1]?.startedAt });
  assert.deepEqual(h.proofs.stats, { probes: 2, reads: 4, failures: 1, maxInFlight: 1 });
  h.assertSound();
});

test('a probe that throws at once rejects its batch and the proofs go on', async () => {
  let calls = 0;
  const stop = new AbortController();
  const proofs = new FreshnessProofs(() => {
    calls++;
    if (calls === 1) throw new Error('synchronous');
    return Promise.resolve(7n);
  }, stop.signal);
  await assert.rejects(proofs.target(), /synchronous/);
  assert.equal(await proofs.target(), 7n);
  assert.equal(proofs.stats.failures, 1);
});

test('a stopped cache rejects the reads waiting, even behind a probe that ignores the abort, and probes no more', async () => {
  const h = new Harness();
  h.deaf = true;
  const a = h.read();
  const b = h.read();
  const stuck = h.current();
  h.stopCache();
  await settle();
  for (const r of [a, b]) {
    assert.equal(r.outcome.kind, 'error');
    assert.ok(r.outcome.kind === 'error' && r.outcome.err instanceof CacheStoppedError);
  }
  assert.ok(stuck.signal.aborted, 'the probe was told to stop');
  const c = h.read();
  await settle();
  assert.ok(c.outcome.kind === 'error' && c.outcome.err instanceof CacheStoppedError);
  // The stuck probe ending late changes nothing and starts nothing.
  stuck.answer();
  await settle();
  assert.equal(h.probes.length, 1);
  assert.equal(a.outcome.kind, 'error');
});

test('a stopped cache whose probe honours the abort: every read rejected, nothing left in flight', async () => {
  const h = new Harness();
  const reads = [h.read(), h.read(), h.read()];
  h.stopCache();
  await settle();
  for (const r of reads) assert.equal(r.outcome.kind, 'error');
  assert.equal(h.inFlight, 0);
  assert.equal(h.probes.length, 1);
});


test('random interleavings of reads, answers and failures: each read settled by the first probe started after it arrived, one probe at a time', async () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = prng(seed);
    const h = new Harness();
    for (let step = 0; step < 80; step++) {
      const x = rand();
      const running = h.probes.find((p) => !p.settled);
      if (x < 0.6) {
        // Sometimes several arrive in one synchronous burst.
        const burst = rand() < 0.2 ? 6 : 1;
        for (let k = 0; k < burst; k++) h.read();
      } else if (running) {
        if (x < 0.93) running.answer();
        else running.fail(new Error(`probe ${running.startedAt} failed`));
      }
      // Not always: reads also arrive between a probe's answer and the proofs' handling of it.
      if (rand() < 0.7) await settle();
      assert.ok(h.inFlight <= 1, `seed ${seed}: ${h.inFlight} probes in flight`);
    }
    for (let guard = 0; guard < 100; guard++) {
      await settle();
      const p = h.probes.find((q) => !q.settled);
      if (!p) break;
      p.answer();
    }
    await settle();
    h.assertSound();
    assert.equal(h.maxInFlight, 1, `seed ${seed}`);
    for (const r of h.reads) {
      const first = h.probes.find((p) => p.startedAt > r.arrivedAt);
      assert.ok(first, `seed ${seed}: no probe started after the read at ${r.arrivedAt}`);
      if (r.outcome.kind === 'rv') assert.equal(r.outcome.rv, first.startedAt, `seed ${seed}: read at ${r.arrivedAt} not answered by the first probe after it`);
      else if (r.outcome.kind === 'error') assert.equal((r.outcome.err as Error).message, `probe ${first.startedAt} failed`, `seed ${seed}`);
      else assert.fail(`seed ${seed}: the read at ${r.arrivedAt} was never settled`);
    }
    // Every probe had readers: none is sent for nobody.
    for (const p of h.probes) assert.ok(h.reads.some((r) => r.arrivedAt < p.startedAt && h.probes.find((q) => q.startedAt > r.arrivedAt) === p), `seed ${seed}: probe ${p.startedAt} served no read`);
    assert.deepEqual(h.proofs.stats, { probes: h.probes.length, reads: h.reads.length, failures: h.probes.filter((p) => h.reads.some((r) => r.outcome.kind === 'error' && (r.outcome.err as Error).message === `probe ${p.startedAt} failed`)).length, maxInFlight: 1 });
  }
});
