// Part (B) of the several-apiservers benchmark: --clients client-go-like clients with
// --watches-per-client watches each, through a fresh proxy per protocol (HTTP/2: one connection per
// client; HTTP/1.1: one per watch). The watches are of configmaps, one namespace per watch of a
// client, from a resourceVersion the parent LISTed once, so the proxy's cache serves them and the
// apiservers are not what is measured. Measured: TCP connections established to the proxy's port
// (`ss`), the proxy's RSS (/proc) and V8 heap (its /metrics), the time until every watch had its
// response headers, and the delivery latency of writes to every watch of their namespace.
import { execFile } from 'node:child_process';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { Client, writeWithRetry } from './client.js';
import type { Protocol } from './backends-args.js';
import type { ConnCounts, ConnOpenReply, ConnReport, ConnRequest } from './backends-conn-clients.js';
import type { RestartEnv } from './backends-restart.js';
import { IpcChild } from './ipc-child.js';
import { rssBytes } from './proc.js';
import { sum } from './prom.js';
import { ProxyProcess } from './proxy-process.js';
import { latencyStats, round, sleep, type LatencyStats } from './stats.js';

export interface ProxyFootprint {
  readonly connections: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /** Client watches the cache serves (kube_cache_proxy_cache_watchers), to show they are the cache's. */
  readonly cacheWatchers: number;
  /** Requests in flight to the apiservers, long-running (the cache's own watches, forwarded ones). */
  readonly upstreamLong: number;
}

export interface ProtocolResult {
  readonly protocol: Protocol;
  /** Why the protocol was not measured (e.g. the proxy does not offer h2). */
  readonly skipped?: string;
  readonly clients?: number;
  readonly watches?: number;
  readonly opened?: number;
  readonly h2Sessions?: number;
  readonly establishSeconds?: number;
  readonly failures?: Readonly<Record<string, number>>;
  readonly firstFailure?: string;
  readonly idle?: ProxyFootprint;
  readonly loaded?: ProxyFootprint;
  /** Per write: deliveries expected (the watches of its namespace) and received. */
  readonly writes?: readonly { readonly expected: number; readonly received: number; readonly latency: LatencyStats }[];
  readonly latency?: LatencyStats;
  readonly streamsEnded?: Readonly<Record<string, number>>;
}

export interface ConnectionsResult {
  readonly proxyArgs: readonly string[];
  readonly protocols: readonly ProtocolResult[];
}

export const CONN_NAMESPACE = 'bench-conn';
const clock = (): number => performance.timeOrigin + performance.now();

/** Whether the server at `url` negotiates h2 by ALPN. */
export function offersH2(url: string, ca: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca, ALPNProtocols: ['h2', 'http/1.1'], servername: 'localhost' }, () => {
      resolve(s.alpnProtocol === 'h2');
      s.destroy();
    });
    s.on('error', () => resolve(false));
  });
}

/** Established TCP connections whose local port is `port` (the proxy's side of its clients' connections). */
export function establishedTo(port: number): Promise<number> {
  return new Promise((resolve, reject) => execFile('ss', ['-Htn', 'state', 'established', '(', 'sport', '=', `:${port}`, ')'], { maxBuffer: 64 << 20 }, (err, out) => {
    if (err) reject(err);
    else resolve(out.split('\n').filter((l) => l.trim() !== '').length);
  }));
}

async function footprint(proxy: ProxyProcess): Promise<ProxyFootprint> {
  const m = await proxy.metrics();
  return {
    connections: await establishedTo(Number(new URL(proxy.url).port)),
    rssBytes: rssBytes(proxy.pid),
    heapUsedBytes: sum(m, 'nodejs_heap_size_used_bytes'),
    heapTotalBytes: sum(m, 'nodejs_heap_size_total_bytes'),
    cacheWatchers: sum(m, 'kube_cache_proxy_cache_watchers'),
    upstreamLong: sum(m, 'kube_cache_proxy_backend_inflight_requests', { kind: 'long' }),
  };
}

async function createObjects(env: RestartEnv, admin: Client): Promise<void> {
  for (let j = 0; j < env.o.watchesPerClient; j++) {
    const ns = `${CONN_NAMESPACE}-${j}`;
    await writeWithRetry(admin, 'POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }));
    await writeWithRetry(admin, 'POST', `/api/v1/namespaces/${ns}/configmaps`, JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'timed' }, data: {} }));
  }
}

async function runProtocol(env: RestartEnv, protocol: Protocol, proxyArgs: readonly string[], admin: Client): Promise<ProtocolResult> {
  const { o, log } = env;
  const proxy = await ProxyProcess.start(env.cluster, join(env.dir, `proxy-connections-${protocol}.log`), proxyArgs);
  const workers: IpcChild<ConnRequest>[] = [];
  try {
    if (protocol === 'h2' && !(await offersH2(proxy.url, env.ca))) {
      log('  h2: the proxy does not negotiate h2 by ALPN; skipped');
      return { protocol, skipped: 'the proxy does not negotiate h2 by ALPN' };
    }
    await sleep(2000);
    const idle = await footprint(proxy);
    const through = new Client('proxy', proxy.url, { ca: Buffer.from(env.ca), token: env.token, connections: 1 });
    const list = await through.get(`/api/v1/namespaces/${CONN_NAMESPACE}-0/configmaps`, true);
    await through.close();
    if (list.status !== 200) throw new Error(`LIST through the proxy: ${list.status}`);
    const rv = String((JSON.parse(list.body?.toString('utf8') ?? '{}') as { metadata?: { resourceVersion?: unknown } }).metadata?.resourceVersion ?? '');
    const paths = Array.from({ length: o.watchesPerClient }, (_, j) => `/api/v1/namespaces/${CONN_NAMESPACE}-${j}/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=${rv}&timeoutSeconds=3600`);
    for (let w = 0; w < o.workers; w++) workers.push(new IpcChild<ConnRequest>(new URL('./backends-conn-clients.js', import.meta.url), 'connection clients', "a connection clients' process"));
    const per = (w: number) => Math.floor(o.clients / o.workers) + (w < o.clients % o.workers ? 1 : 0);
    log(`  ${protocol}: opening ${o.clients} clients × ${o.watchesPerClient} watches over ${o.workers} processes`);
    const started = performance.now();
    const replies = await Promise.all(workers.map((c, w) => c.call<ConnOpenReply>({ op: 'open', origin: proxy.url, ca: env.ca, token: env.token, protocol, clients: per(w), paths, concurrency: 25 })));
    const establishSeconds = (performance.now() - started) / 1000;
    const opened = replies.reduce((a, r) => a + r.opened, 0);
    const failures: Record<string, number> = {};
    for (const r of replies) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
    const firstFailure = replies.find((r) => r.firstFailure)?.firstFailure;
    log(`  ${protocol}: ${opened} watches in ${establishSeconds.toFixed(1)} s; failures ${JSON.stringify(failures)}${firstFailure ? ` (${firstFailure})` : ''}`);
    await sleep(5000);
    const loaded = await footprint(proxy);
    log(`  ${protocol}: ${loaded.connections} connections, RSS ${(loaded.rssBytes / 2 ** 20).toFixed(0)} MiB, heap ${(loaded.heapUsedBytes / 2 ** 20).toFixed(0)} MiB, cache watchers ${loaded.cacheWatchers}`);
    const writes: { expected: number; received: number; latency: LatencyStats }[] = [];
    const counts = async () => (await Promise.all(workers.map((c) => c.call<ConnCounts>({ op: 'counts' })))).reduce((a, c) => a + c.received, 0);
    for (let w = 0; w < o.writes; w++) {
      const ns = `${CONN_NAMESPACE}-${w % o.watchesPerClient}`;
      const before = await counts();
      const patch = JSON.stringify({ metadata: { annotations: { 'kcp-bench/sent': `${w}:${clock()}` } } });
      await writeWithRetry(admin, 'PATCH', `/api/v1/namespaces/${ns}/configmaps/timed`, patch, 'application/merge-patch+json');
      const deadline = Date.now() + 20_000;
      while ((await counts()) - before < o.clients && Date.now() < deadline) await sleep(200);
      await sleep(500);
    }
    const reports = await Promise.all(workers.map((c) => c.call<ConnReport>({ op: 'report' })));
    const all: number[] = [];
    for (let w = 0; w < o.writes; w++) {
      const l = reports.flatMap((r) => r.latencies[String(w)] ?? []);
      all.push(...l);
      writes.push({ expected: o.clients, received: l.length, latency: latencyStats(l) });
    }
    const streamsEnded: Record<string, number> = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.ended)) streamsEnded[k] = (streamsEnded[k] ?? 0) + v;
    const latency = latencyStats(all);
    log(`  ${protocol}: delivery p50 ${latency.p50Ms.toFixed(0)} ms, p99 ${latency.p99Ms.toFixed(0)} ms, max ${latency.maxMs.toFixed(0)} ms over ${all.length} deliveries`);
    return {
      protocol, clients: o.clients, watches: o.clients * o.watchesPerClient, opened,
      h2Sessions: replies.reduce((a, r) => a + r.h2Sessions, 0), establishSeconds: round(establishSeconds, 2),
      failures, ...(firstFailure ? { firstFailure } : {}), idle, loaded, writes, latency, streamsEnded,
    };
  } finally {
    await Promise.allSettled(workers.map((c) => c.stop()));
    await proxy.stop();
  }
}

export async function connectionsRun(env: RestartEnv): Promise<ConnectionsResult> {
  const c = env.cluster;
  const a0 = c.info.apiservers[0];
  if (!a0) throw new Error('no apiserver');
  const admin = new Client('admin', a0.url, { ca: Buffer.from(env.ca), token: env.token, connections: 4 });
  const proxyArgs = [...c.info.apiservers.flatMap((a) => ['--upstream', a.url]), ...env.o.proxyArgs];
  try {
    await createObjects(env, admin);
    const protocols: ProtocolResult[] = [];
    for (const p of env.o.protocols) protocols.push(await runProtocol(env, p, proxyArgs, admin));
    return { proxyArgs, protocols };
  } finally {
    await admin.close();
  }
}
