// Flow control through the proxy against the real apiserver (cache on, as users run it): a flow's
// rate under a flood, fairness between two flows of one level, control-plane requests beside a
// kubelet flood, the 429 itself, and reloading the configuration under load.
import { DEFAULT_BACKEND_OPTIONS } from '../../proxy/options.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
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

/** Seconds from the first answer to the last: while the proxy was working through the offered load. */
function answeringSeconds(shots: readonly Shot[]): number {
  const at = shots.map((s) => s.sentMs + s.ms);
  return (Math.max(...at) - Math.min(...at)) / 1000;
}

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
  // The load generator shares the machine (and this process) with the proxy, which may fall behind
  // the sending: the rate is taken over the time the proxy was answering (first to last answer).
  const span = answeringSeconds(shots);
  assert.ok(shots.length / span >= 250, `offered only ${(shots.length / span).toFixed(0)} QPS`);
  const want = 50 * span + 10;
  assert.ok(Math.abs(ok - want) <= 0.1 * want, `admitted ${ok} in ${span.toFixed(2)} s (want ${want.toFixed(0)} ± 10%: 50 QPS and a burst of 10)`);
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
  // 100 a second while the proxy answered; each flow gets about half.
  const span = answeringSeconds([...a, ...b]);
  const want = 100 * span + 10;
  assert.ok(Math.abs(okA + okB - want) <= 0.1 * want, `passed ${okA + okB} in ${span.toFixed(2)} s (want ${want.toFixed(0)} ± 10%)`);
  const share = okB / (okA + okB);
  // First come, first served would give B a quarter; fair queuing about half (a little less when the
  // machine stalls and the burst goes to whoever arrives first, which is A three times in four).
  assert.ok(share >= 0.35 && share <= 0.65, `flow B (a third of A's load) got ${okB} of ${okA + okB}: not fair`);
});

/**
 * 150 concurrent kubelet/ LISTs of a resource the proxy does not cache (the apiserver serves them)
 * while kube-controller-manager/ sends 100 requests one after another; the global read level is
 * small (20 in flight), so that whatever the kubelets are not held to elsewhere fills it.
 */
async function floodWithControllerManager(kubeletLevel: 'kubelets' | 'default'): Promise<{ kcmQueued: number; kcmRejected: number; kcmAdmitted: number; kubeletsQueued: number; p50: number; quietP50: number; flooded: number }> {
  const proxy = await proxyWith(fc({
    global: { readOnly: { maxInflight: 20, queue: { length: 1000, maxWaitSeconds: 10 } } },
    levels: [
      { name: 'control-plane', maxInflight: 50, flowBy: 'userAgent' },
      { name: 'kubelets', maxInflight: 8, flowBy: 'user', queue: { length: 500, maxWaitSeconds: 5 } },
      { name: 'default' },
    ],
    rules: [
      { name: 'kcm', level: 'control-plane', userAgents: [{ prefix: 'kube-controller-manager/' }] },
      { name: 'kubelets', level: kubeletLevel, userAgents: [{ prefix: 'kubelet/' }] },
    ],
    defaultLevel: 'default',
  }));
  const p = pool(proxy.url, 200);
  const kcm = async (n: number): Promise<number[]> => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = await shoot(p, '/api/v1/namespaces/default', { token: token('admin'), userAgent: 'kube-controller-manager/v1.37.2' }, 0);
      assert.equal(s.status, 200, s.body);
      ms.push(s.ms);
    }
    return ms;
  };
  const quiet = await kcm(50);
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
  const p50 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * 0.5)] ?? 0;
  return {
    kcmQueued: delta('kube_cache_proxy_flowcontrol_queued_total', (l) => l['rule'] === 'kcm'),
    kcmRejected: delta('kube_cache_proxy_flowcontrol_rejected_total', (l) => l['rule'] === 'kcm'),
    kcmAdmitted: delta('kube_cache_proxy_flowcontrol_admitted_total', (l) => l['rule'] === 'kcm'),
    kubeletsQueued: delta('kube_cache_proxy_flowcontrol_queued_total', (l) => l['rule'] === 'kubelets'),
    p50: p50(busy), quietP50: p50(quiet), flooded,
  };
}

test('a flood of kubelet/ LISTs does not slow kube-controller-manager/ requests: never queued or refused (and would be without the kubelets level)', async () => {
  const limited = await floodWithControllerManager('kubelets');
  assert.ok(limited.kubeletsQueued > 100, `the kubelets were held back (${limited.kubeletsQueued} queued)`);
  assert.equal(limited.kcmQueued, 0, 'controller-manager requests queued');
  assert.equal(limited.kcmRejected, 0);
  assert.equal(limited.kcmAdmitted, 100);
  // The proxy shares two cores with the flood and the apiserver: only a loose bound on the latency.
  assert.ok(limited.p50 < 1000, `controller-manager p50 ${limited.p50.toFixed(1)} ms under the flood (${limited.quietP50.toFixed(1)} ms quiet)`);
  // The same flood with the kubelets in the unlimited default level fills the global level, and the
  // controller-manager's requests wait behind it: what the kubelets level prevents.
  const unlimited = await floodWithControllerManager('default');
  assert.ok(unlimited.kcmQueued > 0, `without the kubelets level the controller-manager never queued (${JSON.stringify(unlimited)})`);
  process.stderr.write(`[flowcontrol] controller-manager p50: quiet ${limited.quietP50.toFixed(1)} ms, flood with the kubelets level ${limited.p50.toFixed(1)} ms (queued 0), without it ${unlimited.p50.toFixed(1)} ms (queued ${unlimited.kcmQueued}/100)\n`);
});

test('reload under load: new limits within a second, no connection dropped, an invalid file refused naming the field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-fc-'));
  const file = join(dir, 'flowcontrol.yaml');
  const yaml = (qps: number) => [
    'levels:',
    '  - name: reloaded',
    `    qps: ${qps}`,
    `    burst: ${qps >= 1000 ? 1000 : 1}`,
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
    backends: DEFAULT_BACKEND_OPTIONS,
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
    const errors: string[] = [];
    const loop = (async () => {
      while (!stop) {
        try {
          results.push(await shoot(client, '/version', { token: token('admin'), userAgent: 'reload-test/1' }, t0));
        } catch (err) {
          errors.push(`${(performance.now() - t0).toFixed(0)} ms: ${String(err)}`);
          if (errors.length > 3) break;
        }
      }
    })();
    const proxyLog = () => lines.filter((l) => /"level":(40|50|60)/.test(l)).slice(-10).join('');
    await sleep(1000);
    assert.deepEqual(errors, [], `requests failed; the proxy logged: ${proxyLog()}`);
    const early = results.filter((r) => r.status !== 200);
    assert.equal(early.length, 0, `everything passes at 1000 QPS: ${early.slice(0, 3).map((r) => `${r.status} ${r.body}`).join('; ')}`);
    writeFileSync(file, yaml(5));
    changedAt = performance.now() - t0;
    await sleep(2500);
    stop = true;
    await loop;
    assert.deepEqual(errors, [], `requests failed; the proxy logged: ${proxyLog()}`);
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

test('exec over an upgrade is flow-controlled as a long-running connect: at the level\'s maxWatches, a 429 Status before anything reaches the apiserver', async () => {
  const proxy = await proxyWith(fc({
    levels: [{ name: 'no-exec', maxWatches: 0, queue: { length: 0 } }, { name: 'default' }],
    rules: [{ name: 'exec', level: 'no-exec', verbs: ['connect'], resources: ['pods/exec'] }],
    defaultLevel: 'default',
  }));
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpsRequest(`${proxy.url}/api/v1/namespaces/default/pods/nothing/exec?command=true&stdout=true`, {
      ca, method: 'GET',
      headers: {
        authorization: `Bearer ${token('admin')}`, connection: 'Upgrade', upgrade: 'websocket',
        'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-protocol': 'v5.channel.k8s.io',
      },
    });
    req.on('response', resolve);
    req.on('upgrade', () => reject(new Error('upgraded')));
    req.on('error', reject);
    req.end();
  });
  const body = await new Promise<string>((resolve) => {
    let b = '';
    res.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve(b));
  });
  assert.equal(res.statusCode, 429);
  assert.equal(res.headers['retry-after'], '1');
  assert.deepEqual(JSON.parse(body), {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Too many requests, please try again later.',
    reason: 'TooManyRequests', details: { retryAfterSeconds: 1 }, code: 429,
  });
  const m = await scrape(proxy.metricsUrl);
  assert.equal(total(m, 'kube_cache_proxy_flowcontrol_rejected_total', (l) => l['level'] === 'no-exec' && l['rule'] === 'exec' && l['reason'] === 'watches'), 1);
  assert.equal(total(m, 'kube_cache_proxy_upgrades_total', (l) => l['code'] === '429'), 1, 'counted as an upgrade answered 429');
});
