// Request smuggling and header injection beyond bad-input.test.ts, each compared with kube-apiserver:
// absolute-form request targets (served by their path, the authority never used), CR/LF/NUL in
// HTTP/2 header values (sent as raw frames, which Node's own client would refuse to send), the
// requestheader authentication headers (X-Remote-User/-Group/-Extra-*) from token and certificate
// clients, and a certificate client's own Impersonate-* headers, which must never be honoured with the
// proxy's impersonation rights nor merged with the proxy's own Impersonate-* headers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type TestUser } from '../helpers/http.js';

const cluster = sharedCluster();
const ca = readFileSync(cluster.info.caFile);
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const NS = `smug-${randomBytes(3).toString('hex')}`;
let proxy: TestProxy;

before(async () => {
  proxy = await startTestProxy(cluster);
  const r = await call(cluster, direct(), '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }) });
  assert.equal(r.status, 201, r.text());
});
after(async () => {
  await call(cluster, direct(), `/api/v1/namespaces/${NS}`, { method: 'DELETE' });
  if (proxy) await proxy.stop();
  await closeAgents();
});

const token = (u: 'admin' | 'viewer') => cluster.info.users[u].token ?? '';

function tls(base: string, alpn: string): TLSSocket {
  const u = new URL(base);
  return connect({ host: u.hostname, port: Number(u.port), ca, ALPNProtocols: [alpn] });
}

/** One raw HTTP/1.1 exchange: the status line's code and the body (the connection is closed by Connection: close). */
function raw(base: string, data: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const s = tls(base, 'http/1.1');
    let buf = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      const text = buf.toString('utf8');
      const head = text.indexOf('\r\n\r\n');
      let body = head < 0 ? '' : text.slice(head + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(text.slice(0, head))) body = body.replace(/(?:^|\r\n)[0-9a-f]+\r\n/gi, '').replace(/\r\n$/, '');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body });
    };
    const timer = setTimeout(done, 10_000);
    s.on('secureConnect', () => s.write(data));
    s.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); });
    s.on('error', done);
    s.on('close', done);
  });
}

/** A Status body compared as JSON (Go's plain-text 400 and the proxy's Status both count as a refusal). */
function parsed(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return { text: body };
  }
}

test('absolute-form targets are served by their path, as kube-apiserver serves them; the authority is never used', async () => {
  const targets = [
    'https://other.example/api/v1/namespaces/default', 'http://x/version', `https://127.0.0.1/api/v1/namespaces/${NS}/configmaps`,
    'https://evil.example:6443/api/v1/namespaces/kube-system/secrets?limit=1', 'HTTPS://a/version', 'https:///version',
    'http://user@host:99999/version', 'http://user:pw@h/version', 'http://h:/version', 'http://[::1]:1/version', 'http://h%41/version',
    'http://[::1/version', 'http://h:x/version', 'http://h:1:2/version', 'http://us er@h/version', 'http://h%zz/version',
    `https://169.254.169.254/api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=1`, 'http://h/api/v1/namespaces/%zz',
  ];
  for (const t of targets) {
    const req = `GET ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token('admin')}\r\nConnection: close\r\n\r\n`;
    const [p, d] = await Promise.all([raw(proxy.url, req), raw(direct(), req)]);
    assert.equal(p.status, d.status, `${t}: proxy ${p.status} ${p.body.slice(0, 200)}\ndirect ${d.status} ${d.body.slice(0, 200)}`);
    const dj = parsed(d.body);
    if (d.status === 200 && !t.includes('watch')) {
      const strip = (v: unknown) => JSON.stringify(v).replace(/"resourceVersion":"\d+"/g, '');
      assert.equal(strip(parsed(p.body)), strip(dj), `${t}: body`);
    } else if (!('text' in (dj as Record<string, unknown>))) {
      assert.deepEqual(parsed(p.body), dj, `${t}: Status`);
    }
  }
  // The absolute-form watch went to the apiserver the proxy knows, not to the authority it named.
  const ok = await call(cluster, proxy.url, '/version');
  assert.equal(ok.status, 200);
});

// ------------------------------------------------------------------------------------------------
// Raw HTTP/2: a HEADERS frame with literal (non-Huffman) header fields.

function hpackInt(n: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.from([first | n]);
  const out = [first | max];
  n -= max;
  while (n >= 128) {
    out.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v]);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h.writeUInt8(type, 3);
  h.writeUInt8(flags, 4);
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

type H2Outcome = 'reset' | 'goaway' | 'closed' | number | 'undecoded-status';
const STATIC_STATUS: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };

/** Digits in HPACK's Huffman code (RFC 7541, appendix B): '0'-'2' in 5 bits, '3'-'9' in 6; undefined for anything else. */
function huffmanDigits(b: Buffer): string | undefined {
  let out = '';
  let bit = 0;
  const total = b.length * 8;
  const read = (n: number): number => {
    let v = 0;
    for (let k = 0; k < n; k++, bit++) v = (v << 1) | (((b[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1);
    return v;
  };
  while (total - bit >= 5) {
    const rest = total - bit;
    const five = read(5);
    if (five < 3) { out += String(five); continue; }
    if (rest < 8 && five === (1 << 5) - 1) break; // the EOS padding: all ones
    if (rest < 6) return undefined;
    const six = (five << 1) | read(1);
    if (six < 25 || six > 31) return undefined;
    out += String(six - 22);
  }
  return out;
}

/** The :status of a response HEADERS frame: indexed (the static table's), or a literal with :status's name. */
function headersStatus(flags: number, payload: Buffer): number | undefined {
  let i = flags & 0x8 ? 1 : 0; // padded
  if (flags & 0x20) i += 5; // priority
  // Dynamic table size updates come first.
  while (((payload[i] ?? 0) & 0xe0) === 0x20) {
    if (((payload[i++] ?? 0) & 0x1f) === 0x1f) while (((payload[i++] ?? 0) & 0x80) !== 0);
  }
  const first = payload[i] ?? 0;
  if (first & 0x80) return STATIC_STATUS[first];
  const nameIndex = first & 0x40 ? first & 0x3f : first & 0x0f;
  if (nameIndex < 8 || nameIndex > 14) return undefined; // not :status
  const len = (payload[i + 1] ?? 0) & 0x7f;
  const raw = payload.subarray(i + 2, i + 2 + len);
  const text = (payload[i + 1] ?? 0) & 0x80 ? huffmanDigits(raw) : raw.toString('latin1');
  return text !== undefined && /^\d{3}$/.test(text) ? Number(text) : undefined;
}

/** Sends one GET with the given extra header fields; the first thing that happens to stream 1. */
function h2(base: string, path: string, fields: ReadonlyArray<readonly [string, string]>): Promise<H2Outcome> {
  return new Promise((resolve) => {
    const s = tls(base, 'h2');
    let buf = Buffer.alloc(0);
    let settled = false;
    const settle = (o: H2Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => settle('closed'), 10_000);
    s.on('secureConnect', () => {
      const u = new URL(base);
      const block = Buffer.concat([
        literal(':method', 'GET'), literal(':scheme', 'https'), literal(':path', path), literal(':authority', u.host),
        ...fields.map(([k, v]) => literal(k, v)),
      ]);
      s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0x5, 1, block)]));
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf.readUInt8(3);
        const flags = buf.readUInt8(4);
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === 4 && (flags & 1) === 0) s.write(frame(4, 1, 0, Buffer.alloc(0))); // SETTINGS ack
        if (type === 3 && stream === 1) settle('reset');
        if (type === 7) settle('goaway');
        if (type === 1 && stream === 1) settle(headersStatus(flags, payload) ?? 'undecoded-status');
      }
    });
    s.on('error', () => settle('closed'));
    s.on('close', () => settle('closed'));
  });
}

const refused = (o: H2Outcome) => o === 'reset' || o === 'goaway' || o === 'closed' || o === 400;

test('HTTP/2 header values with CR, LF or NUL never take effect: refused as the apiserver refuses them, or dropped by Node before the proxy sees them', async () => {
  const secrets = `/api/v1/namespaces/${NS}/secrets`;
  // A viewer may not list secrets: had an injected line taken effect, the admin token would make it a 200.
  const viewer: [string, string] = ['authorization', `Bearer ${token('viewer')}`];
  const injections: Array<ReadonlyArray<readonly [string, string]>> = [
    [viewer, ['x-a', `a\r\nauthorization: Bearer ${token('admin')}`]],
    [viewer, ['x-a', `a\nauthorization: Bearer ${token('admin')}`]],
    [viewer, ['x-a', `a\rauthorization: Bearer ${token('admin')}`]],
    [viewer, ['x-a', 'a\x00b']],
    [['authorization', `Bearer ${token('viewer')}\r\nImpersonate-User: admin`]],
    [viewer, ['impersonate-user', 'admin\r\nImpersonate-Group: system:masters']],
    [viewer, ['x-a', ' leading-space']],
    [viewer, ['X-Upper', 'uppercase name']],
    [viewer, ['x-a\r\nauthorization', `Bearer ${token('admin')}`]],
    [viewer, ['connection', 'keep-alive']],
    [viewer, ['transfer-encoding', 'chunked']],
    [viewer, ['host', 'evil.example']],
  ];
  // The baseline: the same request without the injection is a 403 on both.
  const baseline = await h2(proxy.url, secrets, [viewer]);
  assert.equal(baseline, 403);
  assert.equal(await h2(direct(), secrets, [viewer]), 403);
  for (const fields of injections) {
    const label = JSON.stringify(fields.slice(-1));
    const [p, d] = await Promise.all([h2(proxy.url, secrets, fields), h2(direct(), secrets, fields)]);
    assert.ok(p !== 200 && p !== 204, `${label}: the proxy answered ${p}`);
    // Go resets such a stream. Node's HTTP/2 (nghttp2) drops the offending field instead and the
    // request goes on without it: the proxy never sees it, and answers as the request without it.
    if (refused(d)) assert.ok(refused(p) || p === baseline, `${label}: the apiserver refuses (${d}), the proxy answered ${p}`);
    else assert.ok(refused(p) || p === d, `${label}: proxy ${p}, direct ${d}`);
  }
  const ok = await call(cluster, proxy.url, '/version');
  assert.equal(ok.status, 200, 'the proxy still serves');
});

test('X-Remote-User/-Group/-Extra-* from a client are never passed on: the answer is the client\'s own', async () => {
  const headers = { 'x-remote-user': 'admin', 'x-remote-group': 'system:masters', 'x-remote-extra-scopes': 'all', 'x-remote-uid': '1' };
  const cases: Array<{ user: TestUser; path: string }> = [
    { user: 'viewer', path: `/api/v1/namespaces/${NS}/secrets` },
    { user: 'nobody', path: `/api/v1/namespaces/${NS}/configmaps` },
    { user: 'anonymous', path: `/api/v1/namespaces/${NS}/configmaps` },
    { user: 'node1', path: `/api/v1/namespaces/${NS}/secrets` },
    { user: 'node1', path: `/api/v1/namespaces/${NS}/configmaps?resourceVersion=0` },
  ];
  for (const c of cases) {
    const [p, d] = await Promise.all([call(cluster, proxy.url, c.path, { user: c.user, headers }), call(cluster, direct(), c.path, { user: c.user, headers })]);
    assert.equal(p.status, d.status, `${c.user} ${c.path}: proxy ${p.text()} direct ${d.text()}`);
    assert.notEqual(p.status, 200, `${c.user} ${c.path}: the X-Remote-* headers were believed`);
    assert.deepEqual(p.json(), d.json(), `${c.user} ${c.path}`);
  }
});

test('a certificate client\'s own Impersonate-* headers: never the proxy\'s rights, never merged with its own', async () => {
  const cm = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } });
  const attempts: Array<Record<string, string>> = [
    { 'impersonate-user': 'admin' },
    { 'impersonate-user': 'admin', 'impersonate-group': 'system:masters' },
    { 'impersonate-user': 'system:serviceaccount:kube-system:default' },
    { 'Impersonate-User': 'system:node:node-1', 'impersonate-group': 'system:masters' },
    { 'impersonate-user': 'admin', 'impersonate-extra-scopes': 'x' },
  ];
  for (const [i, h] of attempts.entries()) {
    const name = `imp-${i}`;
    const [p, d] = await Promise.all([
      call(cluster, proxy.url, `/api/v1/namespaces/${NS}/configmaps`, { user: 'node1', method: 'POST', body: cm(`${name}-p`), headers: h }),
      call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps`, { user: 'node1', method: 'POST', body: cm(`${name}-d`), headers: h }),
    ]);
    const label = JSON.stringify(h);
    // node-1 may not impersonate: the apiserver refuses, and so does the proxy (it does not make the
    // apiserver's permission checks for the certificate user, and never uses its own rights instead).
    assert.equal(d.status, 403, `${label}: the reference: ${d.status} ${d.text()}`);
    assert.equal(p.status, 403, `${label}: proxy ${p.status} ${p.text()}`);
    const body = p.json() as Record<string, unknown>;
    assert.equal(body['kind'], 'Status', label);
    const got = await call(cluster, direct(), `/api/v1/namespaces/${NS}/configmaps/${name}-p`);
    assert.equal(got.status, 404, `${label}: created through the proxy: ${got.text()}`);
  }
  // Impersonate-* headers that request nothing, or a uid, group or extra without a user: the
  // apiserver's own answer, exactly (nothing of the proxy's identity shows).
  const exact: Array<Record<string, string>> = [
    { 'impersonate-user': '' },
    { 'impersonate-foo': 'admin' },
    { 'impersonate-user': '', 'impersonate-uid': '' },
    { 'impersonate-group': 'system:masters' },
    { 'impersonate-uid': '5' },
    { 'impersonate-extra-scopes': 'x' },
    { 'impersonate-extra-a%2Fb': 'x\u00e9"' },
    { 'impersonate-user': '', 'impersonate-group': 'g1', 'impersonate-extra-z': 'v', 'impersonate-extra-a': 'w', 'impersonate-uid': 'u' },
  ];
  for (const h of exact) {
    for (const path of [`/api/v1/namespaces/${NS}/configmaps`, `/api/v1/nodes/node-1`, '/version']) {
      const [p, d] = await Promise.all([call(cluster, proxy.url, path, { user: 'node1', headers: h }), call(cluster, direct(), path, { user: 'node1', headers: h })]);
      const label = `${JSON.stringify(h)} ${path}`;
      assert.equal(p.status, d.status, `${label}: proxy ${p.text()} direct ${d.text()}`);
      const strip = (v: unknown) => JSON.stringify(v).replace(/"resourceVersion":"\d+"/g, '');
      assert.equal(strip(p.json()), strip(d.json()), label);
    }
  }
  // The same from a token client is passed through untouched: the apiserver judges the token's user.
  const h = { 'impersonate-user': 'admin' };
  const [p, d] = await Promise.all([
    call(cluster, proxy.url, `/api/v1/namespaces/${NS}/secrets`, { user: 'viewer', headers: h }),
    call(cluster, direct(), `/api/v1/namespaces/${NS}/secrets`, { user: 'viewer', headers: h }),
  ]);
  assert.equal(p.status, d.status, `viewer impersonating admin: proxy ${p.text()} direct ${d.text()}`);
  assert.deepEqual(p.json(), d.json());
});
