// Reads waiting for a Reflector's store to reach a resourceVersion, each with its own deadline.

interface Waiter {
  readonly rv: bigint;
  readonly resolve: (ok: boolean) => void;
}

export class ResourceVersionWaiters {
  #waiters: Waiter[] = [];

  /** Resolves true when release() reaches `rv`, false after `timeoutMs` or on cancelAll(). */
  wait(rv: bigint, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const w: Waiter = {
        rv,
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** The store has reached `rv`: every waiter for `rv` or less is done. */
  release(rv: bigint): void {
    if (this.#waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.rv <= rv) w.resolve(true);
      else still.push(w);
    }
    this.#waiters = still;
  }

  cancelAll(): void {
    for (const w of this.#waiters) w.resolve(false);
    this.#waiters = [];
  }
}
