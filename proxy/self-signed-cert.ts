// Dependency-free generator of a self-signed TLS server certificate
// (ECDSA P-256 / SHA-256), used when no --tls-cert-file is configured.
// Node's crypto can parse but not create X.509 certificates, so the DER is
// assembled here by hand.
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
import {
  bitString,
  boolean,
  contextTag,
  ia5Bytes,
  integer,
  octetString,
  oid,
  readElement,
  sequence,
  set,
  time,
  utf8String,
} from './der.js';

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

const OID = {
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

// keyUsage bit number (RFC 5280 §4.2.1.3).
const KU_DIGITAL_SIGNATURE = 0;

/** Parses an IPv4 or IPv6 literal into its 4- or 16-byte network form. */
export function ipToBytes(ip: string): Buffer {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!net.isIPv6(ip) || ip.includes('%')) throw new RangeError(`invalid IP address: ${ip}`);
  const groups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const v4 = ipToBytes(g);
        out.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const halves = ip.split('::');
  const head = groups(halves[0] ?? '');
  const tail = groups(halves[1] ?? '');
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  if (all.length !== 8) throw new RangeError(`invalid IP address: ${ip}`);
  const buf = Buffer.alloc(16);
  all.forEach((g, i) => buf.writeUInt16BE(g, i * 2));
  return buf;
}

/** Encodes a NamedBitList BIT STRING (DER: trailing zero bits removed). */
function namedBits(bits: number[]): Buffer {
  const max = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(max / 8) + 1);
  for (const b of bits) bytes.writeUInt8(bytes.readUInt8(b >> 3) | (0x80 >> (b & 7)), b >> 3);
  const unused = 7 - (max & 7);
  return Buffer.concat([Buffer.from([0x03, bytes.length + 1, unused]), bytes]);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

/** Returns the subjectPublicKey BIT STRING contents (without the unused-bits byte) of an SPKI. */
function spkiPublicKeyBits(spki: Buffer): Buffer {
  const outer = readElement(spki);
  if (outer.tag !== 0x30) throw new Error('SPKI is not a SEQUENCE');
  const alg = readElement(outer.value);
  const key = readElement(outer.value, alg.end);
  if (key.tag !== 0x03 || key.value.length < 1) throw new Error('SPKI has no BIT STRING');
  return key.value.subarray(1);
}

function randomSerial(): Buffer {
  const serial = crypto.randomBytes(16);
  // Positive (high bit clear) and exactly 16 bytes (first byte non-zero).
  serial.writeUInt8((serial.readUInt8(0) & 0x7f) || 0x01, 0);
  return serial;
}

function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${b64.join('\n')}\n-----END ${label}-----\n`;
}

/** Generates an ECDSA P-256 key and a self-signed X.509 v3 certificate for it. */
export function generateSelfSignedCert(opts: SelfSignedCertOptions): SelfSignedCert {
  if (!(opts.validDays > 0)) throw new RangeError('validDays must be positive');
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const keyId = crypto.createHash('sha1').update(spkiPublicKeyBits(spki)).digest();

  const algId = sequence(oid(OID.ecdsaWithSHA256));
  const name = sequence(set(sequence(oid(OID.commonName), utf8String(opts.commonName))));

  const now = Date.now();
  const notBefore = new Date(Math.floor((now - 3600_000) / 1000) * 1000);
  const notAfter = new Date(Math.floor((now + opts.validDays * 86400_000) / 1000) * 1000);

  const sans: Buffer[] = [
    ...opts.dnsNames.map((d) => contextTag(2, false, ia5Bytes(d))),
    ...opts.ipAddresses.map((ip) => contextTag(7, false, ipToBytes(ip))),
  ];

  const extensions: Buffer[] = [
    // basicConstraints cA FALSE: the DEFAULT value is omitted in DER, leaving an empty SEQUENCE.
    extension(OID.basicConstraints, true, sequence()),
    extension(OID.keyUsage, true, namedBits([KU_DIGITAL_SIGNATURE])),
    extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
    extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
    extension(OID.authorityKeyIdentifier, false, sequence(contextTag(0, false, keyId))),
  ];
  // SAN must not be empty if present; with a non-empty subject it may be omitted.
  if (sans.length > 0) extensions.push(extension(OID.subjectAltName, false, sequence(...sans)));

  const tbs = sequence(
    contextTag(0, true, integer(2)), // version v3
    integer(randomSerial()),
    algId,
    name, // issuer
    sequence(time(notBefore), time(notAfter)),
    name, // subject
    spki,
    contextTag(3, true, sequence(...extensions)),
  );
  const signature = crypto.sign('sha256', tbs, privateKey); // DER Ecdsa-Sig-Value
  const cert = sequence(tbs, algId, bitString(signature));

  return {
    certPem: toPem('CERTIFICATE', cert),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
