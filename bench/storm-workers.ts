// The kubelets' processes (bench/storm-clients.ts, forked), as one object: start every kubelet at
// the same instant, ask how many are synced, collect and merge their reports.
import { IpcChild } from './ipc-child.js';
import type { KubeletReport, KubeletSpec, ReportReply, SecondCounts, StatusReply, StormRequest } from './storm-clients.js';

/** One kubelets' process. */
class Worker extends IpcChild<StormRequest> {
  constructor() {
    super(new URL('./storm-clients.js', import.meta.url), 'storm clients', "a storm clients' process");
  }
}

/** The kubelets' processes' reports, merged: the same shape as one. */
export type MergedReport = ReportReply;

export class Workers {
  readonly #workers: Worker[];

  constructor(count: number) {
    this.#workers = Array.from({ length: count }, () => new Worker());
  }

  get pids(): number[] {
    return this.#workers.map((w) => w.pid);
  }

  /** Kubelet i goes to worker i mod count; all start at `startAt` (wall-clock ms). */
  async start(o: { origin: string; ca: string; epoch: number; startAt: number; kubelets: readonly KubeletSpec[] }): Promise<void> {
    const n = this.#workers.length;
    await Promise.all(this.#workers.map((w, j) => w.call({ op: 'start', origin: o.origin, ca: o.ca, epoch: o.epoch, startAt: o.startAt, kubelets: o.kubelets.filter((_, i) => i % n === j) })));
  }

  async status(): Promise<StatusReply> {
    const all = await Promise.all(this.#workers.map((w) => w.call<StatusReply>({ op: 'status' })));
    return { synced: all.reduce((a, s) => a + s.synced, 0), everSynced: all.reduce((a, s) => a + s.everSynced, 0), modified: all.reduce((a, s) => a + s.modified, 0) };
  }

  async report(): Promise<MergedReport> {
    const all = await Promise.all(this.#workers.map((w) => w.call<ReportReply>({ op: 'report' })));
    const seconds: Record<number, SecondCounts> = {};
    const add = (into: Record<string, number>, from: Readonly<Record<string, number>>) => {
      for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
    };
    const retryAfter: Record<string, number> = {};
    const other: Record<string, number> = {};
    const events: Record<string, number> = {};
    for (const r of all) {
      for (const [s, c] of Object.entries(r.seconds)) add((seconds[Number(s)] ??= { list200: 0, watch200: 0, list429: 0, watch429: 0, listOther: 0, watchOther: 0 }) as unknown as Record<string, number>, c as unknown as Record<string, number>);
      add(retryAfter, r.retryAfter);
      add(other, r.other);
      add(events, r.events);
    }
    const firstOther = all.find((r) => r.firstOther)?.firstOther;
    const merged: MergedReport = {
      seconds,
      kubelets: all.flatMap((r) => r.kubelets).sort((a, b) => a.id - b.id),
      retryAfter,
      other,
      events,
      listItems: { min: Math.min(...all.map((r) => r.listItems.min)), max: Math.max(...all.map((r) => r.listItems.max)) },
    };
    return firstOther ? { ...merged, firstOther } : merged;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.#workers.map((w) => w.call({ op: 'stop' })));
    await Promise.allSettled(this.#workers.map((w) => w.stop()));
  }
}
