// Freshness proofs shared by every consistent read of one resource.
//
// What a read needs. A consistent read that arrives at instant a must be answered from a state at
// least as new as rev(a), the etcd revision at a. A probe is a request the apiserver answers with
// its current revision (a consistent LIST with limit=1 answers with it as its resourceVersion): a
// probe sent at instant s answers some R ≥ rev(s), because the apiserver reads the revision after it
// received the request, and the revision never decreases. So a probe proves freshness for a read
// exactly when it started after the read arrived: s ≥ a ⇒ R ≥ rev(s) ≥ rev(a).
//
// How reads share probes (the batching etcd's ReadIndex uses). Reads are grouped in batches; each
// batch is given to exactly one probe, started by #start, and its readers get that probe's answer
// (or its failure) and nothing else. There are two slots, `inFlight` (the batch whose probe runs)
// and `next` (reads waiting for the probe after it):
//   - target() with no probe in flight puts the read in a new batch and starts its probe within the
//     same synchronous call, after the read was counted;
//   - target() with a probe in flight puts the read in `next` (creating it if needed); it never
//     joins `inFlight`, whose probe may have started — and reached etcd — before the read arrived;
//   - when the in-flight probe settles, its batch is settled, `inFlight` cleared, and `next` (if any)
//     taken out of its slot and started at once, in one synchronous step.
// Claim 1 (soundness): every read is answered by a probe that started after it arrived. A read in a
// new batch: its probe starts later in the same call. A read in `next`: that batch is started only by
// the step above, which runs in a promise callback, hence after the call that added the read has
// returned (JavaScript runs one callback at a time), and no read joins the batch after it was taken
// out of the slot (the slot is emptied before it is started). So s ≥ a for every reader of every batch.
// Claim 2 (at most one probe in flight): #start runs only when `inFlight` is empty — in target(), or
// in the settle step right after emptying it — and sets it; it is emptied only when its probe settles.
// Claim 3 (cost): a probe is started only for a non-empty batch, and a batch waits at most for the
// current probe, so reads arriving during one probe cost exactly one more probe, whatever their
// number: under any load a resource costs the apiserver at most one probe per probe round trip, and
// a read waits for at most two.
// Claim 4 (failure): a failed probe rejects its own batch only (those reads are forwarded); `next`
// gets a probe of its own. When the cache stops (stop()), both batches are rejected at once (a probe
// that does not end on the abort cannot hold reads), and later reads are rejected without a probe.
//
// Pure: no timers; the probe is passed in.

export type Probe = (signal: AbortSignal) => Promise<bigint>;

/** Told of each read and probe, for metrics. */
export interface FreshnessObserver {
  read?(): void;
  probe?(): void;
}

interface Batch {
  readonly promise: Promise<bigint>;
  resolve(rv: bigint): void;
  reject(err: unknown): void;
  /** Reads waiting on this batch. */
  readers: number;
}

function batch(): Batch {
  let resolve!: (rv: bigint) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<bigint>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody waits for any more must not raise an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject, readers: 0 };
}

export class CacheStoppedError extends Error {
  override readonly name = 'CacheStoppedError';
  constructor() {
    super('cache stopped');
  }
}

export interface FreshnessProofStats {
  /** Probes sent. */
  readonly probes: number;
  /** Reads that asked for a proof. */
  readonly reads: number;
  /** Probes that failed (their readers were rejected). */
  readonly failures: number;
  /** The most probes ever in flight at once (1 by construction; kept to be checked). */
  readonly maxInFlight: number;
}

export class FreshnessProofs {
  readonly #probe: Probe;
  readonly #signal: AbortSignal;
  readonly #observer: FreshnessObserver | undefined;
  /** The batch whose probe is in flight (its readers arrived before the probe started). */
  #inFlight: Batch | undefined;
  /** Reads that arrived while a probe was in flight: served by the next probe. */
  #next: Batch | undefined;
  #probes = 0;
  #reads = 0;
  #failures = 0;
  #running = 0;
  #maxRunning = 0;
  #stopped = false;

  /** @param signal aborts the probes when the cache stops (stop() rejects the reads waiting). */
  constructor(probe: Probe, signal: AbortSignal, observer?: FreshnessObserver) {
    this.#probe = probe;
    this.#signal = signal;
    this.#observer = observer;
  }

  /**
   * A resourceVersion at least the etcd revision at the moment of this call. Rejects when the probe
   * that would prove it fails (the read is then forwarded), or the cache stops.
   */
  target(): Promise<bigint> {
    this.#reads++;
    this.#observer?.read?.();
    if (this.#stopped || this.#signal.aborted) return Promise.reject(new CacheStoppedError());
    if (this.#inFlight === undefined) {
      const b = batch();
      b.readers++;
      this.#start(b);
      return b.promise;
    }
    this.#next ??= batch();
    this.#next.readers++;
    return this.#next.promise;
  }

  get stats(): FreshnessProofStats {
    return { probes: this.#probes, reads: this.#reads, failures: this.#failures, maxInFlight: this.#maxRunning };
  }

  #start(b: Batch): void {
    this.#inFlight = b;
    this.#probes++;
    this.#running++;
    if (this.#running > this.#maxRunning) this.#maxRunning = this.#running;
    this.#observer?.probe?.();
    // The probe starts now, after every reader of `b` arrived (they were counted synchronously).
    let p: Promise<bigint>;
    try {
      p = this.#probe(this.#signal);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then((rv) => b.resolve(rv), (err: unknown) => {
      this.#failures++;
      b.reject(err);
    }).finally(() => {
      this.#running--;
      // Stopped meanwhile: stop() has already settled both slots.
      if (this.#inFlight !== b) return;
      this.#inFlight = undefined;
      const n = this.#next;
      this.#next = undefined;
      if (n !== undefined) this.#start(n);
    });
  }

  /** The cache stopped, or dropped the resource: the reads waiting are rejected, later ones at once. */
  stop(): void {
    this.#stopped = true;
    const batches = [this.#inFlight, this.#next];
    this.#inFlight = undefined;
    this.#next = undefined;
    for (const b of batches) b?.reject(new CacheStoppedError());
  }
}
