// HTTP/2 on the proxy's main port, and the clients' connections' maximum age. client-go (several
// informers of one process, as a controller runs them) negotiates h2 and puts every list and watch
// on one connection; at the connection's age it gets GOAWAY, moves to a new connection, and its
// stores stay equal to the apiserver's. An HTTP/1.1 client past the age gets `Connection: close`,
// and its watch is ended cleanly. kubectl's normal requests go over h2 and its upgrades over
// HTTP/1.1; client certificates work on both. HTTP/2 requests are forwarded without their
// pseudo-headers, with their bodies, and errors come back as Status.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { startEchoUpstream, type EchoUpstream } from '../helpers/echo-upstream.js';
import { ensureClusterBinaries } from '../cluster/build.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { DEFAULT_BACKEND_OPTIONS } from '../../proxy/options.js';

const cluster = sharedCluster();
const RUN = Date.now().toString(36);
const NS = `h2-${RUN}`;
const ca = readFileSync(cluster.info.caFile);
const adminToken = cluster.info.users.admin.token ?? '';
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`[http2] ${m}\n`);

let tmp: string;
let kcluster: string;

before(async () => {
  // The `informers` tool may be newer than the cluster's binary (the cluster keeps the one it started with).
  kcluster = (await ensureClusterBinaries((m) => log(m))).kcluster;
  tmp = mkdtempSync(join(tmpdir(), 'kcp-http2-'));
  ok(await call(cluster, direct(), '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }) }), 201, 'namespace');
});

after(async () => {
  await call(cluster, direct(), `/api/v1/namespaces/${NS}`, { method: 'DELETE' });
  await closeAgents();
  rmSync(tmp, { recursive: true, force: true });
});

function ok(r: Reply, status: number, what: string): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text().slice(0, 300)}`);
}

async function eventually(what: string, check: () => Promise<string | undefined> | string | undefined, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  while (Date.now() < deadline) {
    last = await check();
    if (last === undefined) return;
    await sleep(100);
  }
  assert.fail(`${what}: ${last ?? ''}`);
}

/** Sum of the samples of `name` whose labels include `labels`. */
async function metric(p: TestProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${p.metricsUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1] ?? '', x[2] ?? '']));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

const opened = (p: TestProxy, protocol: string) => metric(p, 'kube_cache_proxy_client_connections_total', { protocol });
const openNow = (p: TestProxy, protocol: string) => metric(p, 'kube_cache_proxy_client_connections', { protocol });
const recycles = (p: TestProxy, protocol: string) => metric(p, 'kube_cache_proxy_client_connection_recycles_total', { protocol });

/** Established TCP connections to the proxy's port, as `ss` sees them from the client side. */
function tcpConnectionsTo(p: TestProxy): string[] {
  const port = new URL(p.url).port;
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '');
}

// ------------------------------------------------------------------------------------------------
// client-go: several informers of one process.

const RESOURCES = ['configmaps', 'pods', 'secrets'] as const;
type Resource = (typeof RESOURCES)[number];

interface Request {
  readonly line: string;
  readonly proto: string;
  readonly local: string;
}

interface GoInformers {
  readonly requests: Request[];
  readonly errors: string[];
  readonly synced: Promise<void>;
  /** name → resourceVersion of each informer's store. */
  stores(): Promise<Map<Resource, Map<string, string>>>;
  stop(): Promise<void>;
}

function goInformers(name: string, p: TestProxy): GoInformers {
  const outDir = mkdtempSync(join(tmp, `${name}-`));
  const args = ['informers', '--kubeconfig', cluster.info.users.admin.kubeconfig, '--server', p.url, '--resources', RESOURCES.join(','), '--namespace', NS, '--out-dir', outDir];
  const child: ChildProcess = spawn(kcluster, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const requests: Request[] = [];
  const errors: string[] = [];
  const stderr: string[] = [];
  let exited: string | undefined;
  let resolveSynced: () => void = () => undefined;
  let rejectSynced: (e: Error) => void = () => undefined;
  const synced = new Promise<void>((res, rej) => {
    resolveSynced = res;
    rejectSynced = rej;
  });
  let partial = '';
  child.stderr?.on('data', (b: Buffer) => {
    partial += b.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      // request METHOD URI STATUS PROTO ALPN LOCAL, or request METHOD URI error ...
      const m = /^request (\S+) (\S+) (\d{3}) (\S+) (\S*) (\S+)$/.exec(l);
      if (m) requests.push({ line: `${m[1] ?? ''} ${m[2] ?? ''} ${m[3] ?? ''}`, proto: m[4] ?? '', local: m[6] ?? '' });
      else if (l.startsWith('request ')) errors.push(l);
      else if (l === 'synced') resolveSynced();
      else stderr.push(l);
    }
  });
  const exit = new Promise<void>((resolve) => child.on('exit', (code, sig) => {
    exited = `exited ${code ?? sig ?? ''}`;
    rejectSynced(new Error(`${name} ${exited}: ${stderr.slice(-10).join('\n')}`));
    resolve();
  }));
  return {
    requests, errors, synced,
    async stores() {
      if (exited) throw new Error(`${name} ${exited}: ${stderr.slice(-10).join('\n')}`);
      if (child.pid) process.kill(child.pid, 'SIGUSR1');
      await sleep(150);
      const out = new Map<Resource, Map<string, string>>();
      for (const r of RESOURCES) {
        const file = join(outDir, `${r}.json`);
        const items = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as Array<{ name: string; resourceVersion: string }> : [];
        out.set(r, new Map(items.map((i) => [i.name, i.resourceVersion])));
      }
      return out;
    },
    async stop() {
      if (!exited && child.pid) process.kill(child.pid, 'SIGTERM');
      await exit;
    },
  };
}

async function directStores(): Promise<Map<Resource, Map<string, string>>> {
  const out = new Map<Resource, Map<string, string>>();
  for (const r of RESOURCES) {
    const res = await call(cluster, direct(), `/api/v1/namespaces/${NS}/${r}`);
    ok(res, 200, `direct list of ${r}`);
    const body = res.json() as { items: Array<{ metadata: { name: string; resourceVersion: string } }> };
    // The namespace's service account token is not a Secret any more; kube-root-ca.crt may come late.
    out.set(r, new Map(body.items.map((i) => [i.metadata.name, i.metadata.resourceVersion])));
  }
  return out;
}

function storeDiff(got: Map<Resource, Map<string, string>>, want: Map<Resource, Map<string, string>>): string | undefined {
  const out: string[] = [];
  for (const r of RESOURCES) {
    const g = got.get(r) ?? new Map<string, string>();
    const w = want.get(r) ?? new Map<string, string>();
    for (const [k, v] of w) if (g.get(k) !== v) out.push(`${r}/${k}: informer ${g.get(k) ?? '(missing)'} / apiserver ${v}`);
    for (const [k, v] of g) if (!w.has(k)) out.push(`${r}/${k}: informer ${v} / apiserver (none)`);
  }
  return out.length ? out.slice(0, 6).join('; ') : undefined;
}

const cm = (name: string, v: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v } });
const secret = (name: string, v: string) => JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: { v } });
const pod = (name: string, nodeName = 'node-1') => JSON.stringify({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'h2' } },
  spec: { nodeName, containers: [{ name: 'c', image: 'registry.example/demo:1' }] },
});

/** Creates, updates and deletes objects of every resource straight at the apiserver. */
async function churn(tag: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: cm(`${tag}-cm${i}`, '1') }), 201, 'create configmap');
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/secrets`, { method: 'POST', body: secret(`${tag}-s${i}`, '1') }), 201, 'create secret');
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/pods`, { method: 'POST', body: pod(`${tag}-p${i}`) }), 201, 'create pod');
  }
  ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps/${tag}-cm0`, { method: 'PUT', body: cm(`${tag}-cm0`, '2') }), 200, 'update configmap');
  ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/secrets/${tag}-s1`, { method: 'DELETE' }), 200, 'delete secret');
  ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/pods/${tag}-p2?gracePeriodSeconds=0`, { method: 'DELETE' }), 200, 'delete pod');
  ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/pods/${tag}-p0`, {
    method: 'PATCH', body: JSON.stringify({ metadata: { labels: { touched: 'yes' } } }), headers: { 'content-type': 'application/merge-patch+json' },
  }), 200, 'patch pod');
}

describe('client-go informers over HTTP/2', () => {
  let proxy: TestProxy;
  before(async () => {
    // Configmaps and pods are served from the cache, secrets (not cached by default) forwarded.
    proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({}), backends: { ...DEFAULT_BACKEND_OPTIONS, clientConnectionMaxAgeSeconds: 0 } });
  });
  after(async () => {
    await proxy.stop();
  });

  test('one TCP connection, negotiated h2, carries every list and watch of three informers', { timeout: 120_000 }, async () => {
    await churn('a');
    const inf = goInformers('one-conn', proxy);
    try {
      await inf.synced;
      // Each informer has listed (or watch-listed) and is watching.
      await eventually('a watch per resource', () => {
        const missing = RESOURCES.filter((r) => !inf.requests.some((q) => q.line.includes(`/${r}?`) && q.line.includes('watch=true')));
        return missing.length ? `no watch yet for ${missing.join(', ')}` : undefined;
      });
      assert.deepEqual(inf.errors, []);
      const protos = new Set(inf.requests.map((q) => q.proto));
      const locals = new Set(inf.requests.map((q) => q.local));
      assert.deepEqual([...protos], ['HTTP/2.0'], 'every response came over HTTP/2');
      assert.equal(locals.size, 1, `one connection carried all ${inf.requests.length} requests: ${[...locals].join(', ')}`);
      const ss = tcpConnectionsTo(proxy);
      assert.equal(ss.length, 1, `ss: one established connection to the proxy: ${ss.join('\n')}`);
      // The informers' first requests start together, before the protocol is known: Go's transport
      // dials for each and closes the connections it does not need once h2 is negotiated (they
      // carried no request, as the local addresses above show). One stays.
      await eventually('one h2 connection open', async () => ((await openNow(proxy, 'h2')) === 1 ? undefined : `open: ${await openNow(proxy, 'h2')}`));
      const dialed = await opened(proxy, 'h2');
      assert.ok(dialed <= RESOURCES.length, `at most one dial per informer: ${dialed}`);
      assert.equal(await opened(proxy, 'http/1.1'), 0);

      // Watch events arrive over the shared connection (cache-served and forwarded watches alike).
      await churn('b');
      await eventually('the informers equal the apiserver', async () => storeDiff(await inf.stores(), await directStores()));
      assert.equal(await opened(proxy, 'h2'), dialed, 'still the one connection');
      assert.equal(tcpConnectionsTo(proxy).length, 1);
      assert.equal(await recycles(proxy, 'h2'), 0, 'no age: never recycled');
    } finally {
      await inf.stop();
    }
    await eventually('the connection closed', async () => ((await openNow(proxy, 'h2')) === 0 ? undefined : 'still open'));
  });
});

describe('client connections with a maximum age (3 s, no jitter)', () => {
  let proxy: TestProxy;
  const AGE_S = 3;
  before(async () => {
    proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({}), backends: { ...DEFAULT_BACKEND_OPTIONS, clientConnectionMaxAgeSeconds: AGE_S, maxAgeJitter: 0 } });
  });
  after(async () => {
    await proxy.stop();
  });

  test('client-go gets GOAWAY, moves to a new connection, and its informers stay equal to the apiserver', { timeout: 120_000 }, async () => {
    const inf = goInformers('goaway', proxy);
    try {
      await inf.synced;
      const first = inf.requests[0]?.local ?? '';
      assert.equal(await recycles(proxy, 'h2'), 0, 'not before the age');
      // GOAWAY at 3 s; the watches on the old connection end after the grace (5 s) and are
      // started again on a new connection.
      await eventually('the recycle counted', async () => ((await recycles(proxy, 'h2')) >= 1 ? undefined : 'none yet'), 30_000);
      await eventually('watches again on the new connection', () => {
        const missing = RESOURCES.filter((r) => !inf.requests.some((q) => q.local !== first && q.line.includes(`/${r}?`) && q.line.includes('watch=true')));
        return missing.length ? `no watch on a new connection yet for ${missing.join(', ')}` : undefined;
      }, 30_000);
      // Changes made after the reconnect reach the stores.
      await churn('c');
      await eventually('the informers equal the apiserver', async () => storeDiff(await inf.stores(), await directStores()), 30_000);
      assert.deepEqual([...new Set(inf.requests.map((q) => q.proto))], ['HTTP/2.0']);
      assert.equal(await opened(proxy, 'http/1.1'), 0);
      // Requests are never refused: the recycling is invisible to the informers but for new connections.
      assert.deepEqual(inf.errors, [], 'no request failed');
      assert.ok(inf.requests.every((q) => q.line.endsWith(' 200')), inf.requests.filter((q) => !q.line.endsWith(' 200')).map((q) => q.line).join('\n'));
      log(`goaway: ${inf.requests.length} requests over ${new Set(inf.requests.map((q) => q.local)).size} connections; recycles ${await recycles(proxy, 'h2')}`);
    } finally {
      await inf.stop();
    }
  });

  test('HTTP/1.1: the first response after the age says Connection: close; a watch past it ends cleanly', { timeout: 60_000 }, async () => {
    const before = await recycles(proxy, 'http/1.1');
    const c = await RawClient.connect(proxy.url);
    const get = `GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminToken}\r\n\r\n`;
    c.socket.write(get);
    const r1 = await c.response();
    assert.equal(r1.status, 200);
    assert.equal(r1.connection, 'keep-alive', `kept alive before the age: ${r1.head}`);
    await sleep(AGE_S * 1000 + 500);
    assert.equal(c.closed, false, 'an idle connection is not closed at its age');
    c.socket.write(get);
    const r2 = await c.response();
    assert.equal(r2.status, 200);
    assert.equal(r2.connection, 'close', r2.head);
    await c.waitClosed();
    assert.equal(await recycles(proxy, 'http/1.1'), before + 1);

    // A watch over HTTP/1.1 that outlives the connection's age ends with its last chunk.
    const w = await RawClient.connect(proxy.url);
    const started = Date.now();
    w.socket.write(`GET /api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=120 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminToken}\r\n\r\n`);
    const head = await w.head();
    assert.equal(head.status, 200);
    assert.match(head.head, /transfer-encoding: chunked/i);
    await w.wait('the final chunk', () => w.text().endsWith('0\r\n\r\n'), 30_000);
    const took = Date.now() - started;
    assert.ok(took >= AGE_S * 1000, `ended at ${took} ms, not before the age`);
    assert.equal(await recycles(proxy, 'http/1.1'), before + 2);
    w.socket.destroy();
  });
});

// ------------------------------------------------------------------------------------------------
// HTTP/2 requests: headers, bodies, errors; kubectl.

describe('HTTP/2 requests', () => {
  let echo: EchoUpstream;
  let viaEcho: TestProxy;
  let proxy: TestProxy;
  before(async () => {
    echo = await startEchoUpstream(cluster);
    viaEcho = await startTestProxy(cluster, { upstreams: [echo.url], cache: undefined });
    proxy = await startTestProxy(cluster);
  });
  after(async () => {
    await viaEcho.stop();
    await proxy.stop();
    await echo.close();
  });

  test('pseudo-headers are not forwarded; Host comes from the upstream connection; other headers pass', async () => {
    const s = await h2(viaEcho);
    try {
      const r = await h2Request(s, { ':method': 'GET', ':path': '/api/v1/namespaces?x=1', ':authority': 'client.example:443', 'x-test-id': `h2-${RUN}`, 'x-multi': ['a', 'b'] });
      assert.equal(r.status, 404, 'the echo upstream answers plain requests 404');
      const seen = echo.find(`h2-${RUN}`);
      assert.ok(seen, 'the upstream saw the request');
      assert.equal(seen.url, '/api/v1/namespaces?x=1');
      const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.deepEqual(names.filter((n) => n.startsWith(':')), [], 'no pseudo-header');
      assert.deepEqual(echo.header(seen, 'host'), [new URL(echo.url).host]);
      assert.deepEqual(echo.header(seen, 'x-multi').join(','), 'a,b');
      // The response's connection-specific headers (Connection, Keep-Alive from the apiserver's
      // HTTP/1.1) are not sent over HTTP/2 (Node would throw).
      assert.equal(r.headers['connection'], undefined);
      assert.equal(r.headers['keep-alive'], undefined);
    } finally {
      s.close();
    }
  });

  test('a request body without Content-Length (HTTP/2 framing) reaches the apiserver whole', async () => {
    const s = await h2(proxy);
    try {
      const name = `h2-body-${RUN}`;
      const body = cm(name, 'x'.repeat(200_000));
      const req = s.request({ ':method': 'POST', ':path': `/api/v1/namespaces/${NS}/configmaps`, authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' });
      // Written in pieces, with no content-length: the stream's end is the body's end.
      for (let i = 0; i < body.length; i += 16_384) req.write(body.slice(i, i + 16_384));
      req.end();
      const r = await h2Response(req);
      assert.equal(r.status, 201, r.body.slice(0, 300));
      const got = await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps/${name}`);
      ok(got, 200, 'direct get');
      assert.equal((got.json() as { data: { v: string } }).data.v.length, 200_000);
    } finally {
      s.close();
    }
  });

  test('errors are Status over HTTP/2 too; a watch streams over HTTP/2 and ends cleanly', async () => {
    const s = await h2(proxy);
    try {
      const missing = await h2Request(s, { ':method': 'GET', ':path': `/api/v1/namespaces/${NS}/configmaps/none`, authorization: `Bearer ${adminToken}` });
      assert.equal(missing.status, 404);
      assert.equal((JSON.parse(missing.body) as { reason: string }).reason, 'NotFound');
      const connect = await h2Request(s, { ':method': 'CONNECT', ':authority': 'example.com:443' });
      assert.equal(connect.status, 405);
      assert.equal((JSON.parse(connect.body) as { kind: string }).kind, 'Status');
      const watch = await h2Request(s, { ':method': 'GET', ':path': `/api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=1`, authorization: `Bearer ${adminToken}` });
      assert.equal(watch.status, 200);
      assert.match(watch.body, /"type":"ADDED"/);
    } finally {
      s.close();
    }
  });

  test('a client certificate is honoured over HTTP/2 (kubectl as node-1)', async () => {
    const viaProxy = await cluster.kubectl('node1', ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { server: proxy.url });
    assert.equal(viaProxy.code, 0, viaProxy.stderr);
    assert.equal(viaProxy.stdout, 'system:node:node-1');
    assert.ok((await opened(proxy, 'h2')) >= 1, 'kubectl spoke HTTP/2');
  });

  test('kubectl: normal requests over h2, exec and port-forward upgrades over HTTP/1.1, same answers as direct', { timeout: 60_000 }, async () => {
    const name = `h2-exec-${RUN}`;
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/pods`, { method: 'POST', body: pod(name) }), 201, 'create pod');
    // No kubelet runs it; port-forward only tries the upgrade for a Running pod.
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/pods/${name}/status`, {
      method: 'PATCH', body: JSON.stringify({ status: { phase: 'Running' } }), headers: { 'content-type': 'application/merge-patch+json' },
    }), 200, 'pod Running');
    const h2Before = await opened(proxy, 'h2');
    const h1Before = await opened(proxy, 'http/1.1');
    const upgradesBefore = await metric(proxy, 'kube_cache_proxy_upgrades_total');
    for (const args of [['exec', '-n', NS, name, '--', 'ls'], ['port-forward', '-n', NS, `pod/${name}`, ':80']]) {
      const viaProxy = await cluster.kubectl('admin', args, { server: proxy.url });
      const straight = await cluster.kubectl('admin', args, { server: direct() });
      const norm = (x: string) => x.replaceAll(proxy.url, 'SERVER').replaceAll(direct(), 'SERVER');
      // The apiserver finds no Node "node-1" to dial: its error, through the upgrade path.
      assert.match(straight.stderr, /node-1/);
      assert.equal(viaProxy.code, straight.code, viaProxy.stderr);
      assert.equal(norm(viaProxy.stderr), norm(straight.stderr));
    }
    assert.ok((await opened(proxy, 'h2')) >= h2Before + 2, 'each kubectl got its pod over h2');
    // Each kubectl tries WebSocket and then SPDY: each upgrade on an HTTP/1.1 connection of its own.
    assert.ok((await opened(proxy, 'http/1.1')) >= h1Before + 4, `upgrades over HTTP/1.1: ${(await opened(proxy, 'http/1.1')) - h1Before}`);
    assert.equal((await metric(proxy, 'kube_cache_proxy_upgrades_total')) - upgradesBefore, 4);
  });

  test('kubectl get --watch over h2 sees another client\'s change', { timeout: 60_000 }, async () => {
    const name = `h2-watch-${RUN}`;
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: cm(name, '1') }), 201, 'create');
    const child = spawn(cluster.info.kubectl, ['--kubeconfig', cluster.info.users.admin.kubeconfig, '--server', proxy.url, 'get', 'configmap', name, '-n', NS, '--watch', '-o', 'jsonpath={.data.v}{"\\n"}'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (b: Buffer) => { out += b.toString('utf8'); });
    child.stderr?.on('data', (b: Buffer) => { err += b.toString('utf8'); });
    try {
      await eventually('the first value', () => (out.split('\n').includes('1') ? undefined : `out ${JSON.stringify(out)} err ${err}`));
      ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps/${name}`, { method: 'PUT', body: cm(name, '2') }), 200, 'update');
      await eventually('the update', () => (out.split('\n').includes('2') ? undefined : `out ${JSON.stringify(out)} err ${err}`));
      assert.ok((await openNow(proxy, 'h2')) >= 1);
    } finally {
      child.kill('SIGTERM');
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Clients.

function h2(p: TestProxy): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2Connect(p.url, { ca });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function h2Response(req: ReturnType<ClientHttp2Session['request']>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers: Record<string, string | string[] | undefined> = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      status = Number(h[':status']);
      headers = { ...h };
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks).toString('utf8') }));
    req.on('error', reject);
  });
}

function h2Request(s: ClientHttp2Session, headers: Record<string, string | string[]>) {
  const req = s.request(headers, { endStream: true });
  return h2Response(req);
}

/** A raw HTTP/1.1 connection (ALPN http/1.1), reading responses as they come. */
class RawClient {
  closed = false;
  #data = Buffer.alloc(0);
  #offset = 0;
  readonly #waiters = new Set<() => void>();

  private constructor(readonly socket: TLSSocket) {
    socket.on('data', (c: Buffer) => { this.#data = Buffer.concat([this.#data, c]); this.#wake(); });
    socket.on('close', () => { this.closed = true; this.#wake(); });
    socket.on('error', () => undefined);
  }

  static connect(url: string): Promise<RawClient> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca, ALPNProtocols: ['http/1.1'] }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  text(): string {
    return this.#data.subarray(this.#offset).toString('latin1');
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  wait(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve();
        } else if (this.closed) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          reject(new Error(`connection closed while waiting for ${what}: ${JSON.stringify(this.text().slice(0, 300))}`));
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(this.text().slice(0, 300))}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** The next response head (the body is left unread). */
  async head(): Promise<{ status: number; head: string; connection: string | undefined; end: number }> {
    await this.wait('a response head', () => this.text().includes('\r\n\r\n'));
    const t = this.text();
    const end = t.indexOf('\r\n\r\n') + 4;
    const head = t.slice(0, end);
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, connection: /\r\nconnection: ([^\r]*)/i.exec(head)?.[1]?.toLowerCase(), end };
  }

  /** The next whole response with a Content-Length body; the client moves past it. */
  async response(): Promise<{ status: number; head: string; connection: string | undefined }> {
    const h = await this.head();
    const len = Number(/\r\ncontent-length: (\d+)/i.exec(h.head)?.[1] ?? 'NaN');
    assert.ok(Number.isFinite(len), `a Content-Length: ${h.head}`);
    await this.wait('the body', () => this.#data.length - this.#offset >= h.end + len);
    this.#offset += h.end + len;
    return { status: h.status, head: h.head, connection: h.connection };
  }

  waitClosed(): Promise<void> {
    return this.wait('close', () => this.closed);
  }
}
