// Fuzz test of the proxy as users run it (the kube-cache-proxy command, default flags, cache on) in
// front of the real apiserver: generated cases, over keep-alive HTTP/1.1 connections and HTTP/2
// sessions, many at once. Cacheable reads (GET/LIST of pods, configmaps, nodes, namespaces, services,
// endpointslices with resourceVersion unset/0/N, selectors, limit and continue) must be answered as
// the apiserver answers the same request; mutated paths, queries, headers and bodies, writes (all
// dryRun=All: the cluster holds still), watches must never get a 5xx the apiserver would not give
// for the same request; raw-socket cases (truncated requests, short bodies, stalls, disconnects,
// HTTP/2 resets) must leave the proxy up. Afterwards its heap (after GC, through the inspector) and
// the connections on its port return to their baseline.
//
// KCP_FUZZ_CASES (default 5000; 100000 for the full run), KCP_FUZZ_SEED (default 20261206),
// KCP_FUZZ_CONCURRENCY (default 48). A failure prints KCP_FUZZ_SEED=<s> KCP_FUZZ_CASE=<i>, which
// runs that case alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { sharedCluster } from '../helpers/env.js';
import { closeAgents } from '../helpers/http.js';
import { makeWorld, removeWorld, type World } from '../helpers/fuzz/fixture.js';
import { ProxyProcess } from '../helpers/fuzz/proxy-process.js';
import { Clients, type Reply, type Req, type Transport } from '../helpers/fuzz/clients.js';
import { describe as describeCase, makeCase, readReq, type FuzzCase } from '../helpers/fuzz/cases.js';
import { continueOf, difference, type Answer } from '../helpers/fuzz/compare.js';
import { rawCase } from '../helpers/fuzz/raw.js';
import type { Tokens } from '../helpers/fuzz/headers.js';
import { caseRng } from '../helpers/prng.js';

const cluster = sharedCluster();
const SEED = Number(process.env['KCP_FUZZ_SEED'] ?? 20261206);
const CASES = Number(process.env['KCP_FUZZ_CASES'] ?? 5000);
const ONLY = process.env['KCP_FUZZ_CASE'] === undefined ? undefined : Number(process.env['KCP_FUZZ_CASE']);
const CONCURRENCY = Number(process.env['KCP_FUZZ_CONCURRENCY'] ?? 48);
const log = (m: string) => process.stderr.write(`[fuzz] ${m}\n`);
/** CPU seconds a process has used (user + system), from /proc/<pid>/stat. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid ?? -1}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ca = readFileSync(cluster.info.caFile);
const direct = cluster.info.apiservers[0]?.url ?? '';
const tokens: Tokens = { admin: cluster.info.users.admin.token ?? '', viewer: cluster.info.users.viewer.token ?? '', nobody: cluster.info.users.nobody.token ?? '' };
const prefix = `fz${randomBytes(3).toString('hex')}`;
let world: World | undefined;
let proxy: ProxyProcess;

before(async () => {
  const t0 = Date.now();
  world = await makeWorld(cluster, prefix, SEED);
  proxy = new ProxyProcess([
    '--kubeconfig', cluster.info.users.admin.kubeconfig, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0',
    '--tls-cert-file', cluster.info.servingCertFile, '--tls-private-key-file', cluster.info.servingKeyFile, '--client-ca-file', cluster.info.caFile,
  ]);
  await proxy.ready();
  for (const deadline = Date.now() + 120_000; ;) {
    const r = await fetch(`${proxy.metricsUrl}/readyz`).catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > deadline) throw new Error('the proxy did not become ready');
    await sleep(100);
  }
  log(`objects made and the proxy ready in ${Date.now() - t0} ms (prefix ${prefix})`);
});

after(async () => {
  await proxy.stop();
  if (world) await removeWorld(cluster, world);
  await closeAgents();
});

interface Stats {
  readonly kinds: Map<string, number>;
  readonly statuses: Map<number, number>;
  readonly errors: Map<string, number>;
  compared: number;
  /** Reads that got no answer from the proxy nor from the apiserver. */
  bothFailed: number;
  comparedItems: number;
  retries: number;
  apiserver5xx: number;
  /** Reads compared without the apiserver's repeated first page (CompareOptions). */
  apiserverRepeats: number;
  readonly failures: string[];
}

const stats: Stats = { kinds: new Map(), statuses: new Map(), errors: new Map(), compared: 0, bothFailed: 0, comparedItems: 0, retries: 0, apiserver5xx: 0, apiserverRepeats: 0, failures: [] };
const bump = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);

function fail(c: FuzzCase, what: string): void {
  const line = `${describeCase(SEED, c)}\n    ${what}`;
  if (stats.failures.length < 50) stats.failures.push(line);
  if (stats.failures.length <= 10) log(`FAIL ${line}`);
}

async function fetchAll(clients: Clients, t: Transport | 'direct', c: Extract<FuzzCase, { kind: 'read' }>, headers?: Record<string, string>): Promise<Answer> {
  const pages: Array<Extract<Reply, { ok: true }>> = [];
  let token: string | undefined;
  for (let n = 0; n < 100; n++) {
    const req = readReq(c, token);
    const r = await clients.send(t, headers ? { ...req, headers } : req);
    if (!r.ok) return { ok: false, error: `${r.error} (status ${r.status ?? '-'})` };
    if (t !== 'direct') bump(stats.statuses, r.status);
    pages.push(r);
    token = continueOf(r);
    if (token === undefined) break;
  }
  return { ok: true, pages };
}

async function readCase(clients: Clients, c: Extract<FuzzCase, { kind: 'read' }>): Promise<void> {
  let diff: string | undefined;
  // See CompareOptions: the apiserver's repeated first page on a namespace-narrowed cluster-wide page.
  const param = (k: string) => c.query.params.find(([n]) => n === k)?.[1];
  const opts = {
    apiserverMayRepeatFirstPage: c.target.namespace === undefined && c.target.name === undefined && param('limit') !== undefined &&
      /(^|,)\s*metadata\.namespace\s*==?[^=]/.test(param('fieldSelector') ?? ''),
  };
  let counted = false;
  const putAside = () => { if (!counted) stats.apiserverRepeats++; counted = true; };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) {
      stats.retries++;
      await sleep(300 * attempt);
    }
    const p = await fetchAll(clients, c.transport, c);
    let d = await fetchAll(clients, 'direct', c);
    diff = difference(d, p, opts, putAside);
    // The cache answers JSON where the client also named JSON, and the apiserver its preferred type.
    const accept = c.headers['accept'] ?? '';
    if (diff?.startsWith('content-type') && p.ok && String(p.pages[0]?.headers['content-type']).startsWith('application/json') && /application\/json|\*\/\*/.test(accept)) {
      d = await fetchAll(clients, 'direct', c, { ...c.headers, accept: 'application/json' });
      diff = difference(d, p, opts, putAside);
    }
    if (diff === undefined) {
      // Both failed the same way (no answer from either): not a comparison of answers.
      if (!p.ok) stats.bothFailed++;
      else stats.compared++;
      return;
    }
    // Flow control refusing a burst is not a difference: only that is tried again.
    if (!(p.ok && p.pages.some((x) => x.status === 429))) break;
  }
  fail(c, `differs from the apiserver: ${diff ?? ''}`);
}

const errorKey = (e: string) => e.replace(/\d+/g, 'N').slice(0, 120);

async function sentWhole(clients: Clients, c: Extract<FuzzCase, { kind: 'garbage' | 'write' | 'watch' }>): Promise<void> {
  const r = await clients.send(c.transport, c.req);
  if (!r.ok) {
    bump(stats.errors, `${c.kind} ${c.transport}: ${errorKey(r.error)}`);
    if (r.status === undefined || r.status < 500) return;
  } else bump(stats.statuses, r.status);
  const status = r.status ?? 0;
  if (status < 500) return;
  const d = await clients.send('direct', { method: c.req.method, path: c.req.path, headers: c.req.headers, body: c.req.body, timeoutMs: c.req.timeoutMs ?? 60_000 } satisfies Req);
  if (d.status === status) {
    if (stats.apiserver5xx++ < 5) log(`a ${status} the apiserver gave too: ${describeCase(SEED, c)}`);
    return;
  }
  fail(c, `proxy ${status} ${r.ok ? r.body.toString('utf8', 0, 300) : r.error}; the apiserver ${d.status ?? (d.ok ? '' : d.error)} for the same request`);
}

const kindMs = new Map<string, number>();

async function runCase(clients: Clients, c: FuzzCase): Promise<void> {
  bump(stats.kinds, c.kind);
  const t0 = Date.now();
  try {
    await runCaseTimed(clients, c);
  } finally {
    kindMs.set(c.kind, (kindMs.get(c.kind) ?? 0) + Date.now() - t0);
  }
}

async function runCaseTimed(clients: Clients, c: FuzzCase): Promise<void> {
  if (c.kind === 'read') return readCase(clients, c);
  if (c.kind === 'raw') {
    const out = await rawCase(c.rng, world as World, { url: proxy.url, ca, token: tokens.admin });
    bump(stats.kinds, `raw: ${out.what}`);
    if (out.status !== undefined && out.status >= 500) fail(c, `${out.what}: the proxy answered ${out.status}`);
    return;
  }
  return sentWhole(clients, c);
}

const inflight = new Set<number>();

async function runRange(from: number, to: number): Promise<void> {
  const clients = new Clients(proxy.url, direct, ca, 4, CONCURRENCY);
  let next = from;
  let done = 0;
  const t0 = Date.now();
  let lastReport = t0;
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < to && !proxy.exit) {
        const i = next++;
        inflight.add(i);
        let c: FuzzCase = { kind: 'raw', index: i, rng: caseRng(SEED, i) };
        try {
          c = makeCase(SEED, i, world as World, tokens);
          await runCase(clients, c);
        } catch (err) {
          fail(c, `threw: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        }
        inflight.delete(i);
        done++;
        if (Date.now() - lastReport > 15_000) {
          lastReport = Date.now();
          log(`${done} of ${to - from} cases, ${(done / ((Date.now() - t0) / 1000)).toFixed(0)}/s, ${stats.failures.length} failures`);
        }
      }
    }));
  } finally {
    await clients.close();
  }
  if (proxy.exit) {
    assert.fail(`the proxy exited (${proxy.exit.code ?? proxy.exit.signal}) with cases ${[...inflight].join(', ')} in flight (seed ${SEED}); its last output:\n${proxy.tail.join('\n')}`);
  }
}

async function settle(what: string, port: number, baseline: number): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const open = proxy.connectionsOn(port);
    const gauge = await proxy.metric('kube_cache_proxy_client_connections');
    if (open <= baseline && gauge <= 0) return open;
    if (Date.now() > deadline) assert.fail(`${what}: ${open} connections on the proxy port (baseline ${baseline}), client_connections gauge ${gauge}`);
    await sleep(200);
  }
}

test(`fuzz: ${ONLY === undefined ? `${CASES} cases` : `case ${ONLY}`} (seed ${SEED})`, { timeout: 60 * 60_000 }, async () => {
  assert.ok(world);
  const port = Number(new URL(proxy.url).port);
  if (ONLY !== undefined) {
    const c = makeCase(SEED, ONLY, world, tokens);
    log(describeCase(SEED, c));
    await runRange(ONLY, ONLY + 1);
    log(`statuses ${JSON.stringify([...stats.statuses])}, errors ${JSON.stringify([...stats.errors])}`);
    assert.deepEqual(stats.failures, []);
    return;
  }
  // Warm-up (the proxy's lazily filled caches and pools), then the baseline with no client connected.
  const warm = Math.min(500, Math.floor(CASES / 10));
  await runRange(0, warm);
  const baseSockets = await settle('after the warm-up', port, 0);
  const baseHeap = await proxy.heapAfterGc();
  const baseRss = proxy.rssBytes();
  const baseAll = proxy.sockets();
  const baseSeries = await proxy.seriesCount();
  const apiserverPid = cluster.info.apiservers[0]?.pid;
  const cpu0 = { proxy: cpuSeconds(proxy.pid), apiserver: cpuSeconds(apiserverPid), test: process.cpuUsage() };
  const t0 = Date.now();
  await runRange(warm, CASES);
  const test = process.cpuUsage(cpu0.test);
  const cpu = { proxy: cpuSeconds(proxy.pid) - cpu0.proxy, apiserver: cpuSeconds(apiserverPid) - cpu0.apiserver, test: (test.user + test.system) / 1e6 };
  const seconds = (Date.now() - t0) / 1000;
  const openAfter = await settle('after the cases', port, baseSockets);
  const heap = await proxy.heapAfterGc();
  const rss = proxy.rssBytes();
  const series = await proxy.seriesCount();
  // Its connections to the apiserver stay in its pool while idle for up to 30 s (undici's keepAliveTimeout in proxy/backend.ts).
  let all = proxy.sockets();
  for (const deadline = Date.now() + 45_000; all > baseAll + 8 && Date.now() < deadline; all = proxy.sockets()) await sleep(500);
  const MiB = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  log(`${CASES - warm} cases in ${seconds.toFixed(1)} s (${((CASES - warm) / seconds).toFixed(0)}/s, concurrency ${CONCURRENCY}), after ${warm} warm-up cases`);
  log(`CPU seconds used: proxy ${cpu.proxy.toFixed(1)}, apiserver ${cpu.apiserver.toFixed(1)}, this test ${cpu.test.toFixed(1)}`);
  log(`kinds ${JSON.stringify([...stats.kinds].sort((a, b) => b[1] - a[1]))}`);
  log(`mean ms per case by kind ${JSON.stringify([...kindMs].map(([k, ms]) => [k, Math.round(ms / (stats.kinds.get(k) ?? 1))]))}`);
  log(`proxy statuses ${JSON.stringify([...stats.statuses].sort((a, b) => a[0] - b[0]))}`);
  log(`reads compared equal ${stats.compared}, no answer from either ${stats.bothFailed} (retries after a 429 ${stats.retries}; ${stats.apiserverRepeats} without the apiserver's repeated first page); 5xx the apiserver gave too ${stats.apiserver5xx}`);
  log(`exchanges that ended without a whole answer: ${JSON.stringify([...stats.errors].sort((a, b) => b[1] - a[1]).slice(0, 15))}`);
  log(`heap after GC ${MiB(baseHeap)} -> ${MiB(heap)}; RSS ${MiB(baseRss)} -> ${MiB(rss)}; sockets ${baseAll} -> ${all}; client connections on the port ${baseSockets} -> ${openAfter}; error log lines ${proxy.errorLines}; metrics series ${baseSeries} -> ${series}`);
  assert.deepEqual(stats.failures, [], `${stats.failures.length} failing cases`);
  assert.ok(stats.compared >= 0.2 * CASES, `only ${stats.compared} reads compared`);
  assert.ok(heap <= baseHeap + 48 * 1048576, `heap after GC grew from ${MiB(baseHeap)} to ${MiB(heap)}`);
  assert.ok(all <= baseAll + 8, `sockets grew from ${baseAll} to ${all}`);
  // Made-up resource paths must not grow the metrics registry without end (proxy/metrics.ts bounds the resource label).
  assert.ok(series <= baseSeries + 10_000, `metrics series grew from ${baseSeries} to ${series}`);
  assert.equal(proxy.exit, undefined, 'the proxy is up');
});
