// TLS on the main port against the real apiserver behind it: the version floor and the configured
// cipher suites (kube-apiserver's --tls-min-version and --tls-cipher-suites), and rotation of the
// serving certificate and the client CA from disk without dropping connections, as a Secret
// volume does it (an atomic `..data` symlink swap).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { waitFor } from '../helpers/wait.js';
import { generateSelfSignedCert } from '../../proxy/self-signed-cert.js';

const cluster = sharedCluster();
const clusterCa = readFileSync(cluster.info.caFile);
const token = cluster.info.users.admin.token ?? '';
const work = mkdtempSync(join(tmpdir(), 'kcp-tls-'));
const proxies: TestProxy[] = [];
after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  rmSync(work, { recursive: true, force: true });
});

async function proxyWith(overrides: Parameters<typeof startTestProxy>[1]): Promise<TestProxy> {
  const p = await startTestProxy(cluster, { cache: undefined, ...overrides });
  proxies.push(p);
  return p;
}
const portOf = (p: TestProxy) => Number(new URL(p.url).port);

interface Handshake { protocol: string; cipher: string; fingerprint: string }

/** A TLS handshake with the proxy (not verified: the tests look at what is presented). */
function handshake(port: number, o: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...o }, () => {
      const r = { protocol: s.getProtocol() ?? '', cipher: s.getCipher().name, fingerprint: s.getPeerX509Certificate()?.fingerprint256 ?? '' };
      s.end();
      resolve(r);
    });
    s.on('error', reject);
  });
}

/** GET path through the proxy with the admin token, over a fresh connection with TLS options `o`. */
function get(port: number, path: string, o: https.RequestOptions = {}): Promise<{ status: number; body: string; cipher: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, ca: clusterCa, agent: false, headers: { authorization: `Bearer ${token}` }, ...o }, (res) => {
      const sock = res.socket as tls.TLSSocket;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cipher: sock.getCipher().name, protocol: sock.getProtocol() ?? '' }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The handshake's error code (the test fails when the handshake succeeds). */
async function refused(port: number, o: tls.ConnectionOptions): Promise<string> {
  try {
    const h = await handshake(port, o);
    assert.fail(`handshake succeeded: ${JSON.stringify(h)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return String((err as NodeJS.ErrnoException).code);
  }
}

// A TLS 1.1 ClientHello: Node's OpenSSL would not even send one at its default security level.
const TLS11 = { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;

test('TLS 1.1 is refused, TLS 1.2 and 1.3 serve the apiserver', async () => {
  const p = await proxyWith({});
  const port = portOf(p);
  assert.equal(await refused(port, TLS11), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  const v12 = await get(port, '/version', { maxVersion: 'TLSv1.2' });
  assert.equal(v12.status, 200, v12.body);
  assert.equal(v12.protocol, 'TLSv1.2');
  assert.match(v12.body, /"gitVersion"/);
  const v13 = await get(port, '/version');
  assert.equal(v13.protocol, 'TLSv1.3');
  // Control: without --tls-cipher-suites, TLS 1.2 takes AES-256-GCM (refused in the next test).
  assert.equal((await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' })).cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384');
  // The default is Go's (kube-apiserver's), not Node's: CBC-SHA256/384, insecure to Go, are not offered.
  for (const c of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384']) {
    assert.match(await refused(port, { maxVersion: 'TLSv1.2', ciphers: c }), /^ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_HANDSHAKE_FAILURE$/, c);
  }
  assert.equal((await handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' })).cipher, 'ECDHE-ECDSA-AES128-SHA');
});

test('--tls-cipher-suites: a configured suite works over TLS 1.2, another is refused; TLS 1.3 is not affected', async () => {
  // The test serving certificate is ECDSA P-256.
  assert.equal(new X509Certificate(readFileSync(cluster.info.servingCertFile)).publicKey.asymmetricKeyType, 'ec');
  const p = await proxyWith({ tlsCipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'] });
  const port = portOf(p);
  const ok = await get(port, '/api/v1/namespaces/default', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.cipher, 'ECDHE-ECDSA-AES128-GCM-SHA256');
  for (const c of ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-ECDSA-AES128-SHA']) {
    // (The code's spelling depends on the OpenSSL version: SSLV3_ALERT_… or SSL/TLS_ALERT_….)
    assert.match(await refused(port, { maxVersion: 'TLSv1.2', ciphers: c }), /^ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_HANDSHAKE_FAILURE$/, c);
  }
  assert.equal(await refused(port, TLS11), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  assert.equal((await get(port, '/version')).protocol, 'TLSv1.3');
});

test('--tls-min-version VersionTLS13 refuses TLS 1.2', async () => {
  const p = await proxyWith({ tlsMinVersion: 'VersionTLS13' });
  const port = portOf(p);
  assert.equal(await refused(port, { maxVersion: 'TLSv1.2' }), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  const v13 = await get(port, '/version');
  assert.equal(v13.status, 200, v13.body);
  assert.equal(v13.protocol, 'TLSv1.3');
});

/** A directory laid out as kubelet lays out a Secret volume: files are symlinks through `..data`. */
class SecretVolume {
  #n = 0;
  constructor(readonly dir: string, files: Record<string, string | Buffer>) {
    mkdirSync(dir, { recursive: true });
    this.update(files);
    for (const name of Object.keys(files)) symlinkSync(join('..data', name), join(dir, name));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Writes a new timestamped directory and swaps `..data` to it in one rename. */
  update(files: Record<string, string | Buffer>): void {
    const version = `..v${++this.#n}`;
    mkdirSync(join(this.dir, version));
    for (const [name, content] of Object.entries(files)) writeFileSync(join(this.dir, version, name), content);
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
  }
}

async function metric(p: TestProxy, series: string): Promise<number> {
  const text = await (await fetch(`${p.metricsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}
const SERVING_OK = 'kube_cache_proxy_tls_reloads_total{material="serving_certificate",result="success"}';
const SERVING_FAILED = 'kube_cache_proxy_tls_reloads_total{material="serving_certificate",result="failure"}';
const CA_OK = 'kube_cache_proxy_tls_reloads_total{material="client_ca",result="success"}';
const EXPIRY = 'kube_cache_proxy_serving_certificate_expiration_timestamp_seconds';

const fingerprint = (pem: string | Buffer) => new X509Certificate(pem).fingerprint256;
const notAfter = (pem: string | Buffer) => Date.parse(new X509Certificate(pem).validTo) / 1000;

test('serving certificate rotation: new connections get B, an open keep-alive connection and an HTTP/2 watch continue; a broken key is refused', { timeout: 60_000 }, async () => {
  const a = { 'tls.crt': readFileSync(cluster.info.servingCertFile), 'tls.key': readFileSync(cluster.info.servingKeyFile) };
  const bGen = await generateSelfSignedCert({ commonName: 'kube-cache-proxy-b', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 30 });
  const b = { 'tls.crt': bGen.certPem, 'tls.key': bGen.keyPem };
  const vol = new SecretVolume(join(work, 'serving'), a);
  const p = await proxyWith({ tlsCertFile: vol.path('tls.crt'), tlsPrivateKeyFile: vol.path('tls.key') });
  const port = portOf(p);
  assert.equal((await handshake(port)).fingerprint, fingerprint(a['tls.crt']));
  assert.equal(await metric(p, EXPIRY), notAfter(a['tls.crt']));

  // An HTTP/1.1 keep-alive connection (one socket), trusting both A and B.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: [clusterCa, bGen.certPem] });
  const sockets = new Set<tls.TLSSocket>();
  const viaAgent = () => new Promise<{ status: number; reused: boolean; fingerprint: string }>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/api/v1/namespaces/default', agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const sock = res.socket as tls.TLSSocket;
      sockets.add(sock);
      const peer = sock.getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, fingerprint: peer }));
    });
    req.on('error', reject);
    req.end();
  });
  after(() => agent.destroy());
  const first = await viaAgent();
  assert.deepEqual(first, { status: 200, reused: false, fingerprint: fingerprint(a['tls.crt']) });

  // An HTTP/2 watch of configmaps in default.
  const session = http2.connect(p.url, { ca: [clusterCa, bGen.certPem] });
  after(() => session.close());
  const events: string[] = [];
  const stream = session.request({ ':path': '/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=false', authorization: `Bearer ${token}` });
  stream.setEncoding('utf8');
  let buf = '';
  stream.on('data', (c: string) => {
    buf += c;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      events.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  const status = await new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status']))));
  assert.equal(status, 200);
  const fetchJson = (method: string, path: string, body?: string) => new Promise<number>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method, ca: [clusterCa, bGen.certPem], agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
  const create = async (name: string): Promise<void> => {
    const r = await fetchJson('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: 'v' } }));
    assert.equal(r, 201);
  };
  const name = (s: string) => `kcp-tls-rotation-${s}-${process.pid}`;
  after(async () => {
    for (const s of ['before', 'after']) await fetchJson('DELETE', `/api/v1/namespaces/default/configmaps/${name(s)}`).catch(() => 0);
  });
  await create(name('before'));
  await waitFor('the watch event before rotation', () => (events.some((e) => e.includes(name('before'))) ? true : undefined));

  // Rotate to B, atomically.
  const swappedAt = Date.now();
  vol.update(b);
  await waitFor('new connections to present B', async () => ((await handshake(port)).fingerprint === fingerprint(b['tls.crt']) ? true : undefined), 5_000);
  const took = Date.now() - swappedAt;
  assert.ok(took < 5_000, `reload took ${took} ms`);
  assert.equal(await metric(p, SERVING_OK), 1);
  assert.equal(await metric(p, EXPIRY), notAfter(b['tls.crt']));

  // The old connection continues, on A; the watch continues and sees new events.
  const again = await viaAgent();
  assert.deepEqual(again, { status: 200, reused: true, fingerprint: fingerprint(a['tls.crt']) });
  assert.equal(sockets.size, 1, 'one connection');
  await create(name('after'));
  await waitFor('the watch event after rotation', () => (events.some((e) => e.includes(name('after'))) ? true : undefined));
  assert.equal(stream.closed, false);
  // A new client trusting only B is served.
  const viaB = await get(port, '/version', { ca: bGen.certPem });
  assert.equal(viaB.status, 200);

  // A broken key (C's certificate with a truncated key): refused, counted, B stays.
  const cGen = await generateSelfSignedCert({ commonName: 'kube-cache-proxy-c', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 10 });
  vol.update({ 'tls.crt': cGen.certPem, 'tls.key': cGen.keyPem.slice(0, 80) });
  await waitFor('the broken pair to be refused', async () => ((await metric(p, SERVING_FAILED)) === 1 ? true : undefined), 5_000);
  assert.equal((await handshake(port)).fingerprint, fingerprint(b['tls.crt']));
  assert.equal(await metric(p, SERVING_OK), 1);
  assert.equal(await metric(p, EXPIRY), notAfter(b['tls.crt']));
  // The key completed: C is taken.
  vol.update({ 'tls.crt': cGen.certPem, 'tls.key': cGen.keyPem });
  await waitFor('new connections to present C', async () => ((await handshake(port)).fingerprint === fingerprint(cGen.certPem) ? true : undefined), 5_000);
  assert.equal(await metric(p, SERVING_OK), 2);
  stream.close();
});

test('the metrics port over TLS (--metrics-mode tls) keeps the main port\'s TLS policy and follows its certificate rotation', { timeout: 60_000 }, async () => {
  const a = { 'tls.crt': readFileSync(cluster.info.servingCertFile), 'tls.key': readFileSync(cluster.info.servingKeyFile) };
  const bGen = await generateSelfSignedCert({ commonName: 'kube-cache-proxy-metrics-b', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 30 });
  const vol = new SecretVolume(join(work, 'serving-metrics'), a);
  const p = await proxyWith({ tlsCertFile: vol.path('tls.crt'), tlsPrivateKeyFile: vol.path('tls.key'), tlsMinVersion: 'VersionTLS13', metricsMode: 'tls' });
  const metricsPort = Number(new URL(p.metricsUrl).port);
  assert.equal((await handshake(metricsPort)).fingerprint, fingerprint(a['tls.crt']));
  assert.equal((await handshake(metricsPort)).protocol, 'TLSv1.3');
  assert.equal(await refused(metricsPort, { maxVersion: 'TLSv1.2' }), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  vol.update({ 'tls.crt': bGen.certPem, 'tls.key': bGen.keyPem });
  await waitFor('the metrics port to present B', async () => ((await handshake(metricsPort)).fingerprint === fingerprint(bGen.certPem) ? true : undefined), 5_000);
  assert.equal((await handshake(portOf(p))).fingerprint, fingerprint(bGen.certPem));
  assert.equal(await refused(metricsPort, { maxVersion: 'TLSv1.2' }), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'the policy survives the reload');
});

const execFileP = promisify(execFile);

test('client CA rotation: a client certificate of a new CA is accepted once the CA file holds it', { timeout: 60_000 }, async () => {
  const dir = join(work, 'ca');
  mkdirSync(dir, { recursive: true });
  const kc = (...args: string[]) => execFileP(cluster.info.kcluster, args);
  await kc('pki', 'ca', '--out', join(dir, 'new-ca'), '--cn', 'kube-cache-proxy-test-new-ca');
  await kc('pki', 'cert', '--ca', join(dir, 'new-ca'), '--out', join(dir, 'client'), '--cn', 'rotated-user', '--org', 'rotated-group', '--client');
  const caFile = join(dir, 'client-ca.crt');
  writeFileSync(caFile, clusterCa);
  const p = await proxyWith({ clientCaFile: caFile });
  const port = portOf(p);
  const client = { cert: readFileSync(join(dir, 'client.crt')), key: readFileSync(join(dir, 'client.key')) };
  const whoami = () => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/apis/authentication.k8s.io/v1/selfsubjectreviews', method: 'POST', ca: clusterCa, agent: false, ...client, headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }));
  });
  // Not yet trusted: the apiserver's 401, as for any certificate the proxy cannot verify.
  assert.equal((await whoami()).status, 401);
  // The new CA added to the bundle (written aside and renamed in, as an atomic writer does).
  writeFileSync(`${caFile}.tmp`, Buffer.concat([clusterCa, readFileSync(join(dir, 'new-ca.crt'))]));
  renameSync(`${caFile}.tmp`, caFile);
  const r = await waitFor('the new CA to be trusted', async () => {
    const w = await whoami();
    return w.status === 201 ? w : undefined;
  }, 5_000);
  assert.match(r.body, /"username":"rotated-user"/);
  assert.match(r.body, /"rotated-group"/);
  assert.equal(await metric(p, CA_OK), 1);
});

/** Everything the server sends on a plain TCP connection after `request`, until it closes (10 s at most). */
function plainExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(request));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within 10 s after ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
    }, 10_000);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

test('plain HTTP sent to the TLS port gets the apiserver\'s plain-text 400, byte for byte, and the proxy keeps serving', async () => {
  const p = await proxyWith({});
  const apiserverPort = cluster.info.apiservers[0]?.port ?? 0;
  for (const request of ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 'POST /api/v1/namespaces HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}', 'HEAD / HTTP/1.1\r\n\r\n']) {
    const direct = await plainExchange(apiserverPort, request);
    const proxied = await plainExchange(portOf(p), request);
    assert.match(direct, /^HTTP\/1\.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server\.\n$/, `the apiserver's answer to ${JSON.stringify(request)}`);
    assert.equal(proxied, direct, `the proxy's answer to ${JSON.stringify(request)}`);
  }
  assert.equal((await get(portOf(p), '/api/v1/namespaces/default')).status, 200);
});
