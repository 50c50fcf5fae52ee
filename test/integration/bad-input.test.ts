// Bad input through the proxy, sent raw over TLS: malformed request lines and targets, oversized
// headers, request smuggling (Content-Length with Transfer-Encoding), clients vanishing mid-body and
// mid-watch, and a thousand of these at once. What the proxy answers itself is a 4xx Kubernetes
// Status (never fastify's {"statusCode":…} body), what it forwards is answered as the apiserver
// answers it; nothing hangs or 5xxs, a normal request still works afterwards, and the proxy gives
// back its sockets, its in-flight slots and its memory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { both, call, closeAgents } from '../helpers/http.js';
import { PROGRESS_WATCHES_MAX_IN_FLIGHT } from '../../cache/progress-watch.js';

const cluster = sharedCluster();
const ca = readFileSync(cluster.info.caFile);
let proxy: TestProxy;
before(async () => { proxy = await startTestProxy(cluster); });
after(async () => {
  await proxy.stop();
  await closeAgents();
});

const direct = () => cluster.info.apiservers[0]?.url ?? '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const suffix = `${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client over TLS that reads exactly one response.

interface RawResponse {
  readonly status: number;
  readonly statusLine: string;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

type Outcome =
  | { readonly kind: 'response'; readonly res: RawResponse }
  /** The connection ended; `bytes` is whatever arrived (empty for a clean close without an answer). */
  | { readonly kind: 'closed'; readonly bytes: Buffer; readonly error?: string }
  | { readonly kind: 'timeout'; readonly bytes: Buffer };

/** Parses one response from the start of `buf`; undefined while incomplete. `eof`: the peer closed. */
function parseResponse(buf: Buffer, eof: boolean): RawResponse | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines[0] ?? '';
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const rest = buf.subarray(end + 4);
  const status = Number(m[1]);
  const done = (body: Buffer): RawResponse => ({ status, statusLine, headers, body });
  if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = rest.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(rest.subarray(at, lineEnd).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size in response');
      if (size === 0) return rest.indexOf('\r\n', lineEnd + 2) >= 0 ? done(Buffer.concat(chunks)) : undefined;
      if (rest.length < lineEnd + 2 + size + 2) return undefined;
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  const cl = headers.get('content-length');
  if (cl !== undefined) return rest.length >= Number(cl) ? done(rest.subarray(0, Number(cl))) : undefined;
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return done(Buffer.alloc(0));
  return eof ? done(rest) : undefined;
}

interface ExchangeOptions {
  /** The server to talk to; the proxy by default. */
  readonly base?: string;
  readonly timeoutMs?: number;
  /** Writes after the first one, each after this many ms (a body sent in pieces). */
  readonly more?: ReadonlyArray<string | Buffer>;
  readonly gapMs?: number;
}

function openTls(base: string): TLSSocket {
  const u = new URL(base);
  return connect({ host: u.hostname, port: Number(u.port), ca, ALPNProtocols: ['http/1.1'] });
}

/** Sends `data` on a new TLS connection and waits for one whole response, the end of the connection, or the timeout. */
function exchange(data: string | Buffer, o: ExchangeOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = openTls(o.base ?? proxy.url);
    let buf = Buffer.alloc(0);
    let settled = false;
    const settle = (out: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(out);
    };
    const timer = setTimeout(() => settle({ kind: 'timeout', bytes: buf }), o.timeoutMs ?? 10_000);
    const tryParse = (eof: boolean, error?: string) => {
      try {
        const res = parseResponse(buf, eof);
        if (res) settle({ kind: 'response', res });
        else if (eof) settle({ kind: 'closed', bytes: buf, ...(error ? { error } : {}) });
      } catch (err) {
        settle({ kind: 'closed', bytes: buf, error: String(err) });
      }
    };
    socket.on('secureConnect', () => {
      socket.write(data);
      let delay = 0;
      for (const piece of o.more ?? []) {
        delay += o.gapMs ?? 20;
        setTimeout(() => { if (!socket.destroyed) socket.write(piece); }, delay);
      }
    });
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      tryParse(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => tryParse(true, err.code ?? err.message));
    socket.on('close', () => tryParse(true));
  });
}

const show = (o: Outcome) => o.kind === 'response'
  ? `${o.res.statusLine} ${o.res.body.subarray(0, 300).toString('latin1')}`
  : `${o.kind}${'error' in o && o.error ? ` (${o.error})` : ''} after ${JSON.stringify(o.bytes.subarray(0, 300).toString('latin1'))}`;

/** A Kubernetes Status body for `status`, not fastify's {"statusCode":…} or an empty body. */
function assertStatusBody(res: RawResponse, label: string): void {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${label}: content-type of ${res.statusLine}`);
  let body: unknown;
  try {
    body = JSON.parse(res.body.toString('utf8'));
  } catch {
    assert.fail(`${label}: body is not JSON: ${JSON.stringify(res.body.toString('latin1'))}`);
  }
  assert.ok(typeof body === 'object' && body !== null, `${label}: body is not an object`);
  const s = body as Record<string, unknown>;
  assert.equal(s['statusCode'], undefined, `${label}: fastify's error shape: ${res.body.toString()}`);
  assert.equal(s['kind'], 'Status', `${label}: ${res.body.toString()}`);
  assert.equal(s['apiVersion'], 'v1', label);
  assert.equal(s['status'], 'Failure', label);
  assert.equal(s['code'], res.status, label);
  assert.equal(typeof s['reason'], 'string', label);
  assert.equal(typeof s['message'], 'string', label);
}

/**
 * The proxy answered by itself with `expected` (a 4xx unless stated) as a Status, or, where
 * `mayClose`, closed the connection without a byte. Never a hang, a 5xx or a cut response.
 */
function assertRefused(o: Outcome, label: string, expected: number, mayClose = false): void {
  assert.notEqual(o.kind, 'timeout', `${label}: no answer and no close: ${show(o)}`);
  if (o.kind === 'closed') {
    assert.ok(mayClose, `${label}: connection closed without an answer: ${show(o)}`);
    assert.equal(o.bytes.length, 0, `${label}: a cut response: ${show(o)}`);
    return;
  }
  if (o.kind !== 'response') return;
  assert.equal(o.res.status, expected, `${label}: ${show(o)}`);
  assertStatusBody(o.res, label);
  // kube-apiserver stamps every answer it gives with Audit-Id: this one is the proxy's own.
  assert.equal(o.res.headers.get('audit-id'), undefined, `${label}: answered by the apiserver: ${show(o)}`);
}

// ---------------------------------------------------------------------------------------------
// The proxy's metrics, sockets and memory.

async function metrics(): Promise<string> {
  const res = await request(`${proxy.metricsUrl}/metrics`);
  return res.body.text();
}

function gauge(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function requestsTotal(text: string): number {
  let sum = 0;
  for (const l of text.split('\n')) if (l.startsWith('kube_cache_proxy_requests_total{')) sum += Number(l.slice(l.lastIndexOf(' ') + 1));
  return sum;
}

interface InUse { readonly short: number; readonly longRunning: number; readonly upgraded: number }

async function inUse(): Promise<InUse> {
  const m = await metrics();
  return {
    short: gauge(m, 'kube_cache_proxy_inflight_requests', '{kind="short"}'),
    longRunning: gauge(m, 'kube_cache_proxy_inflight_requests', '{kind="long_running"}'),
    upgraded: gauge(m, 'kube_cache_proxy_upgraded_connections'),
  };
}

async function waitFor<T>(what: string, probe: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await probe();
  while (!ok(v)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(v)} after ${timeoutMs} ms`);
    await sleep(50);
    v = await probe();
  }
  return v;
}

const idle = (what: string) => waitFor(`${what}: in-flight requests`, inUse, (u) => u.short === 0 && u.longRunning === 0 && u.upgraded === 0);

/** The proxy runs in this process: its sockets are among this process's handles. */
/** How many resources the proxy under test caches (its default configuration). */
function proxyCachedResources(): number {
  return proxy.proxy.cache?.config.resources.length ?? 0;
}

function sockets(): { accepted: number; upstream: number; tcpResources: number } {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  const proxyPort = Number(new URL(proxy.url).port);
  const apiserverPort = Number(new URL(direct()).port);
  let accepted = 0;
  let upstream = 0;
  for (const h of handles) {
    if (!(h instanceof Socket) || h.destroyed) continue;
    if (h.localPort === proxyPort) accepted++;
    else if (h.remotePort === apiserverPort) upstream++;
  }
  // TLS sockets are TCPSocketWrap resources too.
  const tcpResources = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
  return { accepted, upstream, tcpResources };
}

let gcFn: (() => void) | undefined;
function gc(): void {
  if (!gcFn) {
    const exposed = (globalThis as { gc?: unknown }).gc;
    if (typeof exposed === 'function') gcFn = () => { exposed(); };
    else {
      setFlagsFromString('--expose-gc');
      const fn: unknown = runInNewContext('gc');
      if (typeof fn !== 'function') throw new Error('no gc function');
      gcFn = () => { fn(); };
    }
  }
  gcFn();
}

async function heapUsed(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await sleep(20);
  }
  return process.memoryUsage().heapUsed;
}

/** A normal request through the proxy still works, and answers what the apiserver answers. */
async function stillServes(label: string): Promise<void> {
  const { direct: d, proxied: p } = await both(cluster, proxy.url, '/version');
  assert.equal(p.status, 200, `${label}: GET /version through the proxy: ${p.status} ${p.text()}`);
  assert.equal(d.status, 200);
  assert.equal(p.text(), d.text(), `${label}: /version differs`);
}

// ---------------------------------------------------------------------------------------------
// Requests.

const token = cluster.info.users.admin.token ?? '';
const AUTH = `Authorization: Bearer ${token}\r\n`;
const HOST = 'Host: 127.0.0.1\r\n';
/** Host, credentials and Connection: close, for a request line ending in "\r\n". */
const H = `${HOST}${AUTH}Connection: close\r\n`;
const get = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\n${H}${extra}\r\n`;
const cmJson = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { smuggled: 'yes' } });
const chunked = (body: string) => `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
const POST_CM = (ns: string) => `POST /api/v1/namespaces/${ns}/configmaps HTTP/1.1\r\n${HOST}${AUTH}Content-Type: application/json\r\n`;

interface Case {
  readonly name: string;
  readonly data: string | Buffer;
  /** The status the proxy answers with (as a Status body); 400 unless stated. */
  readonly status?: number;
}

// Requests Node's parser or the proxy refuses before anything is forwarded.
const refusedRequests: Case[] = [
  { name: 'garbage request line', data: 'asdkjh aslkdj\r\n\r\n' },
  { name: 'TLS record bytes inside TLS', data: Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a]) },
  { name: 'blank lines then garbage', data: '\r\n\r\n\x00\x01\x02 garbage\r\n\r\n' },
  { name: 'missing HTTP version', data: `GET /version\r\n${H}\r\n` },
  { name: 'HTTP/0.9 request line', data: 'GET /version\r\n\r\n' },
  { name: 'HTTP/1.2', data: `GET /version HTTP/1.2\r\n${H}\r\n` },
  { name: 'HTTP/3.0', data: `GET /version HTTP/3.0\r\n${H}\r\n` },
  { name: 'HTTP/2.0 in HTTP/1 framing', data: `GET /version HTTP/2.0\r\n${H}\r\n`, status: 505 },
  { name: 'HTTP/2 connection preface', data: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' },
  { name: 'bad HTTP version token', data: `GET /version HTTX/1.1\r\n${H}\r\n` },
  { name: 'lowercase method', data: `get /version HTTP/1.1\r\n${H}\r\n` },
  { name: 'method with a separator', data: `G(T /version HTTP/1.1\r\n${H}\r\n` },
  { name: 'unknown method', data: `FOO /version HTTP/1.1\r\n${H}\r\n` },
  { name: 'absolute-form target with a bad port', data: get('http://x:port/version') },
  { name: 'absolute-form target with an unclosed IPv6 bracket', data: get('https://[::1/api/v1/namespaces') },
  { name: 'asterisk-form GET', data: get('*') },
  { name: 'asterisk-form OPTIONS', data: `OPTIONS * HTTP/1.1\r\n${H}\r\n` },
  { name: 'relative target', data: get('version') },
  { name: 'CONNECT authority-form', data: `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n` },
  { name: 'CONNECT with a path', data: `CONNECT /version HTTP/1.1\r\n${H}\r\n`, status: 405 },
  { name: 'space inside the target', data: get('/ver sion') },
  { name: 'control character in the target', data: get('/ver\x01sion') },
  { name: 'NUL in the target', data: get('/ver\x00sion') },
  { name: 'DEL in the target', data: get('/ver\x7fsion') },
  { name: 'raw UTF-8 in the target', data: Buffer.from(get('/api/v1/namespaces/\u00e9t\u00e9'), 'utf8') },
  { name: 'tab in the target', data: get('/ver\tsion') },
  { name: 'bare CR line ending', data: `GET /version HTTP/1.1\r${H}\r\n` },
  { name: 'LF-only line endings', data: `GET /version HTTP/1.1\n${H.replaceAll('\r\n', '\n')}\n` },
  { name: 'header without a colon', data: get('/version', 'NoColonHere\r\n') },
  { name: 'space in a header name', data: get('/version', 'Bad Header: y\r\n') },
  { name: 'space before the colon', data: get('/version', 'X-A : y\r\n') },
  { name: 'obs-fold continuation line', data: get('/version', 'X-A: b\r\n c\r\n') },
  { name: 'NUL in a header value', data: get('/version', 'X-A: a\x00b\r\n') },
  { name: 'missing Host', data: `GET /version HTTP/1.1\r\n${AUTH}Connection: close\r\n\r\n` },
  { name: 'two Host headers', data: get('/version', 'Host: evil.example\r\n') },
  { name: 'Host on an upgrade, missing', data: `GET /api/v1/namespaces/default/pods/x/exec HTTP/1.1\r\n${AUTH}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n` },
  { name: 'Content-Length not a number', data: `${POST_CM('default')}Content-Length: abc\r\n\r\n` },
  { name: 'negative Content-Length', data: `${POST_CM('default')}Content-Length: -1\r\n\r\n` },
  { name: 'Content-Length with a sign', data: `${POST_CM('default')}Content-Length: +2\r\n\r\n{}` },
  { name: 'Content-Length list', data: `${POST_CM('default')}Content-Length: 2, 2\r\n\r\n{}` },
  { name: 'two Content-Length headers', data: `${POST_CM('default')}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}` },
  { name: 'Content-Length beyond 2^64', data: `${POST_CM('default')}Content-Length: 99999999999999999999999\r\n\r\n` },
  { name: 'Expect other than 100-continue', data: `POST /api/v1/namespaces/default/configmaps?dryRun=All HTTP/1.1\r\n${H}Expect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, status: 417 },
];

/**
 * Bodies that turn out malformed after valid headers: the request is already on its way to the
 * apiserver (bodies are streamed), so it is cut there. Each starts with a whole ConfigMap in a good
 * chunk, which the apiserver would create if the proxy ended the body cleanly at the bad bytes.
 */
function malformedBodies(ns: string, name: (i: number) => string): Case[] {
  const good = (i: number) => chunked(cmJson(name(i))).replace(/0\r\n\r\n$/, '');
  const te = 'Transfer-Encoding: chunked\r\n\r\n';
  return [
    { name: 'chunk size not hex', data: `${POST_CM(ns)}${te}${good(0)}zz\r\n` },
    { name: 'chunk size overflow', data: `${POST_CM(ns)}${te}${good(1)}ffffffffffffffffffff\r\n` },
    { name: 'control character in a chunk extension', data: `${POST_CM(ns)}${te}${good(2)}2;\x01\r\n{}\r\n0\r\n\r\n` },
    { name: 'chunk without its CRLF', data: `${POST_CM(ns)}${te}${good(3)}2\r\n{}XX0\r\n\r\n` },
    { name: 'bad trailer', data: `${POST_CM(ns)}${te}${good(4)}0\r\nBad Trailer: x\r\n\r\n` },
    { name: 'unknown Transfer-Encoding', data: `${POST_CM(ns)}Transfer-Encoding: gzip\r\n\r\n${cmJson(name(5))}` },
  ];
}

// Requests that parse: the proxy forwards them (or refuses them as kube-apiserver does), and the
// client gets the apiserver's answer.
const forwardedRequests: Case[] = [
  { name: 'bad percent escape in the path', data: get('/api/v1/namespaces/%zz') },
  { name: 'truncated percent escape in the path', data: get('/api/v1/namespaces/abc%') },
  { name: 'percent escape of invalid UTF-8', data: get('/api/v1/namespaces/%c3%28') },
  { name: 'bad percent escape in the query', data: get('/version?x=%zz&%%%') },
  { name: 'bad percent escape in a label selector', data: get('/api/v1/namespaces/default/configmaps?labelSelector=%zz') },
  { name: 'fragment in the target', data: get('/version#frag') },
  // kube-apiserver (Go) serves an absolute-form target by its path; the authority is not used.
  { name: 'absolute-form target', data: get('http://x/version') },
  { name: 'absolute-form https target', data: get('https://127.0.0.1/api/v1/namespaces/default') },
  { name: 'an 8 KB Host', data: get('/version').replace(HOST, `Host: ${'h'.repeat(8000)}\r\n`) },
  { name: 'double slash', data: get('//version') },
  { name: 'dot segments', data: get('/api/v1/../../version') },
  { name: 'escaped slash in a name', data: get('/api/v1/namespaces/default/configmaps/a%2Fb') },
  { name: 'escaped NUL in a name', data: get('/api/v1/namespaces/default/configmaps/a%00b') },
  { name: 'semicolon in the path', data: get('/version;a=b') },
  { name: 'an 8 KB path', data: get(`/api/v1/namespaces/${'a'.repeat(8000)}`) },
  { name: 'HTTP/1.0 without Host', data: `GET /version HTTP/1.0\r\n${AUTH}\r\n` },
  { name: 'HTTP/2.0 in HTTP/1 framing', data: `GET /version HTTP/2.0\r\n${H}\r\n` },
  { name: 'missing HTTP version', data: `GET /version\r\n${H}\r\n` },
  { name: 'missing Host', data: `GET /version HTTP/1.1\r\n${AUTH}Connection: close\r\n\r\n` },
  { name: 'two Host headers', data: get('/version', 'Host: evil.example\r\n') },
  { name: 'PROPFIND', data: `PROPFIND /version HTTP/1.1\r\n${H}\r\n` },
  { name: 'TRACE', data: `TRACE /version HTTP/1.1\r\n${H}\r\n` },
  // Methods Node parses that fastify has no routes for, and QUERY, which fastify refuses without a Content-Type.
  { name: 'PURGE', data: `PURGE /version HTTP/1.1\r\n${H}\r\n` },
  { name: 'LINK', data: `LINK /api/v1/namespaces/default HTTP/1.1\r\n${H}\r\n` },
  { name: 'QUERY without a Content-Type', data: `QUERY /api/v1/namespaces/default/configmaps HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\n{}` },
  { name: 'GET with a body', data: `GET /version HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello` },
  ...[['empty', ''], ['only semicolons', ';;;'], ['three parts', 'a/b/c'], ['a bare parameter', 'application/json; charset'], ['non-ASCII parameter', 'application/json; x="\u00e9"']].map(([what, ct]) => ({
    name: `Content-Type ${what}`,
    data: Buffer.from(`POST /api/v1/namespaces/default/configmaps?dryRun=All HTTP/1.1\r\n${H}Content-Type: ${ct}\r\nContent-Length: 2\r\n\r\n{}`, 'utf8'),
  })),
  { name: 'two Content-Type headers', data: `POST /api/v1/namespaces/default/configmaps?dryRun=All HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}` },
  { name: 'no Content-Type', data: `POST /api/v1/namespaces/default/configmaps?dryRun=All HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\n{}` },
  { name: 'upgrade with a bad percent escape', data: get('/api/v1/namespaces/%zz/pods/x/exec', 'Connection: Upgrade\r\nUpgrade: websocket\r\n') },
  { name: 'Expect other than 100-continue', data: `POST /api/v1/namespaces/default/configmaps?dryRun=All HTTP/1.1\r\n${H}Expect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}` },
];

/** The ways of sending Content-Length and Transfer-Encoding together (or TE in disguise). */
function smugglingRequests(ns: string, name: (i: number) => string): Case[] {
  const variants: Array<[string, (body: string) => string]> = [
    ['CL then TE', (b) => `Content-Length: ${b.length}\r\nTransfer-Encoding: chunked\r\n\r\n${b}`],
    ['TE then CL', (b) => `Transfer-Encoding: chunked\r\nContent-Length: ${b.length}\r\n\r\n${b}`],
    ['CL shorter than the chunked body', (b) => `Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${b}`],
    ['TE chunked, identity', (b) => `Transfer-Encoding: chunked, identity\r\n\r\n${b}`],
    ['TE identity, chunked with CL', (b) => `Transfer-Encoding: identity, chunked\r\nContent-Length: 3\r\n\r\n${b}`],
    ['TE xchunked with CL', (b) => `Transfer-Encoding: xchunked\r\nContent-Length: ${b.length}\r\n\r\n${b}`],
    ['TE with a tab with CL', (b) => `Transfer-Encoding:\tchunked\r\nContent-Length: ${b.length}\r\n\r\n${b}`],
    ['TE with a space before the colon', (b) => `Transfer-Encoding : chunked\r\nContent-Length: ${b.length}\r\n\r\n${b}`],
    ['TE twice', (b) => `Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n${b}`],
    ['TE in an obs-fold', (b) => `X-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: ${b.length}\r\n\r\n${b}`],
  ];
  const cases: Case[] = variants.map(([what, tail], i) => ({ name: what, data: `${POST_CM(ns)}${tail(chunked(cmJson(name(i))))}` }));
  const i = variants.length;
  cases.push({
    name: 'HTTP/1.0 with TE and CL',
    data: `POST /api/v1/namespaces/${ns}/configmaps HTTP/1.0\r\n${HOST}${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n${chunked(cmJson(name(i)))}`,
  });
  return cases;
}

async function freshNamespace(prefix: string): Promise<string> {
  const ns = `${prefix}-${suffix}`;
  const r = await call(cluster, direct(), '/api/v1/namespaces', {
    method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }),
  });
  assert.equal(r.status, 201, r.text());
  return ns;
}

async function deleteNamespace(ns: string): Promise<void> {
  await call(cluster, direct(), `/api/v1/namespaces/${ns}`, { method: 'DELETE' });
}

// ---------------------------------------------------------------------------------------------

test('malformed request lines, targets, headers and framing: a 4xx Status, never a hang or a 5xx', async () => {
  await stillServes('before');
  const before = requestsTotal(await metrics());
  const outcomes = await Promise.all(refusedRequests.map((c) => exchange(c.data)));
  for (const [i, c] of refusedRequests.entries()) {
    const o = outcomes[i];
    assert.ok(o);
    assertRefused(o, c.name, c.status ?? 400);
  }
  // Only the four requests whose target is not a path (absolute-form with a bad authority, '*') got
  // as far as the forwarding code, which refuses them itself (and counts them): nothing else was a request.
  assert.equal(requestsTotal(await metrics()) - before, 4, 'requests taken as requests');
  await idle('after malformed requests');
  await stillServes('after malformed requests');
});

test('odd but parseable targets, versions and headers: answered as kube-apiserver answers them', async () => {
  for (const c of forwardedRequests) {
    const [p, d] = await Promise.all([exchange(c.data), exchange(c.data, { base: direct() })]);
    assert.equal(d.kind, 'response', `${c.name}: the apiserver did not answer: ${show(d)}`);
    assert.equal(p.kind, 'response', `${c.name}: the proxy did not answer: ${show(p)}`);
    if (p.kind !== 'response' || d.kind !== 'response') continue;
    assert.equal(p.res.status, d.res.status, `${c.name}: proxied ${show(p)}\ndirect ${show(d)}`);
    assert.ok(p.res.status < 500 || p.res.status === 505, `${c.name}: ${show(p)}`);
    // A Status from the apiserver arrives unchanged; where the proxy answers itself (or the
    // apiserver answers with Go's plain text), the proxy's answer is a Status or the same text.
    if (/^application\/json/.test(d.res.headers.get('content-type') ?? '')) {
      assert.equal(p.res.body.toString(), d.res.body.toString(), `${c.name}: body`);
    } else if (!p.res.body.equals(d.res.body)) {
      assertStatusBody(p.res, c.name);
    }
  }
  await idle('after odd requests');
  await stillServes('after odd requests');
});

test('oversized headers: 431 as a Status', async () => {
  const cases: Case[] = [
    { name: 'one 100 KB header', data: get('/version', `X-Big: ${'a'.repeat(100_000)}\r\n`), status: 431 },
    { name: 'a 100 KB target', data: get(`/api/v1/namespaces/${'a'.repeat(100_000)}`), status: 431 },
    { name: '40 headers of 5 KB', data: get('/version', Array.from({ length: 40 }, (_, i) => `X-H${i}: ${'b'.repeat(5000)}\r\n`).join('')), status: 431 },
    { name: 'a 1 MB header', data: get('/version', `X-Big: ${'a'.repeat(1_000_000)}\r\n`), status: 431 },
    { name: 'a 100 KB header on an upgrade', data: get('/api/v1/namespaces/default/pods/x/exec', `Connection: Upgrade\r\nUpgrade: websocket\r\nX-Big: ${'a'.repeat(100_000)}\r\n`), status: 431 },
    { name: 'a 100 KB header on a POST', data: `${POST_CM('default')}Content-Length: 2\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n{}`, status: 431 },
  ];
  const before = requestsTotal(await metrics());
  for (const c of cases) assertRefused(await exchange(c.data), c.name, c.status ?? 431);
  // The header arriving in pieces, as a slow client sends it.
  const slow = await exchange(`GET /version HTTP/1.1\r\n${H}X-Big: `, { more: Array.from({ length: 20 }, () => 'a'.repeat(5000)), gapMs: 10 });
  assertRefused(slow, '100 KB header in 5 KB pieces', 431);
  assert.equal(requestsTotal(await metrics()), before, 'a request with oversized headers was forwarded');
  await idle('after oversized headers');
  await stillServes('after oversized headers');
});

test('Content-Length with Transfer-Encoding (request smuggling): 400, nothing forwarded', async () => {
  const ns = await freshNamespace('smuggle');
  try {
    const name = (i: number) => `smuggled-${i}`;
    const cases = smugglingRequests(ns, name);
    const before = requestsTotal(await metrics());
    for (const c of cases) assertRefused(await exchange(c.data), c.name, 400);
    assert.equal(requestsTotal(await metrics()), before, 'a smuggling request was forwarded');
    const list = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`);
    assert.equal(list.status, 200);
    const items = (list.json() as { items: Array<{ metadata: { name: string } }> }).items.filter((i) => i.metadata.name.startsWith('smuggled-'));
    assert.deepEqual(items.map((i) => i.metadata.name), [], 'a smuggled ConfigMap was created');
    // The same body with only Transfer-Encoding (or only Content-Length) is fine: the framing works.
    const body = cmJson('framed-te');
    const ok = await exchange(`${POST_CM(ns)}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(body)}`);
    assert.equal(ok.kind === 'response' ? ok.res.status : show(ok), 201);
    const ok2 = await exchange(`${POST_CM(ns)}Content-Length: ${Buffer.byteLength(cmJson('framed-cl'))}\r\nConnection: close\r\n\r\n${cmJson('framed-cl')}`);
    assert.equal(ok2.kind === 'response' ? ok2.res.status : show(ok2), 201);
  } finally {
    await deleteNamespace(ns);
  }
  await idle('after smuggling attempts');
  await stillServes('after smuggling attempts');
});

test('a body that turns out malformed: 400 Status, the forwarded request is cut, nothing created', async () => {
  const ns = await freshNamespace('badbody');
  try {
    const name = (i: number) => `bad-body-${i}`;
    const cases = malformedBodies(ns, name);
    const before = await metrics();
    for (const c of cases) assertRefused(await exchange(c.data), c.name, 400);
    await idle('after malformed bodies');
    const cut = (m: string) => gauge(m, 'kube_cache_proxy_requests_total', '{verb="create",resource="configmaps",code="499",source="upstream"}') || 0;
    assert.equal(cut(await metrics()) - cut(before), cases.length, 'each was forwarded, then cut when the client was answered');
    await sleep(500);
    const list = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`);
    assert.equal(list.status, 200);
    const names = (list.json() as { items: Array<{ metadata: { name: string } }> }).items.map((i) => i.metadata.name);
    assert.deepEqual(names.filter((n) => n.startsWith('bad-body-')), [], 'a malformed body was passed on as a whole one');
  } finally {
    await deleteNamespace(ns);
  }
  await stillServes('after malformed bodies');
});

/** Opens a connection, sends `data`, and destroys it right after the write, a little later, or at the first bytes back. */
function sendThenVanish(data: string, when: 'after-write' | 'first-bytes' | { readonly afterMs: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = openTls(proxy.url);
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no bytes within 10 s for ${data.slice(0, 60)}`)); }, 10_000);
    const vanish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    socket.on('secureConnect', () => {
      if (data === '') {
        vanish();
        return;
      }
      socket.write(data, () => {
        if (when === 'after-write') vanish();
        else if (typeof when === 'object') setTimeout(vanish, when.afterMs);
      });
    });
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (when === 'first-bytes') vanish();
    });
    socket.on('error', () => vanish());
    socket.on('close', () => vanish());
  });
}

const midBody = (ns: string) => `${POST_CM(ns)}Content-Length: 1000000\r\n\r\n{"apiVersi`;
const midChunked = (ns: string) => `${POST_CM(ns)}Transfer-Encoding: chunked\r\n\r\n400\r\n{"apiVersion":"v1",`;
const WATCH = `GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\n${HOST}${AUTH}\r\n`;

test('clients that vanish mid-body and mid-watch: no crash, in-flight gauges back to 0', async () => {
  const ns = await freshNamespace('vanish');
  try {
    // One at a time, waiting until the proxy has the request in flight before the client goes.
    for (const [what, data] of [['Content-Length body', midBody(ns)], ['chunked body', midChunked(ns)]] as const) {
      const socket = openTls(proxy.url);
      socket.on('error', () => {});
      await new Promise<void>((r) => socket.once('secureConnect', () => socket.write(data, () => r())));
      await waitFor(`${what}: request in flight`, inUse, (u) => u.short === 1);
      socket.destroy();
      await waitFor(`${what}: in flight after the client left`, inUse, (u) => u.short === 0);
    }
    const head = await sendThenVanish(WATCH, 'first-bytes');
    assert.match(head.toString('latin1'), /^HTTP\/1\.1 200 /, 'the watch started');
    await waitFor('watch: in flight after the client left', inUse, (u) => u.longRunning === 0);
    // A watch that is open for a while, with events, then the client goes.
    const watcher = openTls(proxy.url);
    watcher.on('error', () => {});
    let seen = '';
    watcher.on('data', (d: Buffer) => { seen += d.toString('latin1'); });
    watcher.once('secureConnect', () => watcher.write(`GET /api/v1/namespaces/${ns}/configmaps?watch=true HTTP/1.1\r\n${HOST}${AUTH}\r\n`));
    await waitFor('watch: in flight', inUse, (u) => u.longRunning === 1);
    const created = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body: cmJson('watched') });
    assert.equal(created.status, 201);
    await waitFor('watch: the ADDED event', () => seen, (s) => s.includes('"ADDED"'));
    watcher.destroy();
    await waitFor('watch: in flight after the client left', inUse, (u) => u.longRunning === 0);

    // Many at once, some vanishing before the proxy even forwarded the request.
    const all = await Promise.all(Array.from({ length: 60 }, (_, i) => sendThenVanish(
      i % 3 === 0 ? midBody(ns) : i % 3 === 1 ? midChunked(ns) : WATCH,
      i % 3 === 2 ? 'first-bytes' : i % 2 === 0 ? 'after-write' : { afterMs: 30 },
    )));
    assert.equal(all.length, 60);
    await idle('after 60 vanishing clients');
    // Nothing half-sent was created.
    const list = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`);
    assert.deepEqual((list.json() as { items: Array<{ metadata: { name: string } }> }).items.map((i) => i.metadata.name), ['watched']);
  } finally {
    await deleteNamespace(ns);
  }
  await stillServes('after vanishing clients');
});

test('garbage after a watch on the same connection: the watch is cut, never interleaved with an error response', async () => {
  const socket = openTls(proxy.url);
  socket.on('error', () => {});
  let got = '';
  let closed = false;
  socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  socket.on('close', () => { closed = true; });
  socket.once('secureConnect', () => socket.write(WATCH));
  await waitFor('watch headers', () => got, (g) => g.includes('\r\n\r\n'));
  await waitFor('watch: in flight', inUse, (u) => u.longRunning === 1);
  socket.write('garbage garbage\r\n\r\n');
  await waitFor('the connection closed', () => closed, (c) => c);
  assert.equal(got.match(/HTTP\/1\.1 /g)?.length, 1, `a second response was written into the watch stream: ${JSON.stringify(got.slice(-400))}`);
  assert.doesNotMatch(got, /"statusCode"|"code":400/);
  await idle('after garbage behind a watch');
  await stillServes('after garbage behind a watch');
});

type Kind = 'garbage' | 'no-version' | 'absolute-form' | 'bad-escape' | 'big-header' | 'smuggle' | 'bad-chunk'
  | 'no-host' | 'connect' | 'control-char' | 'mid-body' | 'mid-chunked' | 'mid-watch' | 'plain-http' | 'tls-then-nothing';
const KINDS: readonly Kind[] = ['garbage', 'no-version', 'absolute-form', 'bad-escape', 'big-header', 'smuggle', 'bad-chunk',
  'no-host', 'connect', 'control-char', 'mid-body', 'mid-chunked', 'mid-watch', 'plain-http', 'tls-then-nothing'];

/**
 * A TCP connection that speaks plain HTTP to the TLS port: what it read before the proxy closed it,
 * or null when it was not closed within 10 s. (It reads: a client that does not would never see
 * the close behind the answer.)
 */
function plainHttp(): Promise<string | null> {
  return new Promise((resolve) => {
    const u = new URL(proxy.url);
    const s = new Socket();
    let got = '';
    const timer = setTimeout(() => { s.destroy(); resolve(null); }, 10_000);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.on('close', () => { clearTimeout(timer); resolve(got); });
    s.connect(Number(u.port), u.hostname, () => s.write(`GET /version HTTP/1.1\r\n${H}\r\n`));
  });
}

async function badRequest(kind: Kind, ns: string, i: number): Promise<void> {
  const label = `#${i} ${kind}`;
  switch (kind) {
    case 'garbage': return assertRefused(await exchange(`${randomBytes(8).toString('hex')} \x01\x02\r\n\r\n`), label, 400);
    case 'no-version': return assertRefused(await exchange(`GET /version\r\n${H}\r\n`), label, 400);
    case 'absolute-form': return assertRefused(await exchange(get('http://x:bad/version')), label, 400);
    case 'bad-escape': {
      const o = await exchange(get('/api/v1/namespaces/%zz'));
      assert.ok(o.kind === 'response' && o.res.status === 400, `${label}: ${show(o)}`);
      return;
    }
    case 'big-header': return assertRefused(await exchange(get('/version', `X-Big: ${'a'.repeat(100_000)}\r\n`)), label, 431);
    case 'smuggle': return assertRefused(await exchange(`${POST_CM(ns)}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(cmJson(`smuggled-${i}`))}`), label, 400);
    case 'bad-chunk': return assertRefused(await exchange(`${POST_CM(ns)}Transfer-Encoding: chunked\r\n\r\nzz\r\n`), label, 400);
    case 'no-host': return assertRefused(await exchange(`GET /version HTTP/1.1\r\n${AUTH}\r\n`), label, 400);
    case 'connect': return assertRefused(await exchange('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'), label, 400);
    case 'control-char': return assertRefused(await exchange(get('/ver\x01sion')), label, 400);
    case 'mid-body': await sendThenVanish(midBody(ns), i % 2 === 0 ? 'after-write' : { afterMs: 20 }); return;
    case 'mid-chunked': await sendThenVanish(midChunked(ns), i % 2 === 0 ? 'after-write' : { afterMs: 20 }); return;
    case 'mid-watch': await sendThenVanish(WATCH, 'first-bytes'); return;
    case 'plain-http': {
      const got = await plainHttp();
      assert.ok(got !== null, `${label}: plain HTTP on the TLS port: not closed within 10 s`);
      // kube-apiserver's answer (Go's net/http), as tls.test.ts compares it with the apiserver's.
      assert.equal(got, 'HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n', `${label}: plain HTTP on the TLS port`);
      return;
    }
    case 'tls-then-nothing': await sendThenVanish('', 'after-write'); return;
  }
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  }));
}

test('1,000 bad requests, 20 at a time: sockets, in-flight slots and heap come back', async (t) => {
  const ns = await freshNamespace('leak');
  try {
    // Warm up (JIT, TLS session state, the upstream pool), then take the baseline without the
    // test's own keep-alive connections.
    await pool(KINDS.flatMap((k) => [k, k]), 20, (k, i) => badRequest(k, ns, i));
    await stillServes('warm-up');
    await closeAgents();
    await idle('baseline');
    await waitFor('baseline: accepted sockets', sockets, (s) => s.accepted === 0);
    const baseSockets = sockets();
    const baseHeap = await heapUsed();

    const started = Date.now();
    const kinds = Array.from({ length: 1000 }, (_, i) => KINDS[i % KINDS.length] as Kind);
    await pool(kinds, 20, (k, i) => badRequest(k, ns, i));
    t.diagnostic(`1,000 bad requests in ${Date.now() - started} ms`);

    await idle('after 1,000 bad requests');
    // Every connection the clients opened is closed by now, so the proxy must hold none of them.
    const after = await waitFor('accepted sockets back to the baseline', sockets, (s) => s.accepted <= baseSockets.accepted);
    // Upstream connections are pooled (keep-alive): at most one per concurrent request, not one per
    // request. The cache's own connections come and go meanwhile: each cached resource holds its
    // watch and opens a short progress watch every bookmark interval, up to
    // PROGRESS_WATCHES_MAX_IN_FLIGHT at once (an idle proxy with 6 cached resources holds about 40
    // connections to one apiserver), each open, idle or closed at either count.
    const cacheOwn = (1 + PROGRESS_WATCHES_MAX_IN_FLIGHT) * proxyCachedResources();
    assert.ok(after.upstream <= Math.max(baseSockets.upstream, 20) + 2 + cacheOwn,
      `upstream sockets: ${after.upstream} after, ${baseSockets.upstream} before`);
    assert.ok(after.tcpResources <= baseSockets.tcpResources + 22 + cacheOwn,
      `TCP socket handles: ${after.tcpResources} after, ${baseSockets.tcpResources} before`);
    const heap = await heapUsed();
    t.diagnostic(`sockets before ${JSON.stringify(baseSockets)}, after ${JSON.stringify(after)}; heap ${(baseHeap / 1048576).toFixed(1)} MB -> ${(heap / 1048576).toFixed(1)} MB`);
    assert.ok(heap <= baseHeap + 20 * 1048576, `heap grew by ${((heap - baseHeap) / 1048576).toFixed(1)} MB over 1,000 bad requests`);

    const list = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`);
    assert.deepEqual((list.json() as { items: unknown[] }).items, [], 'a bad request created a ConfigMap');
  } finally {
    await deleteNamespace(ns);
  }
  await stillServes('after 1,000 bad requests');
});

test('a request arriving while the proxy shuts down gets a Status 503, not fastify\'s body', async () => {
  const own = await startTestProxy(cluster, { shutdownGracePeriodSeconds: 5 });
  const ns = await freshNamespace('drain');
  let stopped = false;
  try {
    // A POST whose body is still coming keeps the proxy draining; the rest of the body and a second
    // request are then sent together on the same connection.
    const socket = openTls(own.url);
    socket.on('error', () => {});
    let got = '';
    let closed = false;
    socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    socket.on('close', () => { closed = true; });
    const body = cmJson('during-drain');
    const head = `${POST_CM(ns)}Content-Length: ${body.length}\r\n\r\n`;
    await new Promise<void>((r) => socket.once('secureConnect', () => socket.write(head + body.slice(0, 10), () => r())));
    await sleep(200);
    const stopping = own.stop();
    await sleep(200);
    socket.write(body.slice(10) + get('/version'));
    await waitFor('both answers or a close', () => ({ n: got.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0, closed }), (v) => v.n >= 2 || v.closed);
    stopped = true;
    await stopping;
    const statuses = [...got.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.equal(statuses[0], '201', `the in-flight request finishes during the grace period: ${got.slice(0, 300)}`);
    assert.equal(statuses[1], '503', `the request that arrived while draining: ${JSON.stringify(got)}`);
    const second = got.slice(got.indexOf('HTTP/1.1 503'));
    const res = parseResponse(Buffer.from(second, 'latin1'), true);
    assert.ok(res);
    assertStatusBody(res, 'during shutdown');
    assert.equal(res.headers.get('retry-after'), '1');
  } finally {
    if (!stopped) await own.stop();
    await deleteNamespace(ns);
  }
});
