// --tls-min-version and --tls-cipher-suites as kube-apiserver names them
// (k8s.io/component-base/cli/flag/ciphersuites_flag.go, Go's crypto/tls names), mapped to what
// Node's TLS (OpenSSL) takes: minVersion and a `ciphers` list of OpenSSL names.
//
// Without the flag, TLS 1.2 offers Go's default suites, as kube-apiserver does (not Node's list).
// Differences from kube-apiserver, all refusals at start-up:
// - VersionTLS10 and VersionTLS11 are refused (kube-apiserver accepts them): TLS 1.2 is the floor.
// - Go's insecure suites (tls.InsecureCipherSuites(): RSA key exchange, RC4, 3DES, CBC-SHA256) are
//   refused (kube-apiserver accepts them and lists them as insecure values).
// - TLS 1.3 suites: as in Go, they are not configurable. Their names are accepted, as kube-apiserver
//   accepts them, and do nothing: TLS 1.3 always offers TLS_AES_128_GCM_SHA256,
//   TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256. A list of TLS 1.3 names only (which in
//   Go leaves TLS 1.2 without a suite) is refused: --tls-min-version=VersionTLS13 says that plainly.

import type { SecureContextOptions, TlsOptions } from 'node:tls';

export const TLS_VERSIONS = { VersionTLS12: 'TLSv1.2', VersionTLS13: 'TLSv1.3' } as const;
export type TlsVersionName = keyof typeof TLS_VERSIONS;
export const DEFAULT_TLS_MIN_VERSION: TlsVersionName = 'VersionTLS12';

/** Go's TLS 1.0–1.2 secure suites (tls.CipherSuites(), Go 1.26), IANA name → OpenSSL name. */
export const TLS12_CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  // Legacy names component-base keeps for backward compatibility.
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};

/** Go's TLS 1.3 suites: accepted, not configurable. */
export const TLS13_CIPHER_SUITES: readonly string[] = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/** Go's tls.InsecureCipherSuites() (Go 1.26): known to kube-apiserver, refused here. */
export const INSECURE_CIPHER_SUITES: readonly string[] = [
  'TLS_RSA_WITH_RC4_128_SHA', 'TLS_RSA_WITH_3DES_EDE_CBC_SHA', 'TLS_RSA_WITH_AES_128_CBC_SHA', 'TLS_RSA_WITH_AES_256_CBC_SHA',
  'TLS_RSA_WITH_AES_128_CBC_SHA256', 'TLS_RSA_WITH_AES_128_GCM_SHA256', 'TLS_RSA_WITH_AES_256_GCM_SHA384',
  'TLS_ECDHE_ECDSA_WITH_RC4_128_SHA', 'TLS_ECDHE_RSA_WITH_RC4_128_SHA', 'TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA',
  'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256',
];

/** What Node's tls.createSecureContext takes for the version floor and the TLS 1.2 suites. */
export interface TlsPolicy {
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL names, colon-separated; undefined: Node's default list. */
  readonly ciphers: string | undefined;
}

/**
 * Without --tls-cipher-suites: Go's default TLS 1.2 suites, as kube-apiserver offers them (every
 * secure one above: ECDHE key exchange, AEAD or CBC-SHA1), AEAD first. Node's own default would
 * also offer what Go calls insecure (CBC-SHA256/384, and RSA key exchange through "HIGH").
 */
export const DEFAULT_TLS12_CIPHER_SUITES: readonly string[] = [
  'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
  'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
  'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
];

/** The version name's error, or undefined when it is one this proxy serves. */
export function tlsVersionError(name: string): string | undefined {
  if (Object.hasOwn(TLS_VERSIONS, name)) return undefined;
  if (name === 'VersionTLS10' || name === 'VersionTLS11') return `${name} is not supported: TLS 1.2 is the minimum (one of ${Object.keys(TLS_VERSIONS).join(', ')})`;
  return `unknown tls version "${name}" (one of ${Object.keys(TLS_VERSIONS).join(', ')})`;
}

/** The first error in a list of suite names, or undefined when all are accepted. */
export function cipherSuitesError(names: readonly string[]): string | undefined {
  if (names.length === 0) return undefined;
  for (const n of names) {
    if (INSECURE_CIPHER_SUITES.includes(n)) return `cipher suite ${n} is insecure and not supported`;
    if (!Object.hasOwn(TLS12_CIPHER_SUITES, n) && !TLS13_CIPHER_SUITES.includes(n)) {
      return `cipher suite ${n} not supported or doesn't exist (supported: ${[...Object.keys(TLS12_CIPHER_SUITES), ...TLS13_CIPHER_SUITES].join(', ')})`;
    }
  }
  if (!names.some((n) => Object.hasOwn(TLS12_CIPHER_SUITES, n))) {
    return 'only TLS 1.3 cipher suites, which are not configurable, are listed: leave TLS 1.2 without a suite? Use --tls-min-version=VersionTLS13 instead';
  }
  return undefined;
}

/** The Node options for a checked version name and suite list (see tlsVersionError, cipherSuitesError; [] = the default). */
export function tlsPolicy(minVersion: TlsVersionName, suites: readonly string[]): TlsPolicy {
  const names = suites.length > 0 ? suites : DEFAULT_TLS12_CIPHER_SUITES;
  const openssl = [...new Set(names.flatMap((n) => (Object.hasOwn(TLS12_CIPHER_SUITES, n) ? [TLS12_CIPHER_SUITES[n] ?? ''] : [])))];
  return { minVersion: TLS_VERSIONS[minVersion], ciphers: openssl.length > 0 ? openssl.join(':') : undefined };
}

/** What a port serves with: its certificate, the CA for client certificates, the policy both ports share. */
export interface PortTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Client certificates are requested (not required) and verified against this CA; undefined: none asked for. */
  readonly clientCa?: string | Buffer | undefined;
  /** TLS 1.2 unless raised. */
  readonly minVersion?: TlsPolicy['minVersion'] | undefined;
  /** OpenSSL names, colon-separated; undefined: Node's default list. */
  readonly ciphers?: string | undefined;
}

/**
 * What tls.createServer (and a server's setSecureContext, which ignores the request for client
 * certificates) take for a port: the main port, the metrics port, and both again on a reload.
 */
export function portTlsOptions(t: PortTls): SecureContextOptions & Pick<TlsOptions, 'requestCert' | 'rejectUnauthorized'> {
  return {
    cert: t.cert, key: t.key, minVersion: t.minVersion ?? 'TLSv1.2',
    ...(t.ciphers !== undefined ? { ciphers: t.ciphers } : {}),
    ...(t.clientCa !== undefined ? { ca: t.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
  };
}
