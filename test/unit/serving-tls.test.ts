// ServingTls without directory watching: the poll alone notices changes, by content (a touch is
// not a reload), keeps the old material when the new one does not load, and tells listeners once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ServingTls, notAfterSeconds, type TlsMaterial } from '../../proxy/serving-tls.js';
import { generateSelfSignedCert } from '../../proxy/self-signed-cert.js';
import { portTlsOptions } from '../../proxy/tls-options.js';
import { waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'kcp-serving-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return Number(v?.value ?? 0);
}

test('polling: content changes reload, touches do not, a bad pair keeps the old one', async () => {
  const a = await generateSelfSignedCert({ commonName: 'a', dnsNames: ['localhost'], ipAddresses: [], validDays: 10 });
  const b = await generateSelfSignedCert({ commonName: 'b', dnsNames: ['localhost'], ipAddresses: [], validDays: 20 });
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  writeFileSync(certFile, a.certPem);
  writeFileSync(keyFile, a.keyPem);
  const registry = new Registry();
  const s = new ServingTls({
    certFile, keyFile, initial: { cert: a.certPem, key: a.keyPem, ca: undefined }, policy: { minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
    log: pino({ level: 'silent' }), registry, pollMs: 50, watch: false,
  });
  const seen: TlsMaterial[] = [];
  s.onChange((m) => seen.push(m));
  s.start();
  after(() => s.stop());
  assert.deepEqual(portTlsOptions(s.portTls()), { cert: a.certPem, key: a.keyPem, minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  const expiry = () => value(registry, 'kube_cache_proxy_serving_certificate_expiration_timestamp_seconds');
  assert.equal(await expiry(), notAfterSeconds(a.certPem));

  // Same content, new mtime: nothing.
  utimesSync(certFile, new Date(), new Date(Date.now() + 5000));
  assert.equal(s.check(), false);

  // The certificate first, the key later (a non-atomic writer): the mismatched pair is refused once.
  writeFileSync(certFile, b.certPem);
  await waitFor('the mismatched pair to be refused', async () => ((await value(registry, 'kube_cache_proxy_tls_reloads_total', { result: 'failure' })) === 1 ? true : undefined), 2000);
  await new Promise((r) => setTimeout(r, 200)); // several polls: still counted once
  assert.equal(await value(registry, 'kube_cache_proxy_tls_reloads_total', { result: 'failure' }), 1);
  assert.equal(s.current.cert, a.certPem);
  assert.equal(seen.length, 0);

  writeFileSync(keyFile, b.keyPem);
  await waitFor('B to be loaded', () => (seen.length === 1 ? true : undefined), 2000);
  assert.equal(Buffer.from(s.current.cert).toString(), b.certPem);
  assert.equal(Buffer.from(s.current.key).toString(), b.keyPem);
  assert.equal(await value(registry, 'kube_cache_proxy_tls_reloads_total', { material: 'serving_certificate', result: 'success' }), 1);
  assert.equal(await expiry(), notAfterSeconds(b.certPem));

  // A removed file: refused (once), the material in use stays.
  rmSync(keyFile);
  await waitFor('the missing key to be refused', async () => ((await value(registry, 'kube_cache_proxy_tls_reloads_total', { result: 'failure' })) === 2 ? true : undefined), 2000);
  assert.equal(Buffer.from(s.current.cert).toString(), b.certPem);
  assert.equal(seen.length, 1);
});

test('client CA: garbage is refused, a new bundle is taken', async () => {
  const a = await generateSelfSignedCert({ commonName: 'a', dnsNames: [], ipAddresses: [], validDays: 1 });
  const ca2 = await generateSelfSignedCert({ commonName: 'ca2', dnsNames: [], ipAddresses: [], validDays: 1 });
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, a.certPem);
  const registry = new Registry();
  const s = new ServingTls({
    caFile, initial: { cert: a.certPem, key: a.keyPem, ca: Buffer.from(a.certPem) }, policy: { minVersion: 'TLSv1.3', ciphers: undefined },
    log: pino({ level: 'silent' }), registry, watch: false,
  });
  assert.equal(s.check(), false);
  writeFileSync(caFile, 'not a certificate\n');
  assert.equal(s.check(), false);
  assert.equal(await value(registry, 'kube_cache_proxy_tls_reloads_total', { material: 'client_ca', result: 'failure' }), 1);
  writeFileSync(caFile, a.certPem + ca2.certPem);
  assert.equal(s.check(), true);
  assert.equal(s.current.ca?.toString(), a.certPem + ca2.certPem);
  const options = portTlsOptions(s.portTls());
  assert.equal(options.minVersion, 'TLSv1.3');
  assert.equal('ciphers' in options, false);
  // Client certificates asked for (not required) and verified against the new bundle.
  assert.equal(options.ca?.toString(), a.certPem + ca2.certPem);
  assert.equal(options.requestCert, true);
  assert.equal(options.rejectUnauthorized, false);
  assert.equal(await value(registry, 'kube_cache_proxy_tls_reloads_total', { material: 'client_ca', result: 'success' }), 1);
});
