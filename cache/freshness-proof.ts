// Freshness proofs shared by every consistent read of one resource.
//
// A consistent read that arrives at instant t must be answered from a state at least as new as the
// etcd revision at t. The apiserver tells the current revision when asked (a consistent LIST with
// limit=1 answers with it as its resourceVersion), so a probe that *starts after t* returns some R
// with R ≥ revision(t'), t' ≥ t, hence R ≥ revision(t): it proves freshness for the read.
//
// Any number of reads can share one probe, as long as the probe started after each of them arrived
// (the batching etcd's ReadIndex uses). So: at most one probe is in flight; a read that arrives
// while none is, starts one; a read that arrives while one is in flight must not use its answer
// (that probe may have reached etcd before the read arrived) and waits for the next probe, which
// starts as soon as the current one ends and serves every read that arrived meanwhile. Under any
// load a resource costs the apiserver at most one probe per probe round trip.
//
// Pure: no timers; the probe is passed in.

export type Probe = (signal: AbortSignal) => Promise<bigint>;

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

export interface FreshnessProofStats {
  /** Probes sent. */
  readonly probes: number;
  /** Reads that asked for a proof. */
  readonly reads: number;
}

export class FreshnessProofs {
  readonly #probe: Probe;
  readonly #signal: AbortSignal;
  /** The batch whose probe is in flight (its readers arrived before the probe started). */
  #inFlight: Batch | undefined;
  /** Reads that arrived while a probe was in flight: served by the next probe. */
  #next: Batch | undefined;
  #probes = 0;
  #reads = 0;

  /** @param signal aborts the probes when the cache stops. */
  constructor(probe: Probe, signal: AbortSignal) {
    this.#probe = probe;
    this.#signal = signal;
  }

  /**
   * A resourceVersion at least the etcd revision at the moment of this call. Rejects when the probe
   * that would prove it fails (the read is then forwarded).
   */
  target(): Promise<bigint> {
    this.#reads++;
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
    return { probes: this.#probes, reads: this.#reads };
  }

  #start(b: Batch): void {
    this.#inFlight = b;
    this.#probes++;
    // The probe starts now, after every reader of `b` arrived (they were counted synchronously).
    let p: Promise<bigint>;
    try {
      p = this.#probe(this.#signal);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then((rv) => b.resolve(rv), (err: unknown) => b.reject(err)).finally(() => {
      this.#inFlight = undefined;
      const n = this.#next;
      this.#next = undefined;
      if (n !== undefined && !this.#signal.aborted) this.#start(n);
      else n?.reject(new Error('cache stopped'));
    });
  }
}
