// `kcluster throttle` (test/cluster/kcluster/throttle.go): N client-go clients, released at one
// barrier, each GETting one path through client-go's REST client with its own Retry-After handling;
// every attempt is recorded by a wrapping RoundTripper. This runs it and types its JSON report.
import { execFile } from 'node:child_process';
import type { TestCluster } from '../cluster/cluster.js';

export interface ThrottleAttempt {
  /** 1, 2, … per client. */
  readonly n: number;
  /** Milliseconds since the tool started: handed to the transport / response headers received. */
  readonly startMs: number;
  readonly endMs: number;
  /** 0 when the transport failed (see error). */
  readonly status: number;
  /** The Retry-After header as sent, "" when absent. */
  readonly retryAfter: string;
  /** It went out on a connection opened earlier. */
  readonly reused: boolean;
  readonly error?: string;
}

export interface ThrottleClient {
  readonly client: number;
  readonly ok: boolean;
  /** The final status code client-go reports. */
  readonly code: number;
  readonly error?: string;
  /** errors.IsTooManyRequests(err) */
  readonly isTooManyRequests: boolean;
  /** errors.SuggestsClientDelay(err) */
  readonly suggestsClientDelay: number;
  readonly suggestsClientDelayOk: boolean;
  /** The *metav1.Status behind the error (errors.APIStatus), null when none. */
  readonly status: { status: string; reason: string; code: number; message: string; retryAfterSeconds: number | null } | null;
  readonly warmupStatus?: number;
  readonly attempts: readonly ThrottleAttempt[];
}

export interface ThrottleReport {
  readonly path: string;
  readonly clients: number;
  readonly maxRetries: number;
  /** When the barrier released the clients / the last one finished (ms since the tool started). */
  readonly barrierMs: number;
  readonly endMs: number;
  readonly results: readonly ThrottleClient[];
}

export interface ThrottleOptions {
  readonly kubeconfig: string;
  readonly server: string;
  readonly path: string;
  readonly clients: number;
  /** client-go Request.MaxRetries; unset: client-go's default (10). */
  readonly maxRetries?: number;
  /** GET this path once per client before the barrier, so every client has its connection open. */
  readonly warmupPath?: string;
  readonly userAgent?: string;
  readonly timeoutSeconds?: number;
}

export function runThrottleTool(cluster: TestCluster, o: ThrottleOptions): Promise<ThrottleReport> {
  const args = ['throttle', '--kubeconfig', o.kubeconfig, '--server', o.server, '--path', o.path, '--clients', String(o.clients)];
  if (o.maxRetries !== undefined) args.push('--max-retries', String(o.maxRetries));
  if (o.warmupPath !== undefined) args.push('--warmup-path', o.warmupPath);
  if (o.userAgent !== undefined) args.push('--user-agent', o.userAgent);
  args.push('--timeout', `${o.timeoutSeconds ?? 120}s`);
  return new Promise((resolve, reject) => {
    execFile(cluster.info.kcluster, args, { maxBuffer: 512 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`kcluster ${args.join(' ')}: ${err.message}\n${stderr.slice(-2000)}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout) as ThrottleReport);
      } catch (e) {
        reject(new Error(`kcluster throttle: unreadable output (${String(e)}): ${stdout.slice(0, 500)} ${stderr.slice(-1000)}`));
      }
    });
  });
}

/** Retry-After values (seconds) of the 429s in the report's attempts, counted. */
export function retryAfterCounts(r: ThrottleReport): Map<number, number> {
  const out = new Map<number, number>();
  for (const c of r.results) for (const a of c.attempts) if (a.status === 429) out.set(Number(a.retryAfter), (out.get(Number(a.retryAfter)) ?? 0) + 1);
  return new Map([...out].sort((a, b) => a[0] - b[0]));
}
