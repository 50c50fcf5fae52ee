// --tls-min-version and --tls-cipher-suites: kube-apiserver's (Go's) names mapped to Node's, and the
// refusals at start-up, from flags and from the --config file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getCiphers } from 'node:tls';
import { parseFlags } from '../../proxy/flags.js';
import { parseConfigText } from '../../proxy/config-file.js';
import { ConfigError } from '../../proxy/errors.js';
import {
  DEFAULT_TLS12_CIPHER_SUITES, INSECURE_CIPHER_SUITES, TLS12_CIPHER_SUITES, TLS13_CIPHER_SUITES, cipherSuitesError, tlsPolicy, tlsVersionError,
} from '../../proxy/tls-options.js';

function refused(f: () => unknown, msg: RegExp): void {
  assert.throws(f, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
    assert.match(err.message, msg);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

test('every TLS 1.2 suite maps to an OpenSSL name this Node knows', () => {
  const known = new Set(getCiphers());
  for (const [iana, openssl] of Object.entries(TLS12_CIPHER_SUITES)) {
    assert.ok(known.has(openssl.toLowerCase()), `${iana} → ${openssl} is not in tls.getCiphers()`);
  }
  // Names as in Go: ECDHE key exchange and AEAD or CBC-SHA1, nothing else.
  for (const iana of Object.keys(TLS12_CIPHER_SUITES)) assert.match(iana, /^TLS_ECDHE_(RSA|ECDSA)_WITH_(AES_(128|256)_(GCM_SHA(256|384)|CBC_SHA)|CHACHA20_POLY1305(_SHA256)?)$/);
});

test('tlsPolicy: version names, OpenSSL lists in the given order, TLS 1.3 names dropped, duplicates once', () => {
  const defaults = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
    'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA';
  assert.deepEqual(tlsPolicy('VersionTLS12', []), { minVersion: 'TLSv1.2', ciphers: defaults });
  assert.deepEqual(tlsPolicy('VersionTLS13', []), { minVersion: 'TLSv1.3', ciphers: defaults });
  // The default is every secure TLS 1.2 suite Go has (legacy spellings aside).
  assert.deepEqual(new Set(DEFAULT_TLS12_CIPHER_SUITES), new Set(Object.keys(TLS12_CIPHER_SUITES).filter((n) => n.endsWith('_SHA') || n.endsWith('_SHA256') || n.endsWith('_SHA384'))));
  assert.deepEqual(
    tlsPolicy('VersionTLS12', ['TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'TLS_AES_128_GCM_SHA256', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305']),
    { minVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305' },
  );
});

test('versions: TLS 1.2 and 1.3 only', () => {
  assert.equal(tlsVersionError('VersionTLS12'), undefined);
  assert.equal(tlsVersionError('VersionTLS13'), undefined);
  assert.match(tlsVersionError('VersionTLS11') ?? '', /VersionTLS11 is not supported: TLS 1.2 is the minimum/);
  assert.match(tlsVersionError('VersionTLS10') ?? '', /not supported/);
  for (const bad of ['TLSv1.2', 'versiontls12', '1.2', 'VersionSSL30']) assert.match(tlsVersionError(bad) ?? '', /^unknown tls version/, bad);
});

test('suites: unknown and insecure refused, TLS 1.3 alone refused', () => {
  assert.equal(cipherSuitesError([]), undefined);
  assert.equal(cipherSuitesError(['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', ...TLS13_CIPHER_SUITES]), undefined);
  for (const n of INSECURE_CIPHER_SUITES) assert.match(cipherSuitesError(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', n]) ?? '', new RegExp(`^cipher suite ${n} is insecure`));
  for (const n of ['ECDHE-RSA-AES128-GCM-SHA256', 'tls_ecdhe_rsa_with_aes_128_gcm_sha256', 'TLS_FOO', 'constructor']) {
    assert.match(cipherSuitesError([n]) ?? '', new RegExp(`^cipher suite ${n} not supported or doesn't exist`), n);
  }
  assert.match(cipherSuitesError(['TLS_AES_128_GCM_SHA256']) ?? '', /VersionTLS13/);
});

test('flags: refusals name the flag', () => {
  refused(() => parseFlags(['--tls-min-version', 'VersionTLS11']), /^--tls-min-version: VersionTLS11 is not supported/);
  refused(() => parseFlags(['--tls-min-version=TLS13']), /^--tls-min-version: unknown tls version "TLS13"/);
  refused(() => parseFlags(['--tls-cipher-suites', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_GCM_SHA256']), /^--tls-cipher-suites: cipher suite TLS_RSA_WITH_AES_128_GCM_SHA256 is insecure/);
  refused(() => parseFlags(['--tls-cipher-suites', 'TLS_BOGUS']), /^--tls-cipher-suites: cipher suite TLS_BOGUS not supported/);
  refused(() => parseFlags(['--tls-cipher-suites=']), /^--tls-cipher-suites: must not be empty/);
});

test('config file: tlsMinVersion and tlsCipherSuites', () => {
  assert.deepEqual(parseConfigText('c.yaml', 'tlsMinVersion: VersionTLS13\ntlsCipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n'),
    { tlsMinVersion: 'VersionTLS13', tlsCipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'] });
  refused(() => parseConfigText('c.yaml', 'tlsMinVersion: VersionTLS10\n'), /^--config c.yaml: field "tlsMinVersion" VersionTLS10 is not supported/);
  refused(() => parseConfigText('c.yaml', 'tlsMinVersion: 1.3\n'), /field "tlsMinVersion" must be a string/);
  refused(() => parseConfigText('c.yaml', 'tlsCipherSuites: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n'), /field "tlsCipherSuites" must be a list/);
  refused(() => parseConfigText('c.yaml', 'tlsCipherSuites: [TLS_ECDHE_RSA_WITH_RC4_128_SHA]\n'), /field "tlsCipherSuites" cipher suite TLS_ECDHE_RSA_WITH_RC4_128_SHA is insecure/);
});
