// In-flight requests and upgraded connections, so that shutdown can end them properly:
// long-running responses (watches, log follows) are ended cleanly at once, short requests get a
// bounded grace period, spliced upgrades are closed last.

export interface InflightEntry {
  readonly longRunning: boolean;
  /** Ends the response cleanly (e.g. the watch's final chunk), so clients see a normal end. */
  endCleanly(): void;
  /** Cuts the connection. */
  destroy(): void;
}

/** Something else that must know of some requests' entries too (the client connection they came on). */
export interface InflightOwner {
  add(e: InflightEntry): void;
  delete(e: InflightEntry): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

export class InflightTracker {
  readonly #entries = new Set<InflightEntry>();
  #draining = false;
  readonly #root: InflightTracker | undefined;
  readonly #owner: InflightOwner | undefined;

  constructor(scope?: { readonly root: InflightTracker; readonly owner: InflightOwner }) {
    this.#root = scope?.root;
    this.#owner = scope?.owner;
  }

  /**
   * The same tracker for one request's handlers, telling `owner` of the entries they add as well:
   * the handlers take the tracker from their context and need not know who else is told.
   */
  scoped(owner: InflightOwner): InflightTracker {
    return new InflightTracker({ root: this.#root ?? this, owner });
  }

  get draining(): boolean {
    return this.#root ? this.#root.draining : this.#draining;
  }

  add(e: InflightEntry): void {
    if (this.#root) {
      this.#owner?.add(e);
      this.#root.add(e);
      return;
    }
    this.#entries.add(e);
    if (this.#draining && e.longRunning) e.endCleanly();
  }

  delete(e: InflightEntry): void {
    if (this.#root) {
      this.#owner?.delete(e);
      this.#root.delete(e);
      return;
    }
    this.#entries.delete(e);
  }

  count(longRunning: boolean): number {
    if (this.#root) return this.#root.count(longRunning);
    let n = 0;
    for (const e of this.#entries) if (e.longRunning === longRunning) n++;
    return n;
  }

  /** Ends long-running work now, waits up to graceMs for the rest, then cuts what is left. */
  async drain(graceMs: number): Promise<void> {
    if (this.#root) return this.#root.drain(graceMs);
    this.#draining = true;
    for (const e of this.#entries) if (e.longRunning) e.endCleanly();
    const deadline = Date.now() + graceMs;
    while (this.#entries.size > 0 && Date.now() < deadline) {
      await sleep(25);
      for (const e of this.#entries) if (e.longRunning) e.endCleanly();
    }
    for (const e of this.#entries) e.destroy();
    this.#entries.clear();
  }
}
