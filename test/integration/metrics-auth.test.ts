// The metrics port with --metrics-mode tls-authn, against the real apiserver: /healthz, /livez and
// /readyz open over TLS; /metrics only for a client the apiserver authenticates (TokenReview, or a
// --client-ca-file certificate) and authorizes (SubjectAccessReview: get on the non-resource URL
// /metrics), refused with the apiserver's own 401 and 403 bodies; a revoked permission stops being
// honoured within the allowed TTL of the decision cache. The binary's default stays plain HTTP, and
// `tls` serves TLS without authentication.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { METRICS_AUTH_ALLOWED_TTL_MS } from '../../proxy/metrics-auth.js';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { generateSelfSignedCert } from '../../proxy/self-signed-cert.js';

const cluster = sharedCluster();
const apiserver = cluster.info.apiservers[0]?.url ?? '';
const NAME = `kcp-metrics-reader-${Date.now().toString(36)}`;
let proxy: TestProxy;

before(async () => {
  proxy = await startTestProxy(cluster, { metricsMode: 'tls-authn' });
});
after(async () => {
  await proxy.stop();
  await cluster.kubectl('admin', ['delete', `clusterrolebinding/${NAME}`, `clusterrole/${NAME}`, '--ignore-not-found', '--wait=false']);
  await closeAgents();
});

const bearer = (token: string) => ({ user: 'anonymous' as const, headers: { authorization: `Bearer ${token}` } });

/** The refusal as the apiserver writes it: status, body byte for byte, and the headers that describe it. */
function assertSameRefusal(proxied: Reply, direct: Reply, what: string): void {
  assert.equal(proxied.status, direct.status, `${what}: status (proxied ${proxied.text()} / direct ${direct.text()})`);
  assert.equal(proxied.text(), direct.text(), `${what}: body`);
  for (const h of ['content-type', 'cache-control', 'x-content-type-options']) assert.equal(proxied.headers[h], direct.headers[h], `${what}: header ${h}`);
}

test('tls-authn: the metrics URL is https; /healthz, /livez and /readyz answer without credentials', { timeout: 60_000 }, async () => {
  assert.match(proxy.metricsUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  await waitFor('/readyz 200', async () => ((await call(cluster, proxy.metricsUrl, '/readyz', { user: 'anonymous' })).status === 200 ? true : undefined), 30_000);
  for (const path of ['/healthz', '/livez', '/readyz']) {
    const r = await call(cluster, proxy.metricsUrl, path, { user: 'anonymous' });
    assert.equal(r.status, 200, `${path}: ${r.text()}`);
    assert.equal(r.text(), 'ok');
  }
  const verbose = await call(cluster, proxy.metricsUrl, '/readyz?verbose', { user: 'anonymous' });
  assert.match(verbose.text(), /readyz check passed/);
});

test('tls-authn: /metrics without credentials or with an invalid token is 401, with the apiserver\'s Unauthorized Status', async () => {
  const none = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'anonymous' });
  assert.equal(none.status, 401, none.text());
  assert.deepEqual(none.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  assert.doesNotMatch(none.text(), /kube_cache_proxy_/);
  for (const token of ['not-a-token', `${cluster.info.users.viewer.token ?? ''}x`]) {
    const proxied = await call(cluster, proxy.metricsUrl, '/metrics', bearer(token));
    const direct = await call(cluster, apiserver, '/metrics', bearer(token));
    assertSameRefusal(proxied, direct, `token ${token.slice(0, 6)}…`);
    assert.equal(proxied.status, 401);
  }
  // Not a bearer token at all.
  const basic = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'anonymous', headers: { authorization: 'Basic dXNlcjpwYXNz' } });
  assert.equal(basic.status, 401);
});

test('tls-authn: /metrics for an authenticated user without the permission is 403, as the apiserver words it', async () => {
  const proxied = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'nobody' });
  const direct = await call(cluster, apiserver, '/metrics', { user: 'nobody' });
  assertSameRefusal(proxied, direct, 'nobody');
  assert.equal(proxied.status, 403);
  assert.match(proxied.text(), /User \\"nobody\\" cannot get path \\"\/metrics\\"/);
  // A client certificate verified against --client-ca-file authenticates (CN user, O groups).
  const cert = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'node1' });
  const certDirect = await call(cluster, apiserver, '/metrics', { user: 'node1' });
  assertSameRefusal(cert, certDirect, 'node1 (certificate)');
  assert.equal(cert.status, 403);
  assert.match(cert.text(), /system:node:node-1/);
  // Impersonation is not honoured on the metrics port.
  const imp = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'admin', headers: { 'impersonate-user': 'nobody' } });
  assert.equal(imp.status, 403, imp.text());
  // (admin itself may read /metrics: the 403 is the refusal of impersonation, not nobody's.)
  assert.match(imp.text(), /impersonation is not supported on the metrics port/);
  // The same refusal for a certificate client, whether its Impersonate-* headers are well formed or not.
  for (const headers of [{ 'impersonate-user': 'admin' }, { 'impersonate-group': 'system:masters' }] as Array<Record<string, string>>) {
    const certImp = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'node1', headers });
    assert.equal(certImp.status, 403, `${JSON.stringify(headers)}: ${certImp.text()}`);
    assert.match(certImp.text(), /impersonation is not supported on the metrics port/);
  }
});

test('tls-authn: granted get on /metrics, 200 with Prometheus text; revoked, 403 within the allowed TTL', { timeout: 60_000 }, async () => {
  const role = {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: NAME },
    rules: [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }],
  };
  const binding = {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: NAME },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAME },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'viewer' }],
  };
  const applied = await cluster.kubectl('admin', ['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [role, binding] }) });
  assert.equal(applied.code, 0, applied.stderr);
  await waitFor('the apiserver allows viewer /metrics', async () => ((await call(cluster, apiserver, '/metrics', { user: 'viewer' })).status === 200 ? true : undefined), 10_000);

  // The first answer through the proxy is a fresh decision (viewer was never asked about before).
  const ok = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'viewer' });
  const allowedAt = performance.now();
  assert.equal(ok.status, 200, ok.text());
  assert.match(String(ok.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.match(ok.text(), /^# HELP kube_cache_proxy_/m);
  assert.match(ok.text(), /^kube_cache_proxy_cache_synced\{resource="pods"\} 1$/m);

  // Revoked at the apiserver: the proxy may honour the remembered decision, but never for longer
  // than the allowed TTL after it was made.
  const deleted = await cluster.kubectl('admin', ['delete', `clusterrolebinding/${NAME}`]);
  assert.equal(deleted.code, 0, deleted.stderr);
  await waitFor('the apiserver refuses viewer /metrics', async () => ((await call(cluster, apiserver, '/metrics', { user: 'viewer' })).status === 403 ? true : undefined), 10_000);
  const revokedAt = performance.now();
  const remembered = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'viewer' });
  if (revokedAt - allowedAt < METRICS_AUTH_ALLOWED_TTL_MS - 500) {
    // Still within the TTL: the remembered decision stands (no review asked).
    assert.equal(remembered.status, 200, 'the allowed decision was not remembered');
  } else {
    process.stderr.write(`[metrics-auth] remembered decision not checked: the revocation took ${Math.round(revokedAt - allowedAt)} ms\n`);
  }
  let refusedAt = 0;
  await waitFor('403 through the proxy', async () => {
    const r = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'viewer' });
    if (r.status === 200) return undefined;
    refusedAt = performance.now();
    assert.equal(r.status, 403, r.text());
    assert.match(r.text(), /User \\"viewer\\" cannot get path \\"\/metrics\\"/);
    return true;
  }, METRICS_AUTH_ALLOWED_TTL_MS + 5_000);
  const after = refusedAt - allowedAt;
  process.stderr.write(`[metrics-auth] revoked at the apiserver after ${(revokedAt - allowedAt).toFixed(0)} ms, refused by the proxy after ${after.toFixed(0)} ms (remembered: ${remembered.status})\n`);
  assert.ok(after <= METRICS_AUTH_ALLOWED_TTL_MS + 1_000, `revocation honoured after ${after.toFixed(0)} ms, the bound is ${METRICS_AUTH_ALLOWED_TTL_MS} ms`);
});

test('tls-authn: other paths 404 without asking for credentials; a plain-HTTP request to the TLS port fails', async () => {
  const r = await call(cluster, proxy.metricsUrl, '/nope', { user: 'anonymous' });
  assert.equal(r.status, 404);
  const plain = await fetch(proxy.metricsUrl.replace('https:', 'http:') + '/metrics').then((x) => x.status, () => 'refused');
  assert.notEqual(plain, 200);
});

/** The certificate the metrics port presents to a new connection. */
function presented(url: string): Promise<X509Certificate> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
      const raw = s.getPeerCertificate().raw;
      s.destroy();
      resolve(new X509Certificate(raw));
    });
    s.once('error', reject);
  });
}

test('tls-authn: setTls serves another certificate to new connections (for reloads)', async () => {
  const serving = new X509Certificate(readFileSync(cluster.info.servingCertFile));
  assert.equal((await presented(proxy.metricsUrl)).fingerprint256, serving.fingerprint256);
  const other = await generateSelfSignedCert({ commonName: 'metrics-reload', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 1 });
  proxy.proxy.health.setTls({ cert: other.certPem, key: other.keyPem, clientCa: readFileSync(cluster.info.caFile) });
  try {
    assert.equal((await presented(proxy.metricsUrl)).fingerprint256, new X509Certificate(other.certPem).fingerprint256);
  } finally {
    proxy.proxy.health.setTls({ cert: readFileSync(cluster.info.servingCertFile), key: readFileSync(cluster.info.servingKeyFile), clientCa: readFileSync(cluster.info.caFile) });
  }
  assert.equal((await presented(proxy.metricsUrl)).fingerprint256, serving.fingerprint256);
  // Client certificates still verify against the CA after the switch back.
  const cert = await call(cluster, proxy.metricsUrl, '/metrics', { user: 'node1' });
  assert.equal(cert.status, 403, cert.text());
});

test('tls: TLS without authentication, /metrics open; the default (plain) serves plain HTTP', { timeout: 60_000 }, async () => {
  const tls = await startTestProxy(cluster, { metricsMode: 'tls', cache: undefined });
  try {
    assert.match(tls.metricsUrl, /^https:/);
    const m = await call(cluster, tls.metricsUrl, '/metrics', { user: 'anonymous' });
    assert.equal(m.status, 200, m.text());
    assert.match(m.text(), /^# HELP kube_cache_proxy_/m);
  } finally {
    await tls.stop();
  }
  const plain = await startTestProxy(cluster, { cache: undefined });
  try {
    assert.match(plain.metricsUrl, /^http:\/\//);
    const m = await fetch(`${plain.metricsUrl}/metrics`);
    assert.equal(m.status, 200);
    assert.match(await m.text(), /^# HELP kube_cache_proxy_/m);
    assert.equal((await fetch(`${plain.metricsUrl}/healthz`)).status, 200);
  } finally {
    await plain.stop();
  }
});
