// Flow control through the proxy against the real apiserver (cache on, as users run it): a flow's
// rate under a flood, fairness between two flows of one level, control-plane requests beside a
// kubelet flood, the 429 itself, and reloading the configuration under load.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Client, Pool, request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { scrape, total } from '../helpers/cache-workload.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { runProxy } from '../../proxy/main.js';
import { DEFAULT_FLOW_CONTROL } from '../../flowcontrol/defaults.js';
import { parseFlowControlConfig, type FlowControlConfig } from '../../flowcontrol/config.js';
import { loadFlowControlConfig } from '../../proxy/flow-control-source.js';

const cluster = sharedCluster();
const ca = readFileSync(cluster.info.caFile);
const token = (u: 'admin' | 'viewer' | 'nobody') => cluster.info.users[u].token ?? '';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pools: Array<Pool | Client> = [];
const proxies: TestProxy[] = [];

after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await Promise.all(pools.map((p) => p.close()));
});

function fc(doc: unknown): FlowControlConfig {
  return parseFlowControlConfig(doc, DEFAULT_FLOW_CONTROL);
}

async function proxyWith(flowControl: FlowControlConfig): Promise<TestProxy> {
  const p = await startTestProxy(cluster, { cache: cacheConfigFrom({}), flowControl });
  proxies.push(p);
  await waitReady(p.metricsUrl);
  return p;
}

async function waitReady(metricsUrl: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = await fetch(`${metricsUrl}/readyz`);
    await r.text();
    if (r.status === 200) return;
    await sleep(100);
  }
  throw new Error('the proxy did not become ready');
}

function pool(url: string, connections = 64): Pool {
  const p = new Pool(url, { connections, connect: { ca } });
  pools.push(p);
  return p;
}

interface Shot {
  readonly status: number;
  readonly sentMs: number;
  readonly ms: number;
  readonly retryAfter: string | undefined;
  readonly body: string;
}

async function shoot(p: Pool | Client, path: string, o: { token: string; userAgent: string }, t0: number): Promise<Shot> {
  const sent = performance.now();
  const res = await p.request({ path, method: 'GET', headers: { authorization: `Bearer ${o.token}`, 'user-agent': o.userAgent, accept: 'application/json' } });
  const body = await res.body.text();
  const ra = res.headers['retry-after'];
  return { status: res.statusCode, sentMs: sent - t0, ms: performance.now() - sent, retryAfter: typeof ra === 'string' ? ra : undefined, body };
}

/** Offers `qps` requests a second for `seconds` (in 10 ms batches) and returns every answer. */
async function offer(p: Pool, path: string, o: { token: string; userAgent: string; qps: number; seconds: number }): Promise<Shot[]> {
  const t0 = performance.now();
  const shots: Array<Promise<Shot>> = [];
  const batches = o.seconds * 100;
  const perBatch = o.qps / 100;
  let owed = 0;
  for (let b = 0; b < batches; b++) {
    const due = t0 + b * 10;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    owed += perBatch;
    for (; owed >= 1; owed--) shots.push(shoot(p, path, o, t0));
  }
  return Promise.all(shots);
}

const count = (shots: readonly Shot[], status: number) => shots.filter((s) => s.status === status).length;

test('a flow limited to 50 QPS gets 50 ± 10% over 5 s while 500 QPS are offered; the refusals are Status 429s', async () => {
  const proxy = await proxyWith(fc({
    levels: [{ name: 'limited', qps: 50, burst: 10, flowBy: 'user', queue: { length: 0 } }, { name: 'default' }],
    rules: [{ name: 'ratio', level: 'limited', userAgents: [{ prefix: 'ratio-test/' }] }],
    defaultLevel: 'default',
  }));
  const p = pool(proxy.url);
  // A cached resource's LIST: the admitted ones are answered from the cache (after their probe).
  const shots = await offer(p, '/api/v1/namespaces/default/configmaps', { token: token('admin'), userAgent: 'ratio-test/1.0', qps: 500, seconds: 5 });
  const ok = count(shots, 200);
  const refused = count(shots, 429);
  assert.equal(ok + refused, shots.length, `only 200s and 429s: ${[...new Set(shots.map((s) => s.status))].join(',')}`);
  // The load generator shares the machine (and this process) with the proxy: rates are taken over
  // the time the requests actually took to send.
  const seconds = Math.max(...shots.map((s) => s.sentMs)) / 1000;
  assert.ok(shots.length / seconds >= 300, `offered only ${(shots.length / seconds).toFixed(0)} QPS`);
  const want = 50 * seconds + 10;
  assert.ok(Math.abs(ok - want) <= 0.1 * want, `admitted ${ok} in ${seconds.toFixed(2)} s (want ${want.toFixed(0)} ± 10%: 50 QPS and a burst of 10)`);
  const r = shots.find((s) => s.status === 429);
  assert.ok(r);
  assert.deepEqual(JSON.parse(r.body), {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Too many requests, please try again later.',
    reason: 'TooManyRequests', details: { retryAfterSeconds: Number(r.retryAfter) }, code: 429,
  });
  // 450 refusals a second leave the congestion bucket above half: every client is told 1 s.
  assert.deepEqual([...new Set(shots.filter((s) => s.status === 429).map((s) => s.retryAfter))], ['1']);
  const m = await scrape(proxy.metricsUrl);
  assert.equal(total(m, 'kube_cache_proxy_flowcontrol_rejected_total', (l) => l['level'] === 'limited' && l['rule'] === 'ratio' && l['reason'] === 'queue_full'), refused);
  assert.equal(total(m, 'kube_cache_proxy_flowcontrol_admitted_total', (l) => l['level'] === 'limited'), ok);
  assert.equal(total(m, 'kube_cache_proxy_requests_total', (l) => l['code'] === '429'), refused);
});

test('two flows in one level share it fairly: 300 QPS and 100 QPS offered, 100 QPS passed, ~50 each', async () => {
  const proxy = await proxyWith(fc({
    levels: [{ name: 'shared', qps: 100, burst: 10, flowBy: 'user', queue: { length: 200, lengthPerFlow: 20, maxWaitSeconds: 2 } }, { name: 'default' }],
    rules: [{ name: 'fair', level: 'shared', userAgents: [{ prefix: 'fair-test/' }] }],
    defaultLevel: 'default',
  }));
  const p = pool(proxy.url, 128);
  // Two users (two credentials); /version is answered by the apiserver for any authenticated user.
  const [a, b] = await Promise.all([
    offer(p, '/version', { token: token('admin'), userAgent: 'fair-test/a', qps: 300, seconds: 5 }),
    offer(p, '/version', { token: token('nobody'), userAgent: 'fair-test/b', qps: 100, seconds: 5 }),
  ]);
  const okA = count(a, 200);
  const okB = count(b, 200);
  assert.equal(okA + count(a, 429), a.length);
  assert.equal(okB + count(b, 429), b.length);
  // 100 a second while offered (the queue drains up to 2 s more); each flow gets about half.
  const seconds = Math.max(...[...a, ...b].map((s) => s.sentMs)) / 1000;
  assert.ok(okA + okB >= 90 * seconds && okA + okB <= 100 * (seconds + 2) + 10, `passed ${okA + okB} in ${seconds.toFixed(2)} s`);
  const share = okB / (okA + okB);
  assert.ok(share >= 0.4 && share <= 0.6, `flow B (a third of A's load) got ${okB} of ${okA + okB}: not fair`);
});

test('a flood of kubelet/ LISTs does not slow kube-controller-manager/ requests: they are never queued or refused', async () => {
  // The global read level is small, so that without the kubelets level the flood would fill it.
  const proxy = await proxyWith(fc({
    global: { readOnly: { maxInflight: 20, queue: { length: 1000, maxWaitSeconds: 10 } } },
    levels: [
      { name: 'control-plane', maxInflight: 50, flowBy: 'userAgent' },
      { name: 'kubelets', maxInflight: 8, flowBy: 'user', queue: { length: 500, maxWaitSeconds: 5 } },
      { name: 'default' },
    ],
    rules: [
      { name: 'kcm', level: 'control-plane', userAgents: [{ prefix: 'kube-controller-manager/' }] },
      { name: 'kubelets', level: 'kubelets', userAgents: [{ prefix: 'kubelet/' }] },
    ],
    defaultLevel: 'default',
  }));
  const p = pool(proxy.url, 200);
  const kcm = async (n: number): Promise<number[]> => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = await shoot(p, '/api/v1/namespaces/default', { token: token('admin'), userAgent: 'kube-controller-manager/v1.37.2', }, 0);
      assert.equal(s.status, 200, s.body);
      ms.push(s.ms);
    }
    return ms;
  };
  const quiet = await kcm(50);
  // The flood: 150 concurrent LISTs of a resource the proxy does not cache (served by the apiserver), for 4 s.
  let stop = false;
  const flood = Array.from({ length: 150 }, async () => {
    let n = 0;
    while (!stop) {
      const s = await shoot(p, '/api/v1/namespaces/kube-system/secrets', { token: token('admin'), userAgent: 'kubelet/v1.37.2 (linux/amd64)' }, 0);
      assert.ok(s.status === 200 || s.status === 429, `kubelet LIST: ${s.status}`);
      n++;
    }
    return n;
  });
  await sleep(500);
  const before = await scrape(proxy.metricsUrl);
  const busy = await kcm(100);
  const after = await scrape(proxy.metricsUrl);
  stop = true;
  const flooded = (await Promise.all(flood)).reduce((x, y) => x + y, 0);
  const delta = (name: string, where: (l: Readonly<Record<string, string>>) => boolean) => total(after, name, where) - total(before, name, where);
  assert.ok(delta('kube_cache_proxy_flowcontrol_queued_total', (l) => l['level'] === 'kubelets') > 100, 'the kubelets were held back');
  assert.equal(delta('kube_cache_proxy_flowcontrol_queued_total', (l) => l['rule'] === 'kcm'), 0, 'controller-manager requests queued');
  assert.equal(delta('kube_cache_proxy_flowcontrol_rejected_total', (l) => l['rule'] === 'kcm'), 0);
  assert.equal(delta('kube_cache_proxy_flowcontrol_admitted_total', (l) => l['rule'] === 'kcm'), 100);
  const p99 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * 0.99)] ?? 0;
  const p50 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * 0.5)] ?? 0;
  // Latency: the proxy and the apiserver share two cores with the flood, so only a loose bound.
  assert.ok(p50(busy) < Math.max(10 * p50(quiet), 100), `controller-manager p50 ${p50(busy).toFixed(1)} ms under the flood, ${p50(quiet).toFixed(1)} ms quiet (p99 ${p99(busy).toFixed(0)} ms; ${flooded} kubelet LISTs)`);
});

test('reload under load: new limits within a second, no connection dropped, an invalid file refused naming the field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-fc-'));
  const file = join(dir, 'flowcontrol.yaml');
  const yaml = (qps: number) => [
    'levels:',
    '  - name: reloaded',
    `    qps: ${qps}`,
    '    burst: 1',
    '    queue: { length: 0 }',
    '  - name: other',
    '    qps: 0.001',
    '    burst: 1',
    '    queue: { length: 0 }',
    '  - name: default',
    'rules:',
    '  - { name: reload, level: reloaded, userAgents: [{ prefix: "reload-test/" }] }',
    '  - { name: other, level: other, userAgents: [{ prefix: "other-test/" }] }',
    'defaultLevel: default',
    '',
  ].join('\n');
  writeFileSync(file, yaml(1000));
  const lines: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } }));
  const source = { file, flag: '--flow-control-config' as const };
  const proxy = await runProxy({
    kubeconfig: cluster.info.users.admin.kubeconfig, context: undefined, upstreams: [], listen: { host: '127.0.0.1', port: 0 },
    tlsCertFile: cluster.info.servingCertFile, tlsPrivateKeyFile: cluster.info.servingKeyFile, clientCaFile: cluster.info.caFile,
    writeKubeconfig: undefined, metricsListen: { host: '127.0.0.1', port: 0 }, logLevel: 'info', shutdownGracePeriodSeconds: 5,
    cache: cacheConfigFrom({}), flowControl: loadFlowControlConfig(source), flowControlSource: source,
  }, log);
  try {
    await waitReady(`http://127.0.0.1:${proxy.health.port}`);
    // One keep-alive connection carries the load; a watch from the cache stays open throughout.
    const client = new Client(proxy.url, { connect: { ca }, pipelining: 1 });
    pools.push(client);
    let connects = 0;
    client.on('connect', () => connects++);
    const watch = await request(`${proxy.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0&allowWatchBookmarks=true`, {
      headers: { authorization: `Bearer ${token('admin')}` }, dispatcher: pool(proxy.url, 1),
    });
    assert.equal(watch.statusCode, 200);
    let watchEnded = false;
    watch.body.on('end', () => { watchEnded = true; }).on('error', () => { watchEnded = true; }).resume();
    // 'other' spends its one token now: an unchanged level must keep that state across reloads.
    assert.equal((await shoot(client, '/version', { token: token('admin'), userAgent: 'other-test/1' }, 0)).status, 200);

    const t0 = performance.now();
    const results: Shot[] = [];
    let stop = false;
    let changedAt = Infinity;
    const loop = (async () => {
      while (!stop) results.push(await shoot(client, '/version', { token: token('admin'), userAgent: 'reload-test/1' }, t0));
    })();
    await sleep(1000);
    assert.equal(results.filter((r) => r.status !== 200).length, 0, 'everything passes at 1000 QPS');
    writeFileSync(file, yaml(5));
    changedAt = performance.now() - t0;
    await sleep(2500);
    stop = true;
    await loop;
    const firstRefusal = results.find((r) => r.status === 429);
    assert.ok(firstRefusal, 'the new limit never took effect');
    assert.ok(firstRefusal.sentMs - changedAt < 1000, `new limits in force ${(firstRefusal.sentMs - changedAt).toFixed(0)} ms after the change`);
    const late = results.filter((r) => r.sentMs > changedAt + 1000);
    const lateOk = count(late, 200);
    const seconds = (Math.max(...late.map((r) => r.sentMs)) - (changedAt + 1000)) / 1000;
    assert.ok(lateOk <= 5 * seconds + 3, `${lateOk} passed in ${seconds.toFixed(1)} s at 5 QPS`);
    assert.equal((await shoot(client, '/version', { token: token('admin'), userAgent: 'other-test/1' }, 0)).status, 429, 'the unchanged level kept its empty bucket');
    assert.ok(lines.some((l) => l.includes('flow-control configuration reloaded')));

    // An invalid file is refused; the configuration in force stays.
    writeFileSync(file, yaml(5).replace('qps: 5', 'qps: -3'));
    await sleep(1200);
    const refusedLine = lines.find((l) => l.includes('configuration refused'));
    assert.ok(refusedLine, 'no log line for the refused configuration');
    assert.match(refusedLine, /flowControl\.levels\[0\]\.qps/);
    assert.equal(proxy.flowControl.config.levels[0]?.qps, 5);
    assert.match(proxy.reloadFlowControl() ?? '', /field "flowControl\.levels\[0\]\.qps" must be a number > 0/, 'SIGHUP\'s reload refuses it too');
    assert.equal(connects, 1, 'the client connection was never dropped');
    assert.equal(watchEnded, false, 'the watch ended');
    watch.body.destroy();
  } finally {
    await proxy.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});
