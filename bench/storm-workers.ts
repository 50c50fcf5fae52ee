// The kubelets' processes (bench/storm-clients.ts, forked), as one object: start every kubelet at
// the same instant, ask how many are synced, collect and merge their reports.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Envelope, KubeletReport, KubeletSpec, ReplyEnvelope, ReportReply, SecondCounts, StatusReply, StormRequest } from './storm-clients.js';

class Worker {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 1;
  readonly exited: Promise<void>;

  constructor() {
    const file = fileURLToPath(new URL('./storm-clients.js', import.meta.url));
    this.#child = fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    this.#child.on('message', (m: unknown) => {
      const r = m as ReplyEnvelope;
      const p = this.#pending.get(r.n);
      if (!p) return;
      this.#pending.delete(r.n);
      if (r.ok) p.resolve(r.reply);
      else p.reject(new Error(`storm clients: ${r.error}`));
    });
    this.exited = new Promise((resolve) => this.#child.once('exit', (code, signal) => {
      for (const p of this.#pending.values()) p.reject(new Error(`a storm clients' process exited (${code ?? signal})`));
      this.#pending.clear();
      resolve();
    }));
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  call<T>(req: StormRequest): Promise<T> {
    const n = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(n, { resolve: (v) => resolve(v as T), reject });
      this.#child.send({ n, req } satisfies Envelope);
    });
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.disconnect();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface MergedReport {
  readonly seconds: Readonly<Record<number, SecondCounts>>;
  readonly kubelets: readonly KubeletReport[];
  readonly retryAfter: Readonly<Record<string, number>>;
  readonly other: Readonly<Record<string, number>>;
  readonly firstOther?: string;
  readonly events: Readonly<Record<string, number>>;
  readonly listItems: { readonly min: number; readonly max: number };
}

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
