// Clients that hold the proxy's connections without using them: slowloris on headers and on bodies
// (HTTP/1.1 and HTTP/2), connections that never send a request or never finish their TLS handshake,
// the caps on connections per source address and overall (a Status with Retry-After, other clients
// unaffected), and a watch closed as too slow, whose connection must go at once, not when its
// stalled client reads. Timeouts are shortened here (seconds, not the defaults' tens of seconds).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as http2Connect, constants as h2, type ClientHttp2Session } from 'node:http2';
import { Socket, connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { proxyReady, sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { growthBy, scrape, total, type Sample } from '../helpers/cache-workload.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../../proxy/connection-limits.js';

const cluster = sharedCluster();
const RUN = Date.now().toString(36);
const NS = `conn-${RUN}`;
const ca = readFileSync(cluster.info.caFile);
const token = cluster.info.users.admin.token ?? '';
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const SHORT: ConnectionLimits = {
  ...DEFAULT_CONNECTION_LIMITS,
  tlsHandshakeTimeoutMs: 2_000,
  requestHeaderTimeoutMs: 2_000,
  requestBodyTimeoutMs: 2_000,
  idleTimeoutMs: 3_000,
  writeStallTimeoutMs: 3_000,
};

before(async () => {
  ok(await call(cluster, direct(), '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }) }), 201, 'namespace');
});

after(async () => {
  // The test cluster has no namespace controller: the objects are deleted first, or they stay.
  await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps`, { method: 'DELETE' });
  await call(cluster, direct(), `/api/v1/namespaces/${NS}`, { method: 'DELETE' });
  await closeAgents();
});

function ok(r: Reply, status: number, what: string): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text().slice(0, 300)}`);
}

function port(url: string): number {
  return Number(new URL(url).port);
}

function secure(url: string, alpn: 'http/1.1' | 'h2', localAddress: string): TLSSocket {
  return tlsConnect({ socket: netConnect({ host: '127.0.0.1', port: port(url), localAddress }), ca, servername: 'localhost', ALPNProtocols: [alpn] });
}

/** A TLS connection to the proxy, from `localAddress` (any 127.0.0.x on Linux). */
function tls(url: string, alpn: 'http/1.1' | 'h2', localAddress = '127.0.0.1'): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = secure(url, alpn, localAddress);
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with how long after `since` the socket closed, and what it received. */
function closedAfter(s: Socket, since: number): Promise<{ ms: number; bytes: Buffer }> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => undefined);
  return new Promise((resolve) => s.once('close', () => resolve({ ms: Date.now() - since, bytes: Buffer.concat(chunks) })));
}

/** Writes `data` one byte every `everyMs` until the socket closes. */
function trickle(s: Socket, data: Buffer, everyMs: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed || i >= data.length) {
      clearInterval(t);
      return;
    }
    s.write(data.subarray(i, ++i));
  }, everyMs);
  s.once('close', () => clearInterval(t));
}

/** The status code and Status body of a raw HTTP/1.1 response (Content-Length framed). */
function rawStatus(bytes: Buffer): { code: number; headers: string; body: Record<string, unknown> } {
  const text = bytes.toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no HTTP response: ${JSON.stringify(text.slice(0, 200))}`);
  const code = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  const body: unknown = JSON.parse(text.slice(end + 4));
  assert.ok(typeof body === 'object' && body !== null);
  return { code, headers: text.slice(0, end).toLowerCase(), body: body as Record<string, unknown> };
}

/** A normal request through the proxy works while the abuse goes on. */
async function normalRequestWorks(p: TestProxy): Promise<void> {
  const t0 = Date.now();
  ok(await call(cluster, p.url, `/api/v1/namespaces/${NS}/configmaps`), 200, 'a normal LIST');
  assert.ok(Date.now() - t0 < 2_000, `a normal LIST took ${Date.now() - t0} ms`);
}

async function h2Session(url: string, localAddress = '127.0.0.1'): Promise<ClientHttp2Session> {
  const s = http2Connect(url, { createConnection: () => secure(url, 'h2', localAddress) });
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  return s;
}

describe('timeouts', () => {
  let p: TestProxy;
  before(async () => { p = await startTestProxy(cluster, { connectionLimits: SHORT }); });
  after(async () => { await p.stop(); });

  /** The cuts counted since `before`, by reason: exactly `want` (the metric of each cut, none twice). */
  async function assertCuts(before: readonly Sample[], want: Record<string, number>): Promise<void> {
    assert.deepEqual(growthBy(before, await scrape(p.metricsUrl), 'kube_cache_proxy_client_connection_cuts_total', 'reason'), want);
  }

  test('HTTP/1.1 headers one byte at a time: cut at the header timeout with a 408 Status', async () => {
    const cuts = await scrape(p.metricsUrl);
    const s = await tls(p.url, 'http/1.1');
    const t0 = Date.now();
    const closed = closedAfter(s, t0);
    trickle(s, Buffer.from(`GET /api/v1/namespaces/${NS}/configmaps HTTP/1.1\r\nHost: x\r\n${'X-Slow: y\r\n'.repeat(200)}\r\n`), 50);
    await normalRequestWorks(p);
    const { ms, bytes } = await closed;
    assert.ok(ms >= 1_500 && ms < 5_000, `cut after ${ms} ms`);
    const r = rawStatus(bytes);
    assert.equal(r.code, 408);
    assert.equal(r.body['kind'], 'Status');
    assert.equal(r.body['reason'], 'Timeout');
    await assertCuts(cuts, { request_header_timeout: 1 });
  });

  test('HTTP/1.1 connection that never sends a request, and a TCP connection that never starts TLS: cut', async () => {
    const cuts = await scrape(p.metricsUrl);
    const idle = await tls(p.url, 'http/1.1');
    const t0 = Date.now();
    const raw = new Socket();
    const rawClosed = closedAfter(raw, t0);
    raw.connect(port(p.url), '127.0.0.1');
    const a = await closedAfter(idle, t0);
    assert.ok(a.ms >= 1_500 && a.ms < 5_000, `idle TLS connection cut after ${a.ms} ms`);
    const b = await rawClosed;
    assert.ok(b.ms >= 1_500 && b.ms < 5_000, `TLS handshake never started: cut after ${b.ms} ms`);
    await assertCuts(cuts, { request_header_timeout: 1, tls_handshake_timeout: 1 });
  });

  test('HTTP/1.1 body one byte at a time: 408 Status at the body timeout, connection closed', async () => {
    const cuts = await scrape(p.metricsUrl);
    const s = await tls(p.url, 'http/1.1');
    const t0 = Date.now();
    const closed = closedAfter(s, t0);
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'slow-body' }, data: { a: 'x'.repeat(500) } });
    s.write(`POST /api/v1/namespaces/${NS}/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`);
    trickle(s, Buffer.from(body), 50);
    await normalRequestWorks(p);
    const { ms, bytes } = await closed;
    assert.ok(ms >= 1_500 && ms < 8_000, `cut after ${ms} ms`);
    const r = rawStatus(bytes);
    assert.equal(r.code, 408, r.headers);
    assert.equal(r.body['kind'], 'Status');
    assert.equal(r.body['reason'], 'Timeout');
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps/slow-body`), 404, 'the half-sent object was not created');
    await assertCuts(cuts, { request_body_timeout: 1 });
  });

  test('HTTP/2 session that never sends a request, and one trickling a HEADERS frame: cut', async () => {
    const cuts = await scrape(p.metricsUrl);
    const t0 = Date.now();
    const idle = await h2Session(p.url);
    const idleClosed = new Promise<number>((resolve) => idle.once('close', () => resolve(Date.now() - t0)));
    // Raw h2: the preface and SETTINGS, then a HEADERS frame announced as 200 bytes, sent a byte at a time.
    const s = await tls(p.url, 'h2');
    const closed = closedAfter(s, Date.now());
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    const frame = Buffer.concat([Buffer.from([0, 0, 200, 1, 4, 0, 0, 0, 1]), Buffer.alloc(200, 0x40)]);
    trickle(s, frame, 50);
    await normalRequestWorks(p);
    const idleMs = await idleClosed;
    assert.ok(idleMs >= 1_500 && idleMs < 5_000, `idle h2 session closed after ${idleMs} ms`);
    const { ms } = await closed;
    assert.ok(ms >= 1_500 && ms < 5_000, `h2 slowloris cut after ${ms} ms`);
    await assertCuts(cuts, { request_header_timeout: 2 });
  });

  test('HTTP/2 body one byte at a time: 408 Status, stream closed; the session keeps serving', async () => {
    const cuts = await scrape(p.metricsUrl);
    const s = await h2Session(p.url);
    try {
      const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'slow-body-h2' }, data: { a: 'x'.repeat(500) } });
      const t0 = Date.now();
      const req = s.request({ ':method': 'POST', ':path': `/api/v1/namespaces/${NS}/configmaps`, authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      req.on('error', () => undefined);
      let i = 0;
      // Like client-go, the client stops sending its body once it has the answer.
      let answered = false;
      req.once('response', () => { answered = true; });
      const t = setInterval(() => {
        if (answered || req.destroyed || req.closed || i >= body.length) return clearInterval(t);
        req.write(body.slice(i, ++i));
      }, 50);
      const [status, text] = await new Promise<[number, string]>((resolve) => {
        let st = 0;
        const chunks: Buffer[] = [];
        req.on('response', (h) => { st = Number(h[':status']); });
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('close', () => resolve([st, Buffer.concat(chunks).toString('utf8')]));
      });
      clearInterval(t);
      const ms = Date.now() - t0;
      assert.ok(ms >= 1_500 && ms < 8_000, `answered after ${ms} ms`);
      assert.equal(status, 408, text);
      const st: unknown = JSON.parse(text);
      assert.ok(typeof st === 'object' && st !== null && 'kind' in st && st.kind === 'Status' && 'reason' in st && st.reason === 'Timeout', text);
      // The same session still serves.
      const again = s.request({ ':path': `/api/v1/namespaces/${NS}/configmaps`, authorization: `Bearer ${token}` });
      const code = await new Promise<number>((resolve) => again.on('response', (h) => resolve(Number(h[':status']))));
      again.close(h2.NGHTTP2_NO_ERROR);
      assert.equal(code, 200);
      await assertCuts(cuts, { request_body_timeout: 1 });
    } finally {
      s.destroy();
    }
  });

  test('a client that stops reading a large LIST is cut at the write-stall timeout', async () => {
    const big = 'b'.repeat(100_000);
    for (const r of await Promise.all(Array.from({ length: 60 }, (_, i) => call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `stall-${i}` }, data: { big } }) })))) ok(r, 201, 'create');
    // 6 MB: more than the socket buffers take. A consistent read, so that all of it is sent (from the
    // cache once it has every object, else forwarded): with resourceVersion=0 a cache still receiving
    // the objects could answer a part small enough to be written out whole, and so never stall.
    const cuts = async () => total(await scrape(p.metricsUrl), 'kube_cache_proxy_client_connection_cuts_total', (l) => l['reason'] === 'write_stall');
    const before = await cuts();
    const s = await tls(p.url, 'http/1.1');
    const t0 = Date.now();
    const closed = closedAfter(s, t0);
    s.write(`GET /api/v1/namespaces/${NS}/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    let head = '';
    await new Promise<void>((resolve) => s.once('data', (d: Buffer) => { head = d.toString('latin1', 0, Math.min(d.length, 1000)); resolve(); }));
    s.pause();
    while ((await cuts()) === before) {
      assert.ok(Date.now() - t0 < 10_000, `the stalled response was not cut (${s.bytesRead} bytes read, ${/content-length: \d+|transfer-encoding: \w+/i.exec(head)?.[0] ?? 'no length'})`);
      await sleep(200);
    }
    const ms = Date.now() - t0;
    assert.ok(ms >= 2_500, `cut after ${ms} ms`);
    s.resume();
    await closed;
    await Promise.all(Array.from({ length: 60 }, (_, i) => call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps/stall-${i}`, { method: 'DELETE' })));
  });

  test('a watch (no body) outlives every timeout, over HTTP/1.1 and HTTP/2; a connection with a quiet watch is not idle', async () => {
    const cuts = await scrape(p.metricsUrl);
    const s = await tls(p.url, 'http/1.1');
    const closed = closedAfter(s, Date.now());
    s.write(`GET /api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    const h = await h2Session(p.url);
    // As in kube-apiserver (Go's HTTP/2 server), only a connection without open streams is idle: one
    // whose watch is quiet for longer than the idle timeout is not sent GOAWAY.
    let goaway = false;
    h.on('goaway', () => { goaway = true; });
    const w = h.request({ ':path': `/api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=60`, authorization: `Bearer ${token}` });
    w.on('error', () => undefined);
    let h2Closed = false;
    w.on('close', () => { h2Closed = true; });
    let got = '';
    w.on('data', (c: Buffer) => { got += c.toString('utf8'); });
    // Longer than the header, body, idle and stall timeouts.
    await sleep(5_000);
    ok(await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-timeouts' } }) }), 201, 'create');
    await sleep(1_000);
    assert.equal(s.destroyed, false, 'the HTTP/1.1 watch was cut');
    assert.equal(h2Closed, false, 'the HTTP/2 watch was cut');
    assert.match(got, /after-timeouts/);
    assert.equal(goaway, false, 'the HTTP/2 connection of a quiet watch was sent GOAWAY');
    const [status, text] = await new Promise<[number, string]>((resolve) => {
      const r = h.request({ ':path': `/api/v1/namespaces/${NS}/configmaps/after-timeouts`, authorization: `Bearer ${token}` });
      let st = 0;
      let b = '';
      r.on('response', (hd) => { st = Number(hd[':status']); });
      r.on('data', (d: Buffer) => { b += d.toString('utf8'); });
      r.on('error', (e) => resolve([0, String(e)]));
      r.on('close', () => resolve([st, b]));
    });
    assert.equal(status, 200, `a request on the watch's connection: ${text.slice(0, 300)}`);
    s.destroy();
    await closed;
    // Its last stream closed, the connection is idle: GOAWAY and closed after the idle timeout.
    const t0 = Date.now();
    const sessionClosed = new Promise<number>((resolve) => h.once('close', () => resolve(Date.now() - t0)));
    w.close();
    const idleMs = await sessionClosed;
    assert.equal(goaway, true, 'the idle connection was not sent GOAWAY');
    assert.ok(idleMs >= 2_500 && idleMs < 6_000, `idle h2 session closed ${idleMs} ms after its last stream`);
    await assertCuts(cuts, { idle_timeout: 1 });
  });
});

describe('connection caps', () => {
  let p: TestProxy;
  before(async () => {
    p = await startTestProxy(cluster, { connectionLimits: { ...DEFAULT_CONNECTION_LIMITS, maxConnections: 6, maxConnectionsPerSource: 3 } });
  });
  after(async () => { await p.stop(); });

  test('per source: a 429 Status with Retry-After, then closed; other sources unaffected; overall: 503', async () => {
    const before = await scrape(p.metricsUrl);
    const held = await Promise.all([1, 2, 3].map(() => tls(p.url, 'http/1.1', '127.0.0.1')));
    // The fourth from the same address, over HTTP/1.1 and over HTTP/2.
    const s = await tls(p.url, 'http/1.1', '127.0.0.1');
    const closed = closedAfter(s, Date.now());
    s.write(`GET /api/v1/namespaces/${NS}/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    const r = rawStatus((await closed).bytes);
    assert.equal(r.code, 429);
    assert.match(r.headers, /\r\nretry-after: 1\r\n/);
    assert.equal(r.body['kind'], 'Status');
    assert.equal(r.body['reason'], 'TooManyRequests');
    assert.match(String(r.body['message']), /too many connections from 127\.0\.0\.1/);
    const h = await h2Session(p.url, '127.0.0.1');
    const hs = h.request({ ':path': '/api', authorization: `Bearer ${token}` });
    const [code, retry, text] = await new Promise<[number, string, string]>((resolve) => {
      let c = 0;
      let ra = '';
      let b = '';
      hs.on('response', (hd) => { c = Number(hd[':status']); ra = String(hd['retry-after']); });
      hs.on('data', (d: Buffer) => { b += d.toString('utf8'); });
      hs.on('close', () => resolve([c, ra, b]));
    });
    assert.equal(code, 429, text);
    assert.equal(retry, '1');
    assert.match(text, /"kind":"Status"/);
    await new Promise<void>((resolve) => (h.closed ? resolve() : h.once('close', () => resolve())));
    // Another source address still gets in, and fills the overall cap.
    const others = await Promise.all([1, 2].map(() => tls(p.url, 'http/1.1', '127.0.0.2')));
    const third = await tls(p.url, 'http/1.1', '127.0.0.3');
    third.write(`GET /api/v1/namespaces/${NS}/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    const thirdAnswer = await new Promise<string>((resolve) => third.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    assert.match(thirdAnswer, /^HTTP\/1\.1 200 /);
    // 6 open: the next from a new address gets 503.
    const over = await tls(p.url, 'http/1.1', '127.0.0.4');
    const overClosed = closedAfter(over, Date.now());
    over.write(`GET /api HTTP/1.1\r\nHost: x\r\n\r\n`);
    const o = rawStatus((await overClosed).bytes);
    assert.equal(o.code, 503);
    assert.equal(o.body['reason'], 'ServiceUnavailable');
    assert.match(o.headers, /\r\nretry-after: 1\r\n/);
    // Closing some frees their slots.
    for (const x of [...held, ...others, third]) x.destroy();
    await sleep(300);
    await normalRequestWorks(p);
    const afterScrape = await scrape(p.metricsUrl);
    const refused = (reason: string) => total(afterScrape, 'kube_cache_proxy_client_connections_refused_total', (l) => l['reason'] === reason) - total(before, 'kube_cache_proxy_client_connections_refused_total', (l) => l['reason'] === reason);
    assert.equal(refused('max_connections_per_source'), 2);
    assert.equal(refused('max_connections'), 1);
  });
});

describe('a watch closed as too slow', () => {
  let p: TestProxy;
  before(async () => {
    const cache = cacheConfigFrom({});
    assert.ok(cache);
    p = await startTestProxy(cluster, { cache: { ...cache, watch: { ...cache.watch, watcherMaxQueuedLines: 20, watcherMaxQueuedBytes: 256 * 1024 } } });
    // Synced, so that the watch below is served from the cache (a forwarded watch is only passed
    // through, with backpressure, and never closed as slow).
    await proxyReady(p);
  });
  after(async () => { await p.stop(); });

  test('its stalled client\'s connection is closed at once', async () => {
    const gauge = async () => total(await scrape(p.metricsUrl), 'kube_cache_proxy_client_connections', (l) => l['protocol'] === 'http/1.1');
    const slow = async () => total(await scrape(p.metricsUrl), 'kube_cache_proxy_cache_watchers_closed_total', (l) => l['reason'] === 'slow');
    ok(await call(cluster, p.url, `/api/v1/namespaces/${NS}/configmaps?resourceVersion=0`), 200, 'warm-up');
    const base = await gauge();
    const slowBefore = await slow();
    const s = await tls(p.url, 'http/1.1');
    s.on('error', () => undefined);
    s.write(`GET /api/v1/namespaces/${NS}/configmaps?watch=1&resourceVersion=0&timeoutSeconds=120 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    await new Promise<void>((resolve) => s.once('data', () => resolve()));
    // The client stops reading.
    s.pause();
    assert.equal(await gauge(), base + 1);
    const big = 'x'.repeat(100_000);
    let n = 0;
    while ((await slow()) === slowBefore) {
      assert.ok(n < 400, 'the watcher was never closed as slow');
      await Promise.all(Array.from({ length: 10 }, () => call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `big-${n++}` }, data: { big } }) })));
    }
    const t0 = Date.now();
    while ((await gauge()) > base) {
      assert.ok(Date.now() - t0 < 1_000, 'the slow watcher\'s connection is still open');
      await sleep(50);
    }
    s.destroy();
    await Promise.all(Array.from({ length: n }, (_, i) => call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps/big-${i}`, { method: 'DELETE' })));
  });
});
