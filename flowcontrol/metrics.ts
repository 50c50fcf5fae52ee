// kube_cache_proxy_flowcontrol_* metrics, created on a registry it is given. Labels are bounded by
// the configuration: level and rule names, and a fixed set of refusal reasons.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FlowControlObserver, LevelStats } from './flow-control.js';

export function createFlowControlMetrics(registry: Registry, stats: () => readonly LevelStats[]): FlowControlObserver {
  const admitted = new Counter({
    name: 'kube_cache_proxy_flowcontrol_admitted_total',
    help: 'Requests admitted by flow control, by level (the rule\'s level) and rule.',
    labelNames: ['level', 'rule'] as const,
    registers: [registry],
  });
  const queued = new Counter({
    name: 'kube_cache_proxy_flowcontrol_queued_total',
    help: 'Requests that had to wait in a level\'s queue, by level and rule.',
    labelNames: ['level', 'rule'] as const,
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'kube_cache_proxy_flowcontrol_rejected_total',
    help: 'Requests refused with 429, by the refusing level, rule and reason (queue_full, queue_timeout, watches).',
    labelNames: ['level', 'rule', 'reason'] as const,
    registers: [registry],
  });
  const retryAfter = new Histogram({
    name: 'kube_cache_proxy_flowcontrol_retry_after_seconds',
    help: 'Retry-After values sent with refusals, by refusing level.',
    labelNames: ['level'] as const,
    buckets: [1, 2, 4, 8, 16, 32],
    registers: [registry],
  });
  const wait = new Histogram({
    name: 'kube_cache_proxy_flowcontrol_queue_wait_seconds',
    help: 'Time from arrival to admission (0 for requests admitted at once), by level.',
    labelNames: ['level'] as const,
    buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const gauge = (name: string, help: string, value: (s: LevelStats) => number | undefined) => new Gauge({
    name, help, labelNames: ['level'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const s of stats()) {
        const v = value(s);
        if (v !== undefined) this.set({ level: s.level }, v);
      }
    },
  });
  gauge('kube_cache_proxy_flowcontrol_inflight_seats', 'Seats held by requests in flight, by level (long-running requests hold none).', (s) => s.inflight);
  gauge('kube_cache_proxy_flowcontrol_watches', 'Long-running requests (watch, exec, attach, port-forward, logs, proxy) admitted and not yet ended, by level.', (s) => s.watches);
  gauge('kube_cache_proxy_flowcontrol_queued_requests', 'Requests waiting in a level\'s queue now.', (s) => s.queued);
  gauge('kube_cache_proxy_flowcontrol_flows', 'Flows a level keeps state for (active or with a bucket still refilling).', (s) => s.flows);
  gauge('kube_cache_proxy_flowcontrol_bucket_tokens', 'Tokens available in the level\'s token bucket (levels with qps only; may be negative after an expensive request).', (s) => s.tokens);
  gauge('kube_cache_proxy_flowcontrol_congestion_tokens', 'Tokens left in the level\'s congestion bucket (capacity when no refusals; fewer tokens mean a longer Retry-After).', (s) => s.congestionTokens);
  return {
    admitted(level, rule, waitedMs) {
      admitted.inc({ level, rule });
      wait.observe({ level }, waitedMs / 1000);
    },
    queued(level, rule) {
      queued.inc({ level, rule });
    },
    rejected(level, rule, reason, retryAfterSeconds) {
      rejected.inc({ level, rule, reason });
      retryAfter.observe({ level }, retryAfterSeconds);
    },
  };
}
