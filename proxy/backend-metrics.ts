// Metrics of the apiservers behind the proxy. The `backend` label is the apiserver's host:port,
// from --upstream or discovery (a bounded set); series of an apiserver that leaves are removed.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RequestKind } from './balancer.js';

export interface BackendMetrics {
  answered(backend: string, code: number): void;
  error(backend: string, reason: string): void;
  inflight(backend: string, kind: RequestKind, delta: number): void;
  health(backend: string, healthy: boolean): void;
  ejected(backend: string, reason: string): void;
  readmitted(backend: string): void;
  removed(backend: string): void;
  /** A request sent to another apiserver after `reason` (a connection error, or a 429 passed over). */
  failover(reason: string): void;
  /** Connections or watches ended to spread load anew, by reason. */
  recycled(reason: string, n?: number): void;
}

/** The share of answers per apiserver over the last minute, in WINDOW_BUCKETS buckets. */
const BUCKET_MS = 6_000;
const WINDOW_BUCKETS = 10;

class ShareWindow {
  readonly #buckets = new Map<string, number[]>();
  #bucketAt = 0;
  #index = 0;

  add(backend: string, now: number): void {
    this.#rotate(now);
    let b = this.#buckets.get(backend);
    if (!b) {
      b = new Array<number>(WINDOW_BUCKETS).fill(0);
      this.#buckets.set(backend, b);
    }
    b[this.#index] = (b[this.#index] ?? 0) + 1;
  }

  delete(backend: string): void {
    this.#buckets.delete(backend);
  }

  /** max/min of the answers per apiserver in the window; 1 when balanced, NaN without traffic. */
  imbalance(now: number, backends: readonly string[]): number {
    this.#rotate(now);
    if (backends.length === 0) return NaN;
    const totals = backends.map((k) => (this.#buckets.get(k) ?? []).reduce((a, n) => a + n, 0));
    const max = Math.max(...totals);
    const min = Math.min(...totals);
    if (max === 0) return NaN;
    return min === 0 ? Infinity : max / min;
  }

  #rotate(now: number): void {
    const steps = Math.min(WINDOW_BUCKETS, Math.floor((now - this.#bucketAt) / BUCKET_MS));
    if (this.#bucketAt === 0) {
      this.#bucketAt = now;
      return;
    }
    for (let i = 0; i < steps; i++) {
      this.#index = (this.#index + 1) % WINDOW_BUCKETS;
      for (const b of this.#buckets.values()) b[this.#index] = 0;
    }
    if (steps > 0) this.#bucketAt += steps * BUCKET_MS;
    if (now - this.#bucketAt >= BUCKET_MS) this.#bucketAt = now;
  }
}

export function createBackendMetrics(registry: Registry, healthyBackends: () => readonly string[]): BackendMetrics {
  const requests = new Counter({
    name: 'kube_cache_proxy_backend_requests_total',
    help: 'Answers from each apiserver (the proxy\'s forwarded requests, probes and cache traffic), by HTTP code.',
    labelNames: ['backend', 'code'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'kube_cache_proxy_backend_errors_total',
    help: 'Requests to an apiserver that got no answer, by reason (connection_refused, connection_reset, timeout, tls, …).',
    labelNames: ['backend', 'reason'] as const,
    registers: [registry],
  });
  const inflight = new Gauge({
    name: 'kube_cache_proxy_backend_inflight_requests',
    help: 'Requests in flight to each apiserver, by kind (short, or long: watches and upgrades).',
    labelNames: ['backend', 'kind'] as const,
    registers: [registry],
  });
  const healthy = new Gauge({
    name: 'kube_cache_proxy_backend_healthy',
    help: '1 while the apiserver is in rotation, 0 while ejected.',
    labelNames: ['backend'] as const,
    registers: [registry],
  });
  const ejections = new Counter({
    name: 'kube_cache_proxy_backend_ejections_total',
    help: 'Apiservers taken out of rotation, by reason (connection_refused, connection_errors, server_errors, throttled, readyz).',
    labelNames: ['backend', 'reason'] as const,
    registers: [registry],
  });
  const readmissions = new Counter({
    name: 'kube_cache_proxy_backend_readmissions_total',
    help: 'Ejected apiservers brought back after passing their health checks.',
    labelNames: ['backend'] as const,
    registers: [registry],
  });
  const failovers = new Counter({
    name: 'kube_cache_proxy_backend_failovers_total',
    help: 'Requests sent to another apiserver, by why the previous one did not do (a connection error, or throttled: a 429 passed over).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const recycles = new Counter({
    name: 'kube_cache_proxy_reshuffles_total',
    help: 'Connections and watches ended so that load spreads anew, by reason (upstream_connection_max_age, forwarded_watch_max_age; client connections: kube_cache_proxy_client_connection_recycles_total).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // The label sets used per apiserver, so that its series can all be removed when it leaves.
  const seen = new Map<string, Map<string, () => void>>();
  const track = (backend: string, id: string, remove: () => void) => {
    let m = seen.get(backend);
    if (!m) seen.set(backend, (m = new Map()));
    if (!m.has(id)) m.set(id, remove);
  };
  const window = new ShareWindow();
  new Gauge({
    name: 'kube_cache_proxy_backend_imbalance',
    help: 'Answers of the busiest healthy apiserver over those of the least busy one, over the last minute (1: even; +Inf: one got none).',
    registers: [registry],
    collect() {
      const v = window.imbalance(Date.now(), healthyBackends());
      if (Number.isNaN(v)) this.reset();
      else this.set(v);
    },
  });
  return {
    answered(backend, code) {
      const labels = { backend, code: String(code) };
      requests.inc(labels);
      track(backend, `requests ${code}`, () => requests.remove(labels));
      window.add(backend, Date.now());
    },
    error(backend, reason) {
      const labels = { backend, reason };
      errors.inc(labels);
      track(backend, `errors ${reason}`, () => errors.remove(labels));
    },
    inflight(backend, kind, delta) {
      const labels = { backend, kind };
      inflight.inc(labels, delta);
      track(backend, `inflight ${kind}`, () => inflight.remove(labels));
    },
    health(backend, ok) {
      healthy.set({ backend }, ok ? 1 : 0);
    },
    ejected(backend, reason) {
      const labels = { backend, reason };
      ejections.inc(labels);
      track(backend, `ejections ${reason}`, () => ejections.remove(labels));
      healthy.set({ backend }, 0);
    },
    readmitted(backend) {
      readmissions.inc({ backend });
      healthy.set({ backend }, 1);
    },
    removed(backend) {
      for (const remove of seen.get(backend)?.values() ?? []) remove();
      seen.delete(backend);
      healthy.remove({ backend });
      readmissions.remove({ backend });
      window.delete(backend);
    },
    failover(reason) {
      failovers.inc({ reason });
    },
    recycled(reason, n = 1) {
      recycles.inc({ reason }, n);
    },
  };
}
