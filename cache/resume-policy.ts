// What a Reflector does after its main watch ends: resume the watch from the same resourceVersion
// (on another apiserver when this one failed), or relist, and after how long.
//
// - A watch that ends cleanly (its timeoutSeconds) is resumed at once, anywhere.
// - A watch that fails (connection error or reset, an ERROR event, a stall) is resumed from the same
//   resourceVersion on another apiserver: the resourceVersion is a global etcd revision, so any
//   apiserver can continue the stream. The first resume is immediate; repeated failures back off
//   (capped exponential, jitter), so an outage is not hammered.
// - 410 Expired: the apiserver's watch cache no longer holds the history after that
//   resourceVersion. A freshly restarted apiserver's may not, while the others still do: the watch
//   is tried from the same resourceVersion on each other healthy apiserver first, and the resource
//   is relisted only when all of them answered 410.
// - Relists back off too when they come in a row (the watch after a relist expires again), so
//   repeated 410s cannot loop.
import { backoffDelayMs } from './backoff.js';

export type ResumeAction =
  | { readonly kind: 'watch'; readonly avoid: ReadonlySet<string>; readonly delayMs: number }
  | { readonly kind: 'relist'; readonly reason: string; readonly delayMs: number };

export class ResumePolicy {
  /** Failures in a row since the last healthy watch. */
  #failures = 0;
  /** Relists since the last healthy watch. */
  #relists = 0;
  /** Apiservers that answered 410 for the current resourceVersion. */
  #expiredOn = new Set<string>();
  #expiredTries = 0;
  readonly #delay: (failures: number) => number;

  constructor(delay: (failures: number) => number = backoffDelayMs) {
    this.#delay = delay;
  }

  /** The watch that just ended was healthy (delivered something or stayed open a while): start over. */
  healthy(): void {
    this.#failures = 0;
    this.#relists = 0;
    this.#expiredOn.clear();
    this.#expiredTries = 0;
  }

  /** A LIST into a new store completed. */
  listed(): void {
    this.#relists++;
    this.#expiredOn.clear();
    this.#expiredTries = 0;
  }

  /** A LIST failed (the next attempt is a LIST again). */
  listFailed(): number {
    this.#failures++;
    return this.#delay(this.#failures);
  }

  /** The watch ended cleanly. */
  ended(): ResumeAction {
    return { kind: 'watch', avoid: new Set(), delayMs: 0 };
  }

  /**
   * The watch failed on `backend` (undefined: not known, e.g. no apiserver could be reached).
   * `relist`: the store cannot go on (an event that does not parse).
   */
  failed(backend: string | undefined, relist?: string): ResumeAction {
    this.#failures++;
    if (relist) return this.#relist(relist);
    // The first resume is immediate, elsewhere; only repeated failures wait.
    const delayMs = this.#failures <= 1 ? 0 : this.#delay(this.#failures - 1);
    return { kind: 'watch', avoid: new Set(backend ? [backend] : []), delayMs };
  }

  /** The watch was answered 410 Expired by `backend`; `healthy` are the usable apiservers now. */
  expired(backend: string | undefined, healthy: readonly string[]): ResumeAction {
    this.#expiredTries++;
    if (backend) this.#expiredOn.add(backend);
    const others = healthy.filter((b) => !this.#expiredOn.has(b));
    // Bounded by the number of apiservers: an upstream that ignores `avoid` could answer from the
    // same one each time.
    if (backend && others.length > 0 && this.#expiredTries < healthy.length) {
      return { kind: 'watch', avoid: new Set(this.#expiredOn), delayMs: 0 };
    }
    return this.#relist('expired');
  }

  #relist(reason: string): ResumeAction {
    this.#expiredOn.clear();
    this.#expiredTries = 0;
    // The first relist is immediate; one that follows a relist without a healthy watch between waits.
    return { kind: 'relist', reason, delayMs: this.#relists === 0 ? 0 : this.#delay(this.#relists) };
  }
}
