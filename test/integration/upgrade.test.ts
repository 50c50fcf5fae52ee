// The upgrade path (exec, attach, port-forward over WebSocket and SPDY/3.1): kubectl against the
// real cluster gets the apiserver's answer unchanged through the proxy, and, against an echo
// upstream, bytes are spliced both ways with the request head rewritten like any forwarded request.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { WebSocket } from 'ws';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { until } from '../helpers/wait.js';
import { refusalResponse, startEchoUpstream, type EchoUpstream, type RecordedRequest } from '../helpers/echo-upstream.js';

const execFileP = promisify(execFile);
const cluster = sharedCluster();
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const ca = readFileSync(cluster.info.caFile);
const adminToken = cluster.info.users.admin.token ?? '';
const viewerToken = cluster.info.users.viewer.token ?? '';
const node1 = {
  cert: readFileSync(cluster.info.users.node1.certFile ?? ''),
  key: readFileSync(cluster.info.users.node1.keyFile ?? ''),
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Helpers: metrics, polling, a raw TLS client.

async function metricsText(p: TestProxy): Promise<string> {
  const res = await fetch(`${p.metricsUrl}/metrics`);
  return res.text();
}

/** Sum of the samples of `name` whose labels include `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1] ?? '', x[2] ?? '']));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

async function metric(p: TestProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample(await metricsText(p), name, labels);
}

/** Polls `check` every 10 ms until it holds (10 s by default). */
const eventually = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> => {
  await until(what, check, timeoutMs, 10);
};

const gauge = (p: TestProxy) => metric(p, 'kube_cache_proxy_upgraded_connections');
const upgradesTotal = (p: TestProxy, labels: Record<string, string> = {}) => metric(p, 'kube_cache_proxy_upgrades_total', labels);

/** A TLS connection to the proxy that records everything it receives. */
class RawClient {
  readonly socket: TLSSocket;
  ended = false;
  closed = false;
  #chunks: Buffer[] = [];
  #length = 0;
  readonly #waiters = new Set<() => void>();

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => { this.#chunks.push(c); this.#length += c.length; this.#wake(); });
    socket.on('end', () => { this.ended = true; this.#wake(); });
    socket.on('close', () => { this.closed = true; this.#wake(); });
    socket.on('error', () => { /* seen as close */ });
  }

  static connect(url: string, o: { cert?: Buffer; key?: Buffer } = {}): Promise<RawClient> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const s = connect({ host: u.hostname, port: Number(u.port), ca, ALPNProtocols: ['http/1.1'], ...o }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  get length(): number {
    return this.#length;
  }

  data(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  wait(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      const check = () => {
        if (pred()) {
          done();
          resolve();
        } else if (this.closed) {
          done();
          reject(new Error(`connection closed while waiting for ${what}; received ${this.#length} bytes: ${JSON.stringify(this.data().subarray(0, 300).toString('latin1'))}`));
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; received ${this.#length} bytes: ${JSON.stringify(this.data().subarray(0, 300).toString('latin1'))}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /** Waits for a complete response head; returns the status, the head text and where the rest starts. */
  async responseHead(from = 0): Promise<{ status: number; head: string; end: number }> {
    await this.wait('a response head', () => this.data().indexOf('\r\n\r\n', from) >= 0);
    const buf = this.data();
    const i = buf.indexOf('\r\n\r\n', from);
    const head = buf.subarray(from, i).toString('latin1');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
    return { status: m ? Number(m[1]) : 0, head, end: i + 4 };
  }

  waitClosed(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.#waiters.delete(check); reject(new Error('connection did not close')); }, timeoutMs);
      const check = () => {
        if (!this.closed) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
      check();
    });
  }
}

function requestHead(method: string, path: string, headers: ReadonlyArray<readonly [string, string]>): string {
  return `${method} ${path} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

const spdyHeaders = (id: string, extra: ReadonlyArray<readonly [string, string]> = []): Array<readonly [string, string]> => [
  ['Host', 'kube-cache-proxy.test'],
  ['Connection', 'Upgrade'],
  ['Upgrade', 'SPDY/3.1'],
  ['X-Stream-Protocol-Version', 'v4.channel.k8s.io'],
  ['X-Test-Id', id],
  ...extra,
];

let ids = 0;
const nextId = (what: string) => `${what}-${++ids}-${Date.now().toString(36)}`;

/** Opens a spliced SPDY connection through the proxy and waits for the 101. */
async function openSpdy(p: TestProxy, id: string, o: { cert?: Buffer; key?: Buffer; extra?: ReadonlyArray<readonly [string, string]> } = {}): Promise<{ c: RawClient; start: number }> {
  const c = await RawClient.connect(p.url, o);
  const auth: Array<readonly [string, string]> = o.cert ? [] : [['Authorization', `Bearer ${adminToken}`]];
  c.socket.write(requestHead('POST', `/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true&stdout=true&id=${id}`, spdyHeaders(id, [...auth, ...(o.extra ?? [])])));
  const { status, head, end } = await c.responseHead();
  assert.equal(status, 101, head);
  return { c, start: end };
}

// ---------------------------------------------------------------------------------------------
// 1. kubectl against the real cluster.

describe('kubectl exec/attach/port-forward through the proxy', () => {
  let proxy: TestProxy;
  // A stand-in kubelet: the apiserver dials it (without verifying its certificate, as it does
  // without --kubelet-certificate-authority) for pods bound to the Node pointing at it.
  let kubelet: EchoUpstream;
  const suffix = Date.now().toString(36);
  const ns = `upg-${suffix}`;
  const teamPod = `upg-${suffix}`;
  const kubeletNode = `upg-kubelet-${suffix}`;
  const pod = (name: string, nodeName = 'node-1') => JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: { nodeName, containers: [{ name: 'c', image: 'registry.example/demo:1' }] },
  });
  const admin = async (args: string[], input?: string) => {
    const r = await cluster.kubectl('admin', args, { server: direct(), ...(input === undefined ? {} : { input }) });
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  };

  before(async () => {
    proxy = await startTestProxy(cluster);
    await admin(['create', 'namespace', ns]);
    await admin(['create', '-n', ns, '-f', '-'], pod('p'));
    await admin(['create', '-n', 'team-a', '-f', '-'], pod(teamPod));
    // No kubelet ever runs these pods; port-forward only tries the upgrade for a Running pod.
    for (const [n, name] of [[ns, 'p'], ['team-a', teamPod]] as const) {
      await admin(['patch', 'pod', name, '-n', n, '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Running"}}']);
    }
    kubelet = await startEchoUpstream(cluster);
    await admin(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: kubeletNode } }));
    await admin(['patch', 'node', kubeletNode, '--subresource=status', '--type=merge', '-p', JSON.stringify({
      status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: Number(new URL(kubelet.url).port) } } },
    })]);
    await admin(['create', '-n', ns, '-f', '-'], pod('fk', kubeletNode));
  });
  after(async () => {
    await cluster.kubectl('admin', ['delete', 'node', kubeletNode], { server: direct() });
    await kubelet.close();
    await cluster.kubectl('admin', ['delete', 'pod', teamPod, '-n', 'team-a', '--grace-period=0', '--force'], { server: direct() });
    await cluster.kubectl('admin', ['delete', 'namespace', ns, '--wait=false'], { server: direct() });
    await proxy.stop();
  });

  const commands = [
    { name: 'exec', sub: 'pods/exec', args: (n: string, p: string) => ['exec', '-n', n, p, '--', 'ls'] },
    { name: 'attach', sub: 'pods/attach', args: (n: string, p: string) => ['attach', '-n', n, p] },
    { name: 'port-forward', sub: 'pods/portforward', args: (n: string, p: string) => ['port-forward', '-n', n, `pod/${p}`, ':80'] },
  ] as const;
  const users = [
    // admin may exec, but the apiserver finds no Node "node-1" to dial: 404 from the upgrade.
    { user: 'admin', where: () => [ns, 'p'] as const, code: '404', expect: /unable to upgrade connection: pods "node-1" not found/ },
    // node-1 by client certificate: the proxy impersonates it; the Node authorizer refuses.
    { user: 'node1', where: () => [ns, 'p'] as const, code: '403', expect: /User "system:node:node-1" cannot create resource "pods\/\w+"/ },
    // viewer may get pods in team-a but not exec/attach/port-forward there.
    { user: 'viewer', where: () => ['team-a', teamPod] as const, code: '403', expect: /User "viewer" cannot create resource "pods\/\w+"/ },
  ] as const;

  for (const u of users) {
    for (const cmd of commands) {
      test(`${cmd.name} as ${u.user}: the apiserver's error, unchanged, over WebSocket and SPDY through the proxy`, async () => {
        const [n, p] = u.where();
        const args = cmd.args(n, p);
        const labels = { resource: cmd.sub, source: 'upstream' };
        const before = await metricsText(proxy);
        const viaProxy = await cluster.kubectl(u.user, args, { server: proxy.url });
        const straight = await cluster.kubectl(u.user, args, { server: direct() });
        const norm = (s: string) => s.replaceAll(proxy.url, 'SERVER').replaceAll(direct(), 'SERVER');
        assert.match(straight.stderr, u.expect, 'the direct run gives the expected upgrade error');
        assert.notEqual(straight.code, 0);
        assert.equal(viaProxy.code, straight.code, viaProxy.stderr);
        assert.equal(norm(viaProxy.stderr), norm(straight.stderr));
        assert.equal(norm(viaProxy.stdout), norm(straight.stdout));

        // kubectl tried the WebSocket upgrade (GET) and then fell back to SPDY (POST): both went
        // through the proxy's upgrade path and got the apiserver's code.
        const up0 = sample(before, 'kube_cache_proxy_upgrades_total', { code: u.code });
        await eventually('two upgrades counted', async () => (await upgradesTotal(proxy, { code: u.code })) >= up0 + 2);
        const after = await metricsText(proxy);
        assert.equal(sample(after, 'kube_cache_proxy_upgrades_total') - sample(before, 'kube_cache_proxy_upgrades_total'), 2);
        assert.equal(sample(after, 'kube_cache_proxy_upgrades_total', { code: u.code }) - up0, 2);
        for (const verb of ['get', 'create']) {
          const l = { ...labels, verb, code: u.code };
          assert.equal(sample(after, 'kube_cache_proxy_requests_total', l) - sample(before, 'kube_cache_proxy_requests_total', l), 1, `${verb} ${cmd.sub}`);
        }
        await eventually('no upgraded connection left', async () => (await gauge(proxy)) === 0);
      });
    }
  }

  test('a refused upgrade from the apiserver: same status, headers and body through the proxy, then the connection closes', async () => {
    const head = requestHead('POST', `/api/v1/namespaces/${ns}/pods/p/exec?command=ls&stdout=true`, [
      ['Host', 'x'], ['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io'], ['Authorization', `Bearer ${adminToken}`],
    ]);
    const read = async (base: string, untilClose: boolean) => {
      const c = await RawClient.connect(base);
      c.socket.write(head);
      const h = await c.responseHead();
      const len = Number(/\r\ncontent-length: (\d+)/i.exec(h.head)?.[1] ?? 'NaN');
      if (untilClose) await c.waitClosed();
      else await c.wait('the body', () => c.length >= h.end + len);
      assert.equal(c.length, h.end + len, 'exactly one response');
      c.socket.destroy();
      const lines = h.head.split('\r\n');
      const headers = lines.slice(1).filter((l) => !/^(date|audit-id|connection):/i.test(l)).sort();
      return { statusLine: lines[0], headers, connection: lines.filter((l) => /^connection:/i.test(l)), body: c.data().subarray(h.end).toString('utf8') };
    };
    const straight = await read(direct(), false);
    const viaProxy = await read(proxy.url, true);
    assert.equal(straight.statusLine, 'HTTP/1.1 404 Not Found');
    assert.match(straight.body, /pods \\?"node-1\\?" not found/);
    assert.equal(viaProxy.statusLine, straight.statusLine);
    assert.deepEqual(viaProxy.headers, straight.headers);
    assert.equal(viaProxy.body, straight.body);
    assert.deepEqual(viaProxy.connection, ['Connection: close']);
    await eventually('no upgraded connection left', async () => (await gauge(proxy)) === 0);
  });

  test('a 101 from the apiserver: SPDY and WebSocket spliced through proxy and apiserver to the kubelet and back', async () => {
    const path = `/api/v1/namespaces/${ns}/pods/fk/exec?command=sh&stdin=true&stdout=true`;
    const admin101 = await (async () => {
      // SPDY as a token client, and as a certificate client (impersonated by the proxy).
      const dir = mkdtempSync(join(tmpdir(), 'kcp-masters-'));
      try {
        await execFileP(cluster.info.kcluster, ['pki', 'cert', '--ca', cluster.info.caFile.replace(/\.crt$/, ''), '--out', join(dir, 'm'), '--cn', 'upgrade-master', '--org', 'system:masters', '--client']);
        return { cert: readFileSync(join(dir, 'm.crt')), key: readFileSync(join(dir, 'm.key')) };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    })();
    for (const who of ['token', 'certificate'] as const) {
      const before = kubelet.requests.length;
      const c = await RawClient.connect(proxy.url, who === 'certificate' ? admin101 : {});
      const auth: Array<readonly [string, string]> = who === 'token' ? [['Authorization', `Bearer ${adminToken}`]] : [];
      c.socket.write(requestHead('POST', path, [['Host', 'x'], ['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io'], ...auth]));
      const h = await c.responseHead();
      assert.equal(h.status, 101, `${who}: ${h.head}`);
      assert.equal(kubelet.requests.length, before + 1);
      assert.match(kubelet.requests[before]?.url ?? '', new RegExp(`^/exec/${ns}/fk/c\\?`));
      const payload = randomBytes(1024 * 1024);
      c.socket.write(payload);
      await c.wait('1 MB back from the kubelet', () => c.length >= h.end + payload.length, 20_000);
      assert.ok(c.data().subarray(h.end).equals(payload), `${who}: the bytes came back intact`);
      c.socket.end();
      await c.waitClosed();
      await eventually('the kubelet side closed', () => kubelet.open === 0);
    }

    // WebSocket v4.channel.k8s.io is proxied to the kubelet as it is (v5 would be translated to SPDY).
    const ws = new WebSocket(`${proxy.url.replace(/^https:/, 'wss:')}${path}`, ['v4.channel.k8s.io'], { ca, headers: { Authorization: `Bearer ${adminToken}` } });
    const received: Buffer[] = [];
    ws.on('message', (data) => { received.push(toBuffer(data)); });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    });
    const sent = [Buffer.from('\0echo'), randomBytes(1024 * 1024), Buffer.from('\0last')];
    for (const m of sent) ws.send(m);
    await eventually('messages back from the kubelet', () => received.length >= sent.length, 20_000);
    sent.forEach((m, i) => assert.ok(received[i]?.equals(m), `message ${i} intact`));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000);
    assert.equal(await closed, 1000);
    await eventually('the kubelet side closed', () => kubelet.open === 0);
    await eventually('no upgraded connection left', async () => (await gauge(proxy)) === 0);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Splicing, against an echo upstream.

describe('upgrades spliced to an echo upstream', () => {
  let echo: EchoUpstream;
  let proxy: TestProxy;
  before(async () => {
    echo = await startEchoUpstream(cluster);
    proxy = await startTestProxy(cluster, { upstreams: [echo.url], cache: undefined });
  });
  after(async () => {
    await proxy.stop();
    await echo.close();
  });

  const seen = (id: string): RecordedRequest => {
    const r = echo.find(id);
    assert.ok(r, `the upstream saw request ${id}`);
    return r;
  };

  test('WebSocket: messages echoed both ways, including a 1 MB binary one', async () => {
    const id = nextId('ws');
    const wsUrl = `${proxy.url.replace(/^https:/, 'wss:')}/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true&stdout=true`;
    const ws = new WebSocket(wsUrl, ['v5.channel.k8s.io'], { ca, headers: { Authorization: `Bearer ${adminToken}`, 'X-Test-Id': id } });
    const received: Array<{ data: Buffer; binary: boolean }> = [];
    ws.on('message', (data, binary) => { received.push({ data: toBuffer(data), binary }); });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    });
    assert.equal(ws.protocol, 'v5.channel.k8s.io');
    const big = randomBytes(1024 * 1024);
    const sent: Array<{ data: Buffer; binary: boolean }> = [
      { data: Buffer.from('hello'), binary: false },
      { data: Buffer.from('grüße, 世界'), binary: false },
      { data: Buffer.alloc(0), binary: true },
      ...Array.from({ length: 50 }, (_, i) => ({ data: randomBytes(1 + i * 37), binary: true })),
      { data: big, binary: true },
      { data: Buffer.from('last'), binary: false },
    ];
    for (const m of sent) ws.send(m.data, { binary: m.binary });
    await eventually('all messages echoed', () => received.length >= sent.length, 20_000);
    assert.equal(received.length, sent.length);
    for (let i = 0; i < sent.length; i++) {
      assert.equal(received[i]?.binary, sent[i]?.binary, `message ${i} type`);
      assert.ok(received[i]?.data.equals(sent[i]?.data ?? Buffer.alloc(0)), `message ${i} (${sent[i]?.data.length} bytes) echoed intact`);
    }
    assert.equal(await gauge(proxy), 1);

    const r = seen(id);
    assert.equal(r.method, 'GET');
    assert.deepEqual(echo.header(r, 'upgrade'), ['websocket']);
    assert.deepEqual(echo.header(r, 'authorization'), [`Bearer ${adminToken}`]);
    assert.deepEqual(echo.header(r, 'sec-websocket-protocol'), ['v5.channel.k8s.io']);
    assert.equal(echo.header(r, 'sec-websocket-key').length, 1);
    assert.deepEqual(echo.header(r, 'impersonate-user'), []);

    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000, 'done');
    assert.equal(await closed, 1000, 'the close handshake went through');
    await eventually('upstream side closed', () => echo.open === 0);
    await eventually('gauge back to 0', async () => (await gauge(proxy)) === 0);
  });

  test('SPDY/3.1: the 101 passes through unchanged and 1 MB of random bytes is echoed', async () => {
    const id = nextId('spdy');
    const c = await RawClient.connect(proxy.url);
    // Bytes sent right behind the request head (the `head` of the upgrade) are spliced too.
    const early = Buffer.from('early bytes\0\x01\x02');
    c.socket.write(Buffer.concat([
      Buffer.from(requestHead('POST', `/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true`, spdyHeaders(id, [['Authorization', `Bearer ${adminToken}`]]))),
      early,
    ]));
    const { status, head, end } = await c.responseHead();
    assert.equal(status, 101);
    assert.equal(head, 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1');
    await c.wait('the early bytes', () => c.length >= end + early.length);
    assert.ok(c.data().subarray(end, end + early.length).equals(early));

    const payload = randomBytes(1024 * 1024);
    const start = end + early.length;
    // Written in uneven pieces, read back concurrently.
    for (let off = 0; off < payload.length;) {
      const n = Math.min(payload.length - off, 1 + Math.floor(Math.random() * 100_000));
      c.socket.write(payload.subarray(off, off + n));
      off += n;
    }
    await c.wait('1 MB echoed', () => c.length >= start + payload.length, 20_000);
    assert.equal(c.length, start + payload.length, 'nothing more than the echo');
    assert.ok(c.data().subarray(start).equals(payload), 'the echoed bytes are the bytes sent');
    assert.equal(await gauge(proxy), 1);

    c.socket.end();
    await c.waitClosed();
    assert.ok(c.ended, 'the client saw a clean end');
    await eventually('upstream side closed', () => echo.open === 0);
    await eventually('gauge back to 0', async () => (await gauge(proxy)) === 0);
    assert.ok((await upgradesTotal(proxy, { code: '101' })) >= 1);
  });

  test('token client: hop-by-hop headers stripped, Upgrade kept, Authorization forwarded', async () => {
    const id = nextId('hop');
    const { c } = await openSpdy(proxy, id, {
      extra: [
        ['Connection', 'X-Foo'],
        ['X-Foo', 'hop'],
        ['Keep-Alive', 'timeout=5'],
        ['Proxy-Authorization', 'Basic c2VjcmV0'],
        ['TE', 'trailers'],
        ['Trailer', 'X-Checksum'],
        ['X-Bar', 'end-to-end'],
        ['X-Forwarded-For', '10.1.2.3'],
        ['User-Agent', 'upgrade-test/1'],
      ],
    });
    const r = seen(id);
    assert.equal(r.method, 'POST');
    assert.match(r.url, /^\/api\/v1\/namespaces\/ns\/pods\/p\/exec\?command=sh&stdin=true&stdout=true&id=/);
    for (const h of ['x-foo', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'impersonate-user', 'impersonate-group']) {
      assert.deepEqual(echo.header(r, h), [], `${h} is not forwarded`);
    }
    assert.deepEqual(echo.header(r, 'upgrade'), ['SPDY/3.1']);
    assert.equal(echo.header(r, 'connection').length, 1);
    const conn = (echo.header(r, 'connection')[0] ?? '').split(',').map((t) => t.trim().toLowerCase());
    assert.ok(conn.includes('upgrade'), `Connection: ${conn.join(', ')}`);
    assert.ok(!conn.includes('x-foo'));
    assert.deepEqual(echo.header(r, 'host'), [new URL(echo.url).host]);
    assert.deepEqual(echo.header(r, 'authorization'), [`Bearer ${adminToken}`]);
    assert.deepEqual(echo.header(r, 'x-bar'), ['end-to-end']);
    assert.deepEqual(echo.header(r, 'x-stream-protocol-version'), ['v4.channel.k8s.io']);
    assert.deepEqual(echo.header(r, 'user-agent'), ['upgrade-test/1']);
    assert.deepEqual(echo.header(r, 'x-forwarded-for'), ['10.1.2.3, 127.0.0.1']);
    c.socket.destroy();
    await eventually('gauge back to 0', async () => (await gauge(proxy)) === 0);
  });

  test('WebSocket token client (viewer): Authorization forwarded as sent', async () => {
    const id = nextId('ws-viewer');
    const ws = new WebSocket(`${proxy.url.replace(/^https:/, 'wss:')}/api/v1/namespaces/team-a/pods/p/attach`, { ca, headers: { Authorization: `Bearer ${viewerToken}`, 'X-Test-Id': id } });
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const r = seen(id);
    assert.deepEqual(echo.header(r, 'authorization'), [`Bearer ${viewerToken}`]);
    assert.deepEqual(echo.header(r, 'impersonate-user'), []);
    ws.terminate();
    await eventually('upstream side closed', () => echo.open === 0);
    await eventually('gauge back to 0', async () => (await gauge(proxy)) === 0);
  });

  test('client certificate: impersonated under the proxy\'s token, the client\'s Authorization dropped', async () => {
    const id = nextId('cert');
    const { c, start } = await openSpdy(proxy, id, { ...node1, extra: [['Authorization', 'Bearer not-the-proxys-token']] });
    const r = seen(id);
    assert.deepEqual(echo.header(r, 'impersonate-user'), ['system:node:node-1']);
    assert.deepEqual(echo.header(r, 'impersonate-group'), ['system:nodes']);
    assert.deepEqual(echo.header(r, 'authorization'), [`Bearer ${adminToken}`], 'only the proxy\'s own credentials');
    assert.deepEqual(echo.header(r, 'upgrade'), ['SPDY/3.1']);
    // And bytes flow on the impersonated connection too.
    const payload = randomBytes(64 * 1024);
    c.socket.write(payload);
    await c.wait('echo', () => c.length >= start + payload.length);
    assert.ok(c.data().subarray(start).equals(payload));
    c.socket.destroy();
    await eventually('gauge back to 0', async () => (await gauge(proxy)) === 0);
  });

  test('client certificate sending Impersonate-*: 403 (or the apiserver\'s 400) from the proxy, nothing reaches the upstream', async () => {
    for (const [name, value] of [['Impersonate-User', 'admin'], ['impersonate-group', 'system:masters'], ['Impersonate-Extra-scopes', 'x']] as const) {
      const id = nextId('cert-imp');
      const count = echo.requests.length;
      const c = await RawClient.connect(proxy.url, node1);
      c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(id, [[name, value]])));
      await c.waitClosed();
      const text = c.data().toString('utf8');
      const { status, end } = parseHead(text);
      const body: unknown = JSON.parse(text.slice(end));
      if (name === 'Impersonate-User') {
        assert.equal(status, 403, text);
        assert.deepEqual(body, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
          message: 'kube-cache-proxy: clients authenticated by certificate cannot impersonate (user "system:node:node-1")',
          reason: 'Forbidden', code: 403,
        });
      } else {
        // A group or extra without a user: kube-apiserver's own 400, before any permission check.
        assert.equal(status, 400, text);
        const wanted = name === 'impersonate-group'
          ? 'Groups:[]string{"system:masters"}, Extra:map[string][]string(nil)'
          : 'Groups:[]string(nil), Extra:map[string][]string{"scopes":[]string{"x"}}';
        assert.deepEqual(body, {
          kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
          message: `requested &user.DefaultInfo{Name:"", UID:"", ${wanted}} without impersonating a user name`,
          reason: 'BadRequest', code: 400,
        });
      }
      await sleep(50);
      assert.equal(echo.requests.length, count, `${name}: nothing reached the upstream`);
      assert.equal(echo.find(id), undefined);
    }
    assert.equal(await gauge(proxy), 0);
  });

  test('client certificate from another CA, no token: 401 from the proxy, nothing reaches the upstream', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kcp-other-ca-'));
    try {
      await execFileP(cluster.info.kcluster, ['pki', 'ca', '--out', join(dir, 'ca'), '--cn', 'someone-else']);
      await execFileP(cluster.info.kcluster, ['pki', 'cert', '--ca', join(dir, 'ca'), '--out', join(dir, 'mallory'), '--cn', 'system:node:node-1', '--org', 'system:nodes', '--client']);
      const count = echo.requests.length;
      const c = await RawClient.connect(proxy.url, { cert: readFileSync(join(dir, 'mallory.crt')), key: readFileSync(join(dir, 'mallory.key')) });
      c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(nextId('bad-cert'))));
      await c.waitClosed();
      const { status } = parseHead(c.data().toString('utf8'));
      assert.equal(status, 401);
      await sleep(50);
      assert.equal(echo.requests.length, count);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a refused upgrade reaches the client unchanged and the connection then closes', async () => {
    for (const [protocol, method] of [['SPDY/3.1', 'POST'], ['websocket', 'GET']] as const) {
      const id = nextId('refused');
      const before = await upgradesTotal(proxy, { code: '400' });
      const c = await RawClient.connect(proxy.url);
      const ws: Array<readonly [string, string]> = protocol === 'websocket' ? [['Sec-WebSocket-Key', randomBytes(16).toString('base64')], ['Sec-WebSocket-Version', '13']] : [];
      c.socket.write(requestHead(method, `/api/v1/namespaces/ns/pods/p/exec?refuse=400`, [
        ['Host', 'x'], ['Connection', 'Upgrade'], ['Upgrade', protocol], ['Authorization', `Bearer ${adminToken}`], ['X-Test-Id', id], ...ws,
      ]));
      await c.waitClosed();
      assert.equal(c.data().toString('latin1'), refusalResponse(400, true), `${protocol}: byte for byte`);
      const r = seen(id);
      const conn = (echo.header(r, 'connection')[0] ?? '').split(',').map((t) => t.trim().toLowerCase());
      assert.ok(conn.includes('close'), 'the proxy asked the upstream to close after answering');
      await eventually('the refusal counted', async () => (await upgradesTotal(proxy, { code: '400' })) === before + 1);
    }
    await eventually('gauge back to 0', async () => (await gauge(proxy)) === 0);
  });

  test('closing either side closes the other; the gauge returns to 0', async () => {
    // Client cuts the connection: the upstream side closes.
    const a = await openSpdy(proxy, nextId('cut-client'));
    await eventually('gauge 1', async () => (await gauge(proxy)) === 1);
    assert.equal(echo.open, 1);
    a.c.socket.destroy();
    await eventually('upstream side closed after the client cut', () => echo.open === 0);
    await eventually('gauge 0', async () => (await gauge(proxy)) === 0);

    // Upstream cuts the connection: the client's side closes.
    const b = await openSpdy(proxy, nextId('cut-upstream'));
    const w = new WebSocket(`${proxy.url.replace(/^https:/, 'wss:')}/api/v1/namespaces/ns/pods/p/exec`, { ca, headers: { Authorization: `Bearer ${adminToken}` } });
    await new Promise<void>((resolve, reject) => { w.once('open', () => resolve()); w.once('error', reject); });
    const wsClosed = new Promise<number>((resolve) => w.once('close', (code) => resolve(code)));
    await eventually('gauge 2', async () => (await gauge(proxy)) === 2);
    assert.equal(echo.open, 2);
    echo.destroyConnections();
    await b.c.waitClosed();
    assert.equal(await wsClosed, 1006, 'the WebSocket client saw the connection drop');
    await eventually('gauge 0', async () => (await gauge(proxy)) === 0);

    // Client half-closes (FIN): the upstream ends too and the client sees a clean end.
    const d = await openSpdy(proxy, nextId('half-close'));
    d.c.socket.write('last words');
    await d.c.wait('echo before the end', () => d.c.length >= d.start + 10);
    d.c.socket.end();
    await d.c.waitClosed();
    assert.ok(d.c.ended);
    assert.equal(d.c.data().subarray(d.start).toString(), 'last words');
    await eventually('upstream side closed', () => echo.open === 0);
    await eventually('gauge 0', async () => (await gauge(proxy)) === 0);
  });

  test('an upgrade on a kept-alive connection after a plain request is spliced too', async () => {
    const c = await RawClient.connect(proxy.url);
    c.socket.write(requestHead('GET', '/version', [['Host', 'x'], ['Authorization', `Bearer ${adminToken}`]]));
    const first = await c.responseHead();
    assert.equal(first.status, 404);
    const len = /content-length: (\d+)/i.exec(first.head);
    const bodyEnd = first.end + Number(len?.[1] ?? 'NaN');
    await c.wait('the first body', () => c.length >= bodyEnd);
    const id = nextId('reuse');
    c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(id, [['Authorization', `Bearer ${adminToken}`]])));
    const second = await c.responseHead(bodyEnd);
    assert.equal(second.status, 101, second.head);
    const payload = randomBytes(100_000);
    c.socket.write(payload);
    await c.wait('echo', () => c.length >= second.end + payload.length);
    assert.ok(c.data().subarray(second.end).equals(payload));
    assert.ok(echo.find(id));
    c.socket.destroy();
    await eventually('gauge 0', async () => (await gauge(proxy)) === 0);
  });

  test('an upgrade pipelined behind a slow request waits for that response (as Go\'s server does)', async () => {
    const id = nextId('pipelined');
    const c = await RawClient.connect(proxy.url);
    c.socket.write(
      requestHead('GET', '/api/v1/namespaces/ns/pods?delay=300', [['Host', 'x'], ['Authorization', `Bearer ${adminToken}`]]) +
      requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(id, [['Authorization', `Bearer ${adminToken}`]])),
    );
    const first = await c.responseHead();
    assert.equal(first.status, 404, `the slow response comes first: ${first.head}`);
    const bodyEnd = first.end + Number(/\r\ncontent-length: (\d+)/i.exec(first.head)?.[1] ?? 'NaN');
    await c.wait('the first body', () => c.length >= bodyEnd);
    assert.equal(c.data().subarray(first.end, bodyEnd).toString(), 'echo upstream: upgrades only\n');
    const second = await c.responseHead(bodyEnd);
    assert.equal(second.status, 101, second.head);
    c.socket.write('after the pipeline');
    await c.wait('echo', () => c.length >= second.end + 18);
    assert.equal(c.data().subarray(second.end).toString(), 'after the pipeline');
    c.socket.destroy();
    await eventually('gauge 0', async () => (await gauge(proxy)) === 0);
  });

  test('a chunked upgrade request: the framing header travels with the raw body bytes', async () => {
    const id = nextId('chunked');
    const c = await RawClient.connect(proxy.url);
    const body = '5\r\nhello\r\n0\r\n\r\n';
    c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(id, [
      ['Authorization', `Bearer ${adminToken}`], ['Transfer-Encoding', 'chunked'],
    ])) + body);
    const h = await c.responseHead();
    assert.equal(h.status, 101);
    await c.wait('the body echoed', () => c.length >= h.end + body.length);
    assert.equal(c.data().subarray(h.end).toString(), body, 'the body bytes reached the upstream unchanged');
    const r = seen(id);
    assert.deepEqual(echo.header(r, 'transfer-encoding'), ['chunked']);
    assert.deepEqual(echo.header(r, 'content-length'), []);
    c.socket.destroy();
    await eventually('gauge 0', async () => (await gauge(proxy)) === 0);
  });

  test('a 101 head arriving one byte at a time is passed on intact and counted as 101', async () => {
    const before = await upgradesTotal(proxy, { code: '101' });
    const c = await RawClient.connect(proxy.url);
    c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh&trickle=1', spdyHeaders(nextId('trickle'), [['Authorization', `Bearer ${adminToken}`]])));
    const h = await c.responseHead();
    assert.equal(h.head, 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1');
    c.socket.write('ping');
    await c.wait('echo', () => c.length >= h.end + 4);
    c.socket.end();
    await c.waitClosed();
    await eventually('the upgrade counted', async () => (await upgradesTotal(proxy)) > 0 && (await gauge(proxy)) === 0);
    assert.equal(await upgradesTotal(proxy, { code: '101' }), before + 1);
  });

  test('an upstream closing without answering: 503 Status from the proxy, not a silent close', async () => {
    const before = await metric(proxy, 'kube_cache_proxy_upstream_errors_total');
    const c = await RawClient.connect(proxy.url);
    c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh&hangup=1', spdyHeaders(nextId('hangup'), [['Authorization', `Bearer ${adminToken}`]])));
    await c.waitClosed();
    const text = c.data().toString('utf8');
    const { status, head, end } = parseHead(text);
    assert.equal(status, 503, text);
    assert.match(head, /\r\nRetry-After: 1\r\n/i);
    const body: unknown = JSON.parse(text.slice(end));
    assert.equal(typeof body === 'object' && body !== null && 'reason' in body ? body.reason : undefined, 'ServiceUnavailable');
    assert.equal(await metric(proxy, 'kube_cache_proxy_upstream_errors_total'), before + 1);
    await eventually('gauge 0', async () => (await gauge(proxy)) === 0);
  });

  test('shutdown ends spliced connections and finishes', async () => {
    const own = await startTestProxy(cluster, { upstreams: [echo.url], cache: undefined, shutdownGracePeriodSeconds: 2 });
    const { c } = await openSpdy(own, nextId('shutdown'));
    await eventually('gauge 1', async () => (await gauge(own)) === 1);
    const started = Date.now();
    await own.stop();
    await c.waitClosed(5_000);
    assert.ok(Date.now() - started < 4_000, `shutdown took ${Date.now() - started} ms`);
    await eventually('upstream side closed', () => echo.open === 0);
  });

  test('an upgrade arriving while the proxy shuts down: 503 Status, nothing reaches the upstream', async () => {
    const own = await startTestProxy(cluster, { upstreams: [echo.url], cache: undefined, shutdownGracePeriodSeconds: 5 });
    let stopping: Promise<void> | undefined;
    try {
      // A short request in flight keeps the shutdown draining for a while.
      const slow = await RawClient.connect(own.url);
      slow.socket.write(requestHead('GET', '/api/v1/namespaces/ns/configmaps?delay=1500', [['Host', 'x'], ['Authorization', `Bearer ${adminToken}`]]));
      await eventually('the slow request upstream', () => echo.requests.some((r) => r.url.includes('configmaps?delay=1500')));
      // An upgrade request whose head is still on its way when the shutdown starts.
      const id = nextId('draining');
      const late = await RawClient.connect(own.url);
      const full = requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(id, [['Authorization', `Bearer ${adminToken}`]]));
      late.socket.write(full.slice(0, 40));
      await sleep(50);
      stopping = own.stop();
      await sleep(100);
      late.socket.write(full.slice(40));
      await late.waitClosed();
      const text = late.data().toString('utf8');
      const { status, end } = parseHead(text);
      assert.equal(status, 503, text);
      const body: unknown = JSON.parse(text.slice(end));
      assert.equal(typeof body === 'object' && body !== null && 'message' in body ? body.message : undefined, 'kube-cache-proxy is shutting down');
      assert.equal(echo.find(id), undefined, 'nothing reached the upstream');
      const first = await slow.responseHead();
      assert.equal(first.status, 404, 'the request in flight was answered');
    } finally {
      await (stopping ?? own.stop());
    }
  });

  test('an upstream that accepts but never completes TLS: 503 after the connect timeout; a client leaving first leaks nothing', async () => {
    const silent = createServer(() => { /* accept and say nothing */ });
    const held = new Set<Socket>();
    silent.on('connection', (s) => { held.add(s); s.on('close', () => held.delete(s)); s.on('error', () => s.destroy()); s.resume(); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const own = await startTestProxy(cluster, { upstreams: [`https://127.0.0.1:${(silent.address() as AddressInfo).port}`], cache: undefined });
    try {
      const send = (c: RawClient) => c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(nextId('silent'), [['Authorization', `Bearer ${adminToken}`]])));
      // A client that gives up while the proxy is still connecting.
      const early = await RawClient.connect(own.url);
      send(early);
      await eventually('the proxy connecting upstream', () => held.size === 1);
      early.socket.destroy();
      await eventually('the upstream attempt dropped', () => held.size === 0);
      await eventually('gauge 0', async () => (await gauge(own)) === 0);

      const started = Date.now();
      const c = await RawClient.connect(own.url);
      send(c);
      await c.waitClosed(20_000);
      const { status, head } = parseHead(c.data().toString('utf8'));
      assert.equal(status, 503, head);
      assert.ok(Date.now() - started >= 9_000, `gave up after ${Date.now() - started} ms`);
      assert.equal(await metric(own, 'kube_cache_proxy_upstream_errors_total', { reason: 'timeout' }), 1);
      await eventually('gauge 0', async () => (await gauge(own)) === 0);
      await eventually('the upstream attempt dropped', () => held.size === 0);
    } finally {
      await own.stop();
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('an unreachable upstream: 503 Status with Retry-After, then the connection closes', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const own = await startTestProxy(cluster, { upstreams: [`https://127.0.0.1:${port}`], cache: undefined });
    try {
      const c = await RawClient.connect(own.url);
      c.socket.write(requestHead('POST', '/api/v1/namespaces/ns/pods/p/exec?command=sh', spdyHeaders(nextId('down'), [['Authorization', `Bearer ${adminToken}`]])));
      await c.waitClosed();
      const text = c.data().toString('utf8');
      const { status, head, end } = parseHead(text);
      assert.equal(status, 503, text);
      assert.match(head, /\r\nRetry-After: 1\r\n/i);
      const body: unknown = JSON.parse(text.slice(end));
      assert.equal(typeof body === 'object' && body !== null && 'reason' in body ? body.reason : undefined, 'ServiceUnavailable');
      await eventually('gauge 0', async () => (await gauge(own)) === 0);
      assert.equal(await upgradesTotal(own, { code: '503' }), 1);
    } finally {
      await own.stop();
    }
  });
});

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof ArrayBuffer ? Buffer.from(new Uint8Array(data)) : data;
}

function parseHead(text: string): { status: number; head: string; end: number } {
  const i = text.indexOf('\r\n\r\n');
  const head = i >= 0 ? text.slice(0, i) : text;
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
  return { status: m ? Number(m[1]) : 0, head, end: i + 4 };
}
