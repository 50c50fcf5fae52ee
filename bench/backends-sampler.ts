// What the rolling-restart benchmark samples every second: the proxy's per-backend metrics (what it
// claims), and each apiserver's own /metrics (what the apiservers saw), so that a share is proven
// where the requests land. From the apiservers only the benchmark's own resource counts
// (podtemplates: nothing else in the cluster reads or watches it, while the apiservers' own
// informers and the proxy's cache watch most other resources): apiserver_request_total of its GETs
// and LISTs, and apiserver_longrunning_requests of its WATCHes.
import { request, type Agent } from 'undici';
import { parseMetrics, sum, sumBy } from './prom.js';
import type { ProxyProcess } from './proxy-process.js';

export const LOAD_RESOURCE = 'podtemplates';

export interface ProxySample {
  /** Cumulative answers per apiserver (index), all codes. */
  readonly answered: readonly number[];
  /** Cumulative answers per apiserver with a code other than 2xx. */
  readonly notOk: readonly number[];
  readonly inflightShort: readonly number[];
  readonly inflightLong: readonly number[];
  readonly healthy: readonly number[];
  readonly imbalance: number | null;
  readonly reshuffles: Readonly<Record<string, number>>;
  readonly relists: Readonly<Record<string, number>>;
  readonly watchRestarts: number;
}

export interface ApiserverSample {
  /** 0 while the apiserver is down. */
  readonly pid: number;
  /** False when down or the scrape failed (the counts are then 0). */
  readonly ok: boolean;
  /** Cumulative GETs and LISTs of podtemplates since the process started, and those not 2xx. */
  readonly short: number;
  readonly shortNotOk: number;
  /** podtemplates WATCHes open now. */
  readonly watches: number;
}

export interface BackendsSample {
  /** Wall-clock ms. */
  readonly at: number;
  readonly proxy: ProxySample | null;
  readonly apiservers: readonly ApiserverSample[];
}

export interface ApiserverTarget {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly pid: number;
}

const wallClock = (): number => performance.timeOrigin + performance.now();

/** The apiserver index a proxy `backend` label names (it holds the apiserver's host:port), or -1. */
export function backendIndex(label: string, apiservers: readonly ApiserverTarget[]): number {
  return apiservers.findIndex((a) => label.includes(`${a.host}:${a.port}`));
}

function perApiserver(by: Readonly<Record<string, number>>, apiservers: readonly ApiserverTarget[]): number[] {
  const out = apiservers.map(() => 0);
  for (const [label, v] of Object.entries(by)) {
    const i = backendIndex(label, apiservers);
    if (i >= 0) out[i] = (out[i] ?? 0) + v;
  }
  return out;
}

export class BackendsSampler {
  readonly samples: BackendsSample[] = [];
  failedProxyScrapes = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(
    readonly proxy: ProxyProcess,
    readonly apiservers: () => readonly ApiserverTarget[],
    readonly token: string,
    readonly agent: Agent,
  ) {}

  start(periodMs = 1000): void {
    this.#timer = setInterval(() => void this.tick(), periodMs);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    const at = wallClock();
    try {
      const targets = this.apiservers();
      const [proxy, ...apiservers] = await Promise.all([this.#proxy(targets), ...targets.map((t) => this.#apiserver(t))]);
      this.samples.push({ at, proxy, apiservers });
    } finally {
      this.#busy = false;
    }
  }

  async #proxy(targets: readonly ApiserverTarget[]): Promise<ProxySample | null> {
    try {
      const m = await this.proxy.metrics();
      const byCode = m.filter((s) => s.name === 'kube_cache_proxy_backend_requests_total');
      const notOk: Record<string, number> = {};
      for (const s of byCode) if (!/^2\d\d$/.test(s.labels['code'] ?? '')) notOk[s.labels['backend'] ?? ''] = (notOk[s.labels['backend'] ?? ''] ?? 0) + s.value;
      const imbalance = m.find((s) => s.name === 'kube_cache_proxy_backend_imbalance');
      return {
        answered: perApiserver(sumBy(m, 'kube_cache_proxy_backend_requests_total', 'backend'), targets),
        notOk: perApiserver(notOk, targets),
        inflightShort: perApiserver(sumBy(m, 'kube_cache_proxy_backend_inflight_requests', 'backend', { kind: 'short' }), targets),
        inflightLong: perApiserver(sumBy(m, 'kube_cache_proxy_backend_inflight_requests', 'backend', { kind: 'long' }), targets),
        healthy: perApiserver(sumBy(m, 'kube_cache_proxy_backend_healthy', 'backend'), targets),
        imbalance: imbalance && Number.isFinite(imbalance.value) ? imbalance.value : imbalance ? 1e9 : null,
        reshuffles: sumBy(m, 'kube_cache_proxy_reshuffles_total', 'reason'),
        relists: sumBy(m, 'kube_cache_proxy_cache_relists_total', 'reason'),
        watchRestarts: sum(m, 'kube_cache_proxy_cache_watch_restarts_total'),
      };
    } catch {
      this.failedProxyScrapes++;
      return null;
    }
  }

  async #apiserver(t: ApiserverTarget): Promise<ApiserverSample> {
    const failed = { pid: t.pid, ok: false, short: 0, shortNotOk: 0, watches: 0 };
    if (!t.pid) return failed;
    try {
      const res = await request(`${t.url}/metrics`, { dispatcher: this.agent, headers: { authorization: `Bearer ${this.token}` }, headersTimeout: 3000, bodyTimeout: 3000 });
      const text = await res.body.text();
      if (res.statusCode !== 200) return failed;
      const kept = text.split('\n').filter((l) => l.includes(`resource="${LOAD_RESOURCE}"`) && (l.startsWith('apiserver_request_total{') || l.startsWith('apiserver_longrunning_requests{'))).join('\n');
      const m = parseMetrics(kept);
      let short = 0;
      let shortNotOk = 0;
      for (const s of m) {
        if (s.name !== 'apiserver_request_total' || (s.labels['verb'] !== 'GET' && s.labels['verb'] !== 'LIST')) continue;
        short += s.value;
        if (!/^2\d\d$/.test(s.labels['code'] ?? '')) shortNotOk += s.value;
      }
      return { pid: t.pid, ok: true, short, shortNotOk, watches: sum(m, 'apiserver_longrunning_requests', { verb: 'WATCH' }) };
    } catch {
      return failed;
    }
  }
}
