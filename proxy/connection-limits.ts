// Limits on the main port's client connections, as pure logic (the server wires them up in
// connection-guard.ts): how many connections are open per source address and overall, and when a
// response whose client stopped reading counts as stalled.

/** The main port's limits; every duration in milliseconds, 0 turning that limit off. */
export interface ConnectionLimits {
  /** Client connections open at once, all sources together; 0: no cap. */
  readonly maxConnections: number;
  /** Client connections open at once from one source address; 0: no cap. */
  readonly maxConnectionsPerSource: number;
  /** From the TCP connection to the end of the TLS handshake. */
  readonly tlsHandshakeTimeoutMs: number;
  /** A request's headers, from their first byte (HTTP/1.1) or from the connection (first request). */
  readonly requestHeaderTimeoutMs: number;
  /** A request's body, from its headers to its last byte (requests without a body are not affected). */
  readonly requestBodyTimeoutMs: number;
  /** How long a connection without any request in flight may stay open. */
  readonly idleTimeoutMs: number;
  /** How long a response may have bytes waiting for its client without any of them being taken. */
  readonly writeStallTimeoutMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 20_000,
  maxConnectionsPerSource: 10_000,
  tlsHandshakeTimeoutMs: 10_000,
  requestHeaderTimeoutMs: 32_000,
  requestBodyTimeoutMs: 60_000,
  idleTimeoutMs: 65_000,
  writeStallTimeoutMs: 60_000,
};

export type Refusal = 'max_connections' | 'max_connections_per_source';

/**
 * What becomes of a new connection: admitted, refused (it is kept just long enough to be answered
 * with a Status, within a budget of such connections) or dropped at once when that budget is spent.
 */
export type Admission = { readonly kind: 'admitted' } | { readonly kind: 'refused'; readonly reason: Refusal } | { readonly kind: 'dropped'; readonly reason: Refusal };

/** Open connections counted per source address and overall. */
export class ConnectionCounter {
  readonly #perSource = new Map<string, number>();
  #total = 0;
  #refusing = 0;

  /**
   * @param limits the caps (0: none)
   * @param maxRefusing refused connections kept open at once to be answered; beyond, they are dropped
   */
  constructor(private readonly limits: Pick<ConnectionLimits, 'maxConnections' | 'maxConnectionsPerSource'>, private readonly maxRefusing: number) {}

  get total(): number {
    return this.#total;
  }

  get refusing(): number {
    return this.#refusing;
  }

  sources(): number {
    return this.#perSource.size;
  }

  /** Counts a new connection from `source` (release it with the same admission when it closes). */
  admit(source: string): Admission {
    const { maxConnections, maxConnectionsPerSource } = this.limits;
    let reason: Refusal | undefined;
    if (maxConnections > 0 && this.#total >= maxConnections) reason = 'max_connections';
    else if (maxConnectionsPerSource > 0 && (this.#perSource.get(source) ?? 0) >= maxConnectionsPerSource) reason = 'max_connections_per_source';
    if (reason === undefined) {
      this.#total++;
      this.#perSource.set(source, (this.#perSource.get(source) ?? 0) + 1);
      return { kind: 'admitted' };
    }
    if (this.#refusing >= this.maxRefusing) return { kind: 'dropped', reason };
    this.#refusing++;
    return { kind: 'refused', reason };
  }

  release(source: string, a: Admission): void {
    if (a.kind === 'refused') {
      this.#refusing--;
      return;
    }
    if (a.kind !== 'admitted') return;
    this.#total--;
    const n = (this.#perSource.get(source) ?? 0) - 1;
    if (n > 0) this.#perSource.set(source, n);
    else this.#perSource.delete(source);
  }
}

/**
 * One response's write progress, sampled: stalled when it has had bytes waiting for the client
 * without any progress for longer than the timeout. Progress is a drain, nothing waiting, fewer
 * bytes waiting than at the last sample, or more bytes flushed (a counter, where there is one):
 * a client reading slowly but steadily always shows one of them; a client that stopped reading
 * shows none (its writer, waiting for a drain, adds nothing; one ignoring backpressure only adds).
 */
export class WriteProgress {
  #since: number;
  #pending = 0;
  #flushed = 0;

  constructor(now: number) {
    this.#since = now;
  }

  /** The client took bytes (the response drained). */
  progressed(now: number): void {
    this.#since = now;
  }

  /** A sample of the bytes waiting (and flushed so far, when known); true when the response is stalled. */
  sample(pendingBytes: number, now: number, timeoutMs: number, flushedBytes = 0): boolean {
    const moved = pendingBytes <= 0 || pendingBytes < this.#pending || flushedBytes > this.#flushed;
    this.#pending = pendingBytes;
    this.#flushed = Math.max(this.#flushed, flushedBytes);
    if (moved || timeoutMs <= 0) {
      this.#since = now;
      return false;
    }
    return now - this.#since > timeoutMs;
  }
}
