import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { generateSelfSignedCert, ipToBytes } from '../../proxy/self-signed-cert.js';
import { encodeLength, integer, oid, time } from '../../proxy/der.js';

test('der: length, integer, oid, time encodings', () => {
  assert.deepEqual(encodeLength(0x7f), Buffer.from([0x7f]));
  assert.deepEqual(encodeLength(0x80), Buffer.from([0x81, 0x80]));
  assert.deepEqual(encodeLength(0x1234), Buffer.from([0x82, 0x12, 0x34]));
  assert.deepEqual(integer(0), Buffer.from([0x02, 0x01, 0x00]));
  assert.deepEqual(integer(127), Buffer.from([0x02, 0x01, 0x7f]));
  assert.deepEqual(integer(128), Buffer.from([0x02, 0x02, 0x00, 0x80]));
  assert.deepEqual(integer(Buffer.from([0x00, 0x00, 0x01])), Buffer.from([0x02, 0x01, 0x01]));
  assert.deepEqual(integer(Buffer.from([0xff])), Buffer.from([0x02, 0x02, 0x00, 0xff]));
  assert.deepEqual(
    oid('1.2.840.10045.4.3.2'),
    Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
  );
  assert.deepEqual(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))).toString('latin1', 2), '491231235959Z');
  assert.equal(time(new Date(Date.UTC(2049, 0, 1))).readUInt8(0), 0x17);
  const gt = time(new Date(Date.UTC(2050, 0, 2, 3, 4, 5)));
  assert.equal(gt.readUInt8(0), 0x18);
  assert.equal(gt.toString('latin1', 2), '20500102030405Z');
});

test('ipToBytes parses IPv4 and IPv6 forms', () => {
  assert.deepEqual(ipToBytes('127.0.0.1'), Buffer.from([127, 0, 0, 1]));
  assert.equal(ipToBytes('::1').toString('hex'), '00000000000000000000000000000001');
  assert.equal(ipToBytes('fe80::1:2').toString('hex'), 'fe800000000000000000000000010002');
  assert.equal(ipToBytes('::ffff:10.1.2.3').toString('hex'), '00000000000000000000ffff0a010203');
  assert.equal(ipToBytes('1:2:3:4:5:6:7:8').toString('hex'), '00010002000300040005000600070008');
  assert.throws(() => ipToBytes('localhost'));
  assert.throws(() => ipToBytes('1.2.3'));
});

test('certificate parses with expected fields', () => {
  const { certPem, keyPem } = generateSelfSignedCert({
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
    generateSelfSignedCert({ commonName: 'x', dnsNames: [], ipAddresses: [], validDays: 1 }).certPem,
  );
  assert.notEqual(other.serialNumber, cert.serialNumber);
  assert.equal(other.subjectAltName, undefined);
});

test('validity past 2049 uses GeneralizedTime and still parses', () => {
  const { certPem } = generateSelfSignedCert({
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
  const { certPem, keyPem } = generateSelfSignedCert({
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
