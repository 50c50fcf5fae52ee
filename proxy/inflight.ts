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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

export class InflightTracker {
  readonly #entries = new Set<InflightEntry>();
  #draining = false;

  get draining(): boolean {
    return this.#draining;
  }

  add(e: InflightEntry): void {
    this.#entries.add(e);
    if (this.#draining && e.longRunning) e.endCleanly();
  }

  delete(e: InflightEntry): void {
    this.#entries.delete(e);
  }

  count(longRunning: boolean): number {
    let n = 0;
    for (const e of this.#entries) if (e.longRunning === longRunning) n++;
    return n;
  }

  /** Ends long-running work now, waits up to graceMs for the rest, then cuts what is left. */
  async drain(graceMs: number): Promise<void> {
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
