// What the phases of `npm run bench` (bench/run.ts) share: the options, the cluster, the clients, the
// proxy of the mode being measured, the processes whose CPU is counted, and the log.
import type { TestCluster } from '../test/cluster/cluster.js';
import type { BenchOptions } from './args.js';
import type { Client } from './client.js';
import type { Layout } from './objects.js';
import { parseMetrics, type Metrics } from './prom.js';
import type { ProxyProcess } from './proxy-process.js';

export const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

export interface Env {
  readonly o: BenchOptions;
  readonly layout: Layout;
  readonly cluster: TestCluster;
  readonly direct: Client;
  readonly viaProxy: Client;
  readonly proxy: ProxyProcess;
  readonly pids: Readonly<Record<string, number>>;
  /** Called with each measured proxy round of an indexed case: [from, to] in µs of the monotonic clock (for the CPU profile). */
  readonly indexedWindow: (fromUs: number, toUs: number) => void;
}

/** µs of the monotonic clock: the clock of V8's CPU profiles, in every process of the machine. */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * The apiserver's request counters (apiserver_request_total) from its /metrics: what the proxy
 * costs it, by verb and resource. Scraped outside the CPU-measured windows.
 */
export async function apiserverRequests(direct: Client): Promise<Metrics> {
  const r = await direct.get('/metrics', true);
  if (r.status !== 200 || !r.body) throw new Error(`apiserver /metrics: ${r.status}`);
  return parseMetrics(r.body.toString('utf8').split('\n').filter((l) => l.startsWith('apiserver_request_total{')).join('\n'));
}

/** The review resources a proxy in local mode posts (TokenReview, SubjectAccessReview). */
export const REVIEW_RESOURCES = ['tokenreviews', 'subjectaccessreviews'] as const;
