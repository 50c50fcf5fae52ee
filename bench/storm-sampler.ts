// What the restart-storm benchmark samples while it runs, every --sample-ms: the apiserver's own
// /metrics (in-flight and queued requests, APF seats and rejections) and the CPU seconds of every
// process from /proc. The apiserver's `apiserver_current_inflight_requests` and
// `apiserver_current_inqueue_requests` gauges hold the highest count of the previous second (the
// apiserver's own watermark, reset every second), so sampling them more often than once a second
// sees every peak. Processes come and go (the apiserver is restarted, workers and proxies start per
// run): CPU is kept per pid and summed per name, so a restarted apiserver's CPU adds to its
// predecessor's.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request, type Agent } from 'undici';
import { cpuSeconds } from './proc.js';
import { parseMetrics, sum, sumBy, type Metrics } from './prom.js';

export interface ApiserverSample {
  /** Wall-clock ms. */
  readonly at: number;
  readonly pid: number;
  readonly inflightReadOnly: number;
  readonly inflightMutating: number;
  readonly inqueueReadOnly: number;
  readonly inqueueMutating: number;
  /** APF, all priority levels (current values at the scrape, not peaks). */
  readonly executingSeats: number;
  readonly executingRequests: number;
  readonly inqueueRequestsApf: number;
  /** By priority level. */
  readonly executingSeatsBy: Readonly<Record<string, number>>;
  readonly limitSeatsBy: Readonly<Record<string, number>>;
  /** Counter since the process started, by priority_level/reason. */
  readonly rejectedBy: Readonly<Record<string, number>>;
}

/** A listening socket's accept queue at one instant (`ss -ltn`: Recv-Q = connections waiting to be accepted, Send-Q = the backlog). */
export interface AcceptQueueSample {
  readonly at: number;
  readonly name: string;
  readonly queued: number;
  readonly backlog: number;
}

export interface CpuTick {
  readonly at: number;
  /** Cumulative CPU seconds per name (every pid that name ever had). */
  readonly seconds: Readonly<Record<string, number>>;
}

const KEEP = [
  'apiserver_current_inflight_requests',
  'apiserver_current_inqueue_requests',
  'apiserver_flowcontrol_current_executing_seats',
  'apiserver_flowcontrol_current_executing_requests',
  'apiserver_flowcontrol_current_inqueue_requests',
  'apiserver_flowcontrol_current_limit_seats',
  'apiserver_flowcontrol_nominal_limit_seats',
  'apiserver_flowcontrol_rejected_requests_total',
];

export const wallClock = (): number => performance.timeOrigin + performance.now();

export class Sampler {
  readonly apiserver: ApiserverSample[] = [];
  readonly cpu: CpuTick[] = [];
  /** Scrapes that failed (apiserver down or busy), wall-clock ms. */
  readonly failedScrapes: number[] = [];
  readonly acceptQueues: AcceptQueueSample[] = [];
  /** Listening ports whose accept queue is sampled, by name (apiserver, proxy). */
  listeners: Record<string, number> = {};
  /** Bytes of one /metrics answer and ms it took (the last successful scrape). */
  lastScrape = { bytes: 0, ms: 0 };
  readonly #byName = new Map<string, Map<number, number>>();
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #stopped = false;

  constructor(
    readonly periodMs: number,
    readonly target: () => { url: string; token: string; agent: Agent; pid: number } | undefined,
    readonly pids: () => Readonly<Record<string, readonly number[]>>,
  ) {}

  start(): void {
    this.#stopped = false;
    this.#timer = setInterval(() => void this.tick(), this.periodMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Cumulative CPU seconds per name right now (also recorded as a tick). */
  cpuNow(): Record<string, number> {
    for (const [name, pids] of Object.entries(this.pids())) {
      let m = this.#byName.get(name);
      if (!m) this.#byName.set(name, (m = new Map()));
      for (const pid of pids) {
        if (!pid) continue;
        const s = cpuSeconds(pid);
        if (Number.isFinite(s)) m.set(pid, s);
      }
    }
    const self = process.cpuUsage();
    const out: Record<string, number> = { bench: (self.user + self.system) / 1e6 };
    for (const [name, m] of this.#byName) out[name] = [...m.values()].reduce((a, b) => a + b, 0);
    this.cpu.push({ at: wallClock(), seconds: out });
    return out;
  }

  async tick(): Promise<void> {
    this.cpuNow();
    void this.#sampleAcceptQueues();
    if (this.#busy || this.#stopped) return;
    const t = this.target();
    if (!t) return;
    this.#busy = true;
    const at = wallClock();
    try {
      const res = await request(`${t.url}/metrics`, { dispatcher: t.agent, headers: { authorization: `Bearer ${t.token}` }, headersTimeout: 5000, bodyTimeout: 5000 });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      this.lastScrape = { bytes: text.length, ms: wallClock() - at };
      const kept = text.split('\n').filter((l) => KEEP.some((k) => l.startsWith(k))).join('\n');
      this.apiserver.push(toSample(at, t.pid, parseMetrics(kept)));
    } catch {
      this.failedScrapes.push(at);
    } finally {
      this.#busy = false;
    }
  }

  #ssBusy = false;

  async #sampleAcceptQueues(): Promise<void> {
    const ports = Object.entries(this.listeners).filter(([, p]) => p > 0);
    if (this.#ssBusy || ports.length === 0) return;
    this.#ssBusy = true;
    const at = wallClock();
    try {
      const text = await new Promise<string>((resolve, reject) => execFile('ss', ['-Hltn'], { timeout: 2000 }, (err, out) => (err ? reject(err) : resolve(out))));
      for (const line of text.split('\n')) {
        const f = line.trim().split(/\s+/);
        const local = f[3] ?? '';
        const port = Number(local.slice(local.lastIndexOf(':') + 1));
        const hit = ports.find(([, p]) => p === port);
        if (hit) this.acceptQueues.push({ at, name: hit[0], queued: Number(f[1]), backlog: Number(f[2]) });
      }
    } catch {
      // no ss: no accept-queue samples
    } finally {
      this.#ssBusy = false;
    }
  }
}

function toSample(at: number, pid: number, m: Metrics): ApiserverSample {
  const reasons = new Map<string, number>();
  for (const s of m) {
    if (s.name !== 'apiserver_flowcontrol_rejected_requests_total') continue;
    const k = `${s.labels['priority_level'] ?? ''}/${s.labels['reason'] ?? ''}`;
    reasons.set(k, (reasons.get(k) ?? 0) + s.value);
  }
  return {
    at,
    pid,
    inflightReadOnly: sum(m, 'apiserver_current_inflight_requests', { request_kind: 'readOnly' }),
    inflightMutating: sum(m, 'apiserver_current_inflight_requests', { request_kind: 'mutating' }),
    inqueueReadOnly: sum(m, 'apiserver_current_inqueue_requests', { request_kind: 'readOnly' }),
    inqueueMutating: sum(m, 'apiserver_current_inqueue_requests', { request_kind: 'mutating' }),
    executingSeats: sum(m, 'apiserver_flowcontrol_current_executing_seats'),
    executingRequests: sum(m, 'apiserver_flowcontrol_current_executing_requests'),
    inqueueRequestsApf: sum(m, 'apiserver_flowcontrol_current_inqueue_requests'),
    executingSeatsBy: sumBy(m, 'apiserver_flowcontrol_current_executing_seats', 'priority_level'),
    limitSeatsBy: sumBy(m, 'apiserver_flowcontrol_current_limit_seats', 'priority_level'),
    rejectedBy: Object.fromEntries(reasons),
  };
}

/** CPU seconds per name between two wall-clock instants (the ticks nearest inside the window). */
export function cpuBetween(ticks: readonly CpuTick[], from: number, to: number): Record<string, number> {
  const inside = ticks.filter((t) => t.at >= from && t.at <= to);
  const a = inside[0];
  const b = inside[inside.length - 1];
  const out: Record<string, number> = {};
  if (!a || !b) return out;
  for (const [k, v] of Object.entries(b.seconds)) out[k] = v - (a.seconds[k] ?? 0);
  return out;
}

/** APF rejections between two instants, by priority_level/reason, across apiserver restarts. */
export function rejectedBetween(samples: readonly ApiserverSample[], from: number, to: number): Record<string, number> {
  const out: Record<string, number> = {};
  const pids = new Set(samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.pid));
  for (const pid of pids) {
    const all = samples.filter((s) => s.pid === pid);
    const inside = all.filter((s) => s.at >= from && s.at <= to);
    const last = inside[inside.length - 1];
    if (!last) continue;
    // The baseline: the pid's last sample before the window; a process first seen inside the
    // window started there, so its counters count from 0.
    const before = all.filter((s) => s.at < from).pop();
    for (const [k, v] of Object.entries(last.rejectedBy)) {
      const d = v - (before?.rejectedBy[k] ?? 0);
      if (d > 0) out[k] = (out[k] ?? 0) + d;
    }
  }
  return out;
}

/**
 * System-wide TCP counters from /proc/net/netstat (TcpExt): connections a listener's accept queue
 * had no room for (ListenOverflows; the client's SYN is dropped and retransmitted after 1, 3, 7 s …)
 * and SYN retransmissions. Other processes on the machine count too.
 */
export function tcpCounters(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = (lines[i] ?? '').split(/\s+/);
      const values = (lines[i + 1] ?? '').split(/\s+/);
      if (names[0] !== 'TcpExt:') continue;
      names.forEach((n, j) => {
        if (n === 'ListenOverflows' || n === 'TCPSynRetrans') out[n] = Number(values[j]);
      });
    }
  } catch {
    // not Linux
  }
  return out;
}

/** Per listener: the longest accept queue seen in a window, and its backlog. */
export function acceptQueuePeaks(samples: readonly AcceptQueueSample[], from: number, to: number): Record<string, { peak: number; backlog: number; samples: number }> {
  const out: Record<string, { peak: number; backlog: number; samples: number }> = {};
  for (const s of samples) {
    if (s.at < from || s.at > to) continue;
    const o = (out[s.name] ??= { peak: 0, backlog: s.backlog, samples: 0 });
    o.peak = Math.max(o.peak, s.queued);
    o.samples++;
  }
  return out;
}
