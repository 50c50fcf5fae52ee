// Generator of a self-signed TLS server certificate (ECDSA P-256 / SHA-256), used when no
// --tls-cert-file is configured. Built with @peculiar/x509 on WebCrypto (hence async); Node's
// crypto can parse but not create X.509 certificates.
//
// The certificate is meant to be trusted *as itself*: clients put it in
// their root store (e.g. kubeconfig certificate-authority-data) and the
// server presents the same certificate. It is an end-entity certificate
// (basicConstraints CA:FALSE, keyUsage digitalSignature only): Go's
// crypto/x509 and OpenSSL both accept a self-signed CA:FALSE certificate as
// its own trust anchor (verified with Go 1.26 and OpenSSL 3.0), and unlike a
// CA:TRUE/keyCertSign certificate, trusting it does not let its key sign
// other, trusted certificates for arbitrary names.

import crypto from 'node:crypto';
import net from 'node:net';
import { installReflectMetadata } from './reflect-metadata.js';

export interface SelfSignedCertOptions {
  /** Subject and issuer common name. */
  commonName: string;
  /** DNS subjectAltName entries (e.g. "localhost"). */
  dnsNames: string[];
  /** IP subjectAltName entries, IPv4 or IPv6 textual form. */
  ipAddresses: string[];
  /** Validity period in days, counted from now (notBefore is backdated 1 h). */
  validDays: number;
}

export interface SelfSignedCert {
  /** PEM "CERTIFICATE". */
  certPem: string;
  /** PEM "PRIVATE KEY" (PKCS#8, unencrypted). */
  keyPem: string;
}

type X509 = typeof import('@peculiar/x509');
let x509: Promise<X509> | undefined;

/** The library, loaded on first use (not at all when the certificate comes from files). */
function library(): Promise<X509> {
  // tsyringe, which @peculiar/x509 loads, refuses to load without Reflect metadata functions.
  installReflectMetadata();
  // Its default crypto provider is globalThis.crypto, Node's WebCrypto (Node 20 and 24).
  x509 ??= import('@peculiar/x509');
  return x509;
}

/** 16 random bytes as hex, positive (high bit clear) and exactly 16 bytes long (first byte non-zero). */
function randomSerial(): string {
  const serial = crypto.randomBytes(16);
  serial.writeUInt8((serial.readUInt8(0) & 0x7f) || 0x01, 0);
  return serial.toString('hex');
}

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${b64.join('\n')}\n-----END ${label}-----\n`;
}

/** Generates an ECDSA P-256 key and a self-signed X.509 v3 certificate for it. */
export async function generateSelfSignedCert(opts: SelfSignedCertOptions): Promise<SelfSignedCert> {
  if (!(opts.validDays > 0)) throw new RangeError('validDays must be positive');
  for (const ip of opts.ipAddresses) {
    if (net.isIP(ip) === 0 || ip.includes('%')) throw new RangeError(`invalid IP address: ${ip}`);
  }
  const lib = await library();
  const subtle = crypto.webcrypto.subtle;
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await subtle.generateKey(alg, true, ['sign', 'verify']);
  // RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey (the uncompressed point).
  const keyId = crypto.createHash('sha1').update(Buffer.from(await subtle.exportKey('raw', keys.publicKey))).digest('hex');

  const now = Date.now();
  const notBefore = new Date(Math.floor((now - 3600_000) / 1000) * 1000);
  const notAfter = new Date(Math.floor((now + opts.validDays * 86400_000) / 1000) * 1000);
  const sans = [
    ...opts.dnsNames.map((d) => ({ type: 'dns' as const, value: d })),
    ...opts.ipAddresses.map((ip) => ({ type: 'ip' as const, value: ip })),
  ];
  const extensions = [
    new lib.BasicConstraintsExtension(false, undefined, true),
    new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature, true),
    new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth], false),
    new lib.SubjectKeyIdentifierExtension(keyId, false),
    new lib.AuthorityKeyIdentifierExtension(keyId, false),
    // SAN must not be empty if present; with a non-empty subject it may be omitted.
    ...(sans.length > 0 ? [new lib.SubjectAlternativeNameExtension(sans, false)] : []),
  ];
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // The JSON form: a common name is taken as it is, with no string-DN escaping to get right.
    name: [{ CN: [opts.commonName] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: alg,
    extensions,
  });
  return {
    certPem: toPem('CERTIFICATE', cert.rawData),
    keyPem: toPem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey)),
  };
}
