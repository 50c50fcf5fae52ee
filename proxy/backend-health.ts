// When an apiserver is taken out of rotation and when it comes back: pure, with the time passed in.
//
// Passive ejection, from what requests meet:
// - connection refused: at once (nothing listens there: an apiserver stopped or restarting);
// - other connection errors (reset, timeout): 3 within 10 s (one reset can be a kept-alive
//   connection the apiserver closed just as a request went out);
// - a burst of 5xx: at least 5 within about 10 s, making half or more of the answers;
// - a run of 20 429s with no other answer in between (its own flow control refuses everything;
//   fewer 429s only lower its weight, see balancer.ts).
// Active checks: GET /readyz every health interval while healthy (a failure ejects, e.g. an
// apiserver shutting down, whose /readyz fails before it stops listening), every second while
// ejected; two successes in a row re-admit it.
export type Outcome = 'ok' | 'server_error' | 'throttled' | 'connection_refused' | 'connection_error';

export type EjectionReason = 'connection_refused' | 'connection_errors' | 'server_errors' | 'throttled' | 'readyz' | 'discovery';

const WINDOW_MS = 10_000;
const CONNECTION_ERRORS = 3;
const SERVER_ERRORS = 5;
const THROTTLED_RUN = 20;
export const READMIT_AFTER = 2;
export const EJECTED_CHECK_MS = 1_000;

export class BackendHealth {
  #ejected: EjectionReason | undefined;
  #ejectedAt = 0;
  #connectionErrors: number[] = [];
  /** When the 5xx answers of the window came; a decayed count of all answers (time constant WINDOW_MS). */
  #serverErrors: number[] = [];
  #answers = 0;
  #decayedAt = 0;
  #throttledRun = 0;
  #checksPassed = 0;

  get ejected(): EjectionReason | undefined {
    return this.#ejected;
  }

  get healthy(): boolean {
    return this.#ejected === undefined;
  }

  /** How long ago it was ejected (0 when healthy). */
  ejectedFor(now: number): number {
    return this.#ejected === undefined ? 0 : now - this.#ejectedAt;
  }

  /** A request's outcome; returns the reason when it ejects the backend now. */
  record(now: number, outcome: Outcome): EjectionReason | undefined {
    if (outcome === 'connection_refused') return this.#eject(now, 'connection_refused');
    if (outcome === 'connection_error') {
      this.#connectionErrors = [...this.#connectionErrors.filter((t) => now - t < WINDOW_MS), now];
      return this.#connectionErrors.length >= CONNECTION_ERRORS ? this.#eject(now, 'connection_errors') : undefined;
    }
    this.#decay(now);
    this.#answers += 1;
    if (outcome === 'server_error') {
      this.#serverErrors = [...this.#serverErrors.filter((t) => now - t < WINDOW_MS), now].slice(-4 * SERVER_ERRORS);
      this.#throttledRun = 0;
      const n = this.#serverErrors.length;
      return n >= SERVER_ERRORS && n * 2 >= this.#answers ? this.#eject(now, 'server_errors') : undefined;
    }
    if (outcome === 'throttled') {
      this.#throttledRun += 1;
      return this.#throttledRun >= THROTTLED_RUN ? this.#eject(now, 'throttled') : undefined;
    }
    this.#throttledRun = 0;
    return undefined;
  }

  /** An active /readyz check; returns 'readyz' when it ejects, 'readmitted' when it brings the backend back. */
  check(now: number, ok: boolean): 'readyz' | 'readmitted' | undefined {
    if (!ok) {
      this.#checksPassed = 0;
      if (this.#ejected !== undefined) return undefined;
      this.#eject(now, 'readyz');
      return 'readyz';
    }
    if (this.#ejected === undefined) return undefined;
    this.#checksPassed += 1;
    if (this.#checksPassed < READMIT_AFTER) return undefined;
    this.#readmit();
    return 'readmitted';
  }

  /** Taken out by the set itself (e.g. discovery marks it not ready). */
  eject(now: number, reason: EjectionReason): void {
    this.#eject(now, reason);
  }

  #eject(now: number, reason: EjectionReason): EjectionReason | undefined {
    if (this.#ejected !== undefined) return undefined;
    this.#ejected = reason;
    this.#ejectedAt = now;
    this.#checksPassed = 0;
    return reason;
  }

  #readmit(): void {
    this.#ejected = undefined;
    this.#connectionErrors = [];
    this.#serverErrors = [];
    this.#answers = 0;
    this.#throttledRun = 0;
    this.#checksPassed = 0;
  }

  #decay(now: number): void {
    this.#answers *= Math.exp(-(now - this.#decayedAt) / WINDOW_MS);
    this.#decayedAt = now;
  }
}
