import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { generateSelfSignedCert } from '../../proxy/self-signed-cert.js';

test('IP SANs must be IP literals', async () => {
  for (const ip of ['localhost', '1.2.3', 'fe80::1%eth0']) {
    await assert.rejects(generateSelfSignedCert({ commonName: 'x', dnsNames: [], ipAddresses: [ip], validDays: 1 }), RangeError, ip);
  }
});

test('certificate parses with expected fields', async () => {
  const { certPem, keyPem } = await generateSelfSignedCert({
    commonName: 'kube-cache-proxy',
    dnsNames: ['localhost', 'proxy.example.com'],
    ipAddresses: ['127.0.0.1', '::1', '10.0.0.5'],
    validDays: 365,
  });
  assert.match(certPem, /^-----BEGIN CERTIFICATE-----\n/);
  assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const cert = new crypto.X509Certificate(certPem);
  const key = crypto.createPrivateKey(keyPem);
  assert.equal(key.asymmetricKeyType, 'ec');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');

  assert.equal(cert.subject, 'CN=kube-cache-proxy');
  assert.equal(cert.issuer, 'CN=kube-cache-proxy');
  assert.equal(cert.ca, false);
  const san = cert.subjectAltName ?? '';
  for (const part of [
    'DNS:localhost',
    'DNS:proxy.example.com',
    'IP Address:127.0.0.1',
    'IP Address:0:0:0:0:0:0:0:1',
    'IP Address:10.0.0.5',
  ]) {
    assert.ok(san.includes(part), `SAN ${san} should include ${part}`);
  }
  assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']); // Node reports extKeyUsage here
  assert.ok(cert.checkPrivateKey(key));
  assert.ok(cert.verify(cert.publicKey));
  assert.ok(cert.checkHost('localhost'));
  assert.ok(cert.checkIP('127.0.0.1'));
  assert.ok(cert.checkIP('::1'));

  const serial = Buffer.from(cert.serialNumber, 'hex');
  assert.equal(serial.length, 16);
  assert.equal(serial.readUInt8(0) & 0x80, 0);

  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  const now = Date.now();
  assert.ok(notBefore <= now - 3590_000 && notBefore >= now - 3700_000, cert.validFrom);
  assert.ok(Math.abs(notAfter - (now + 365 * 86400_000)) < 60_000, cert.validTo);

  // Two certificates get different serials and keys.
  const other = new crypto.X509Certificate(
    (await generateSelfSignedCert({ commonName: 'x', dnsNames: [], ipAddresses: [], validDays: 1 })).certPem,
  );
  assert.notEqual(other.serialNumber, cert.serialNumber);
  assert.equal(other.subjectAltName, undefined);
});

test('validity past 2049 uses GeneralizedTime and still parses', async () => {
  const { certPem } = await generateSelfSignedCert({
    commonName: 'long',
    dnsNames: ['localhost'],
    ipAddresses: [],
    validDays: 365 * 40,
  });
  const cert = new crypto.X509Certificate(certPem);
  assert.ok(new Date(cert.validTo).getUTCFullYear() >= 2060, cert.validTo);
});

function get(url: string, options: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...options, rejectUnauthorized: true, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

test('TLS end-to-end: cert is trusted as its own CA by hostname and IP', async (t) => {
  const { certPem, keyPem } = await generateSelfSignedCert({
    commonName: 'kube-cache-proxy',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    validDays: 30,
  });
  const server = https.createServer({ cert: certPem, key: keyPem }, (_req, res) => {
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;

  const byName = await get(`https://localhost:${port}/`, {
    ca: certPem,
    servername: 'localhost',
    lookup: (_host, opts, cb) => {
      if (typeof opts === 'object' && opts.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
      else cb(null, '127.0.0.1', 4);
    },
  });
  assert.deepEqual(byName, { status: 200, body: 'ok' });

  const byIp = await get(`https://127.0.0.1:${port}/`, { ca: certPem });
  assert.deepEqual(byIp, { status: 200, body: 'ok' });

  // Negative control: without the CA, verification fails.
  await assert.rejects(get(`https://127.0.0.1:${port}/`, {}), /self[- ]signed|unable to verify/i);
  // Negative control: a name not in the SANs is rejected.
  await assert.rejects(
    get(`https://127.0.0.1:${port}/`, { ca: certPem, servername: 'other.example', headers: { host: 'other.example' } }),
    (err: unknown) => err instanceof Error && /altnames|ERR_TLS_CERT_ALTNAME_INVALID/.test(`${err.message} ${String((err as NodeJS.ErrnoException).code)}`),
  );
});
