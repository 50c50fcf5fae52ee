// The TLS material a port serves with: the certificate and key, and the CA that verifies client
// certificates, re-read from disk when the files change (certificate rotation: cert-manager,
// kubelet-style renewals, a Secret volume updated in place). A server applies a change with
// setSecureContext(): new handshakes get the new material, established connections and their
// streams continue on the old one. A pair that does not load (a half-written key, a certificate
// without its new key yet) is logged and counted, and the material in use is kept.
//
// Changes are noticed by watching the files' directories (a Secret volume swaps a `..data` symlink
// there, atomically: watching the file itself would follow the old inode) and by polling every
// minute as kube-apiserver's dynamiccertificates controller does, for what events miss. A check
// compares content hashes, so repeated events and touches reload nothing.
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ConfigError } from './errors.js';
import type { PortTls, TlsPolicy } from './tls-options.js';

export interface TlsMaterial {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** CA bundle for client certificates; undefined: none are asked for. */
  readonly ca: Buffer | undefined;
}

export interface ServingTlsOptions {
  /** The files behind the material; an undefined pair (a generated certificate) is not reloaded. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly caFile?: string | undefined;
  readonly initial: TlsMaterial;
  readonly policy: TlsPolicy;
  readonly log: Logger;
  readonly registry: Registry;
  /** Poll period (default 60 s). */
  readonly pollMs?: number;
  /** Watch the files' directories too (default true). */
  readonly watch?: boolean;
}

export type Material = 'serving_certificate' | 'client_ca';

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The serving certificate and key must load, each and as a pair (errors name the flag to blame). */
export function checkServingPair(cert: string | Buffer, key: string | Buffer): void {
  const attempts: Array<[string, () => void]> = [
    ['--tls-cert-file', () => createSecureContext({ cert })],
    ['--tls-private-key-file', () => createSecureContext({ key })],
    ['--tls-cert-file and --tls-private-key-file', () => createSecureContext({ cert, key })],
  ];
  for (const [flag, attempt] of attempts) {
    try {
      attempt();
    } catch (err) {
      throw new ConfigError(`${flag}: ${message(err)}`);
    }
  }
}

/** A CA bundle must hold at least one certificate, all parseable: Node ignores what is not one. */
export function checkCaBundle(flag: string, file: string, pem: Buffer): void {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${flag}: no PEM certificate in ${file}`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw new ConfigError(`${flag}: ${file}: ${message(err)}`);
    }
  }
}

/** notAfter of the first (leaf) certificate of a PEM chain, in seconds since the epoch. */
export function notAfterSeconds(certPem: string | Buffer): number {
  return Date.parse(new X509Certificate(certPem).validTo) / 1000;
}

const hash = (...parts: Buffer[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(String(p.length)).update(':').update(p);
  return h.digest('hex');
};

export class ServingTls {
  readonly #o: ServingTlsOptions;
  #current: TlsMaterial;
  /** notAfter of #current's certificate (parsed once per certificate, not per scrape). */
  #notAfter: number;
  readonly #listeners: Array<(m: TlsMaterial) => void> = [];
  /** Per material, the content hash in use and the last one refused (not retried until it changes). */
  readonly #seen = new Map<Material, { loaded: string; refused?: string | undefined }>();
  readonly #reloads: Counter<'material' | 'result'>;
  readonly #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;

  constructor(o: ServingTlsOptions) {
    this.#o = o;
    this.#current = o.initial;
    this.#notAfter = notAfterSeconds(o.initial.cert);
    this.#reloads = new Counter({
      name: 'kube_cache_proxy_tls_reloads_total',
      help: 'Reloads of changed TLS files of the main port, by material (serving_certificate: --tls-cert-file and --tls-private-key-file; client_ca: --client-ca-file) and result (success, failure: the material in use is kept)',
      labelNames: ['material', 'result'],
      registers: [o.registry],
    });
    const self = this;
    new Gauge({
      name: 'kube_cache_proxy_serving_certificate_expiration_timestamp_seconds',
      help: 'notAfter of the serving certificate in use on the main port, in seconds since the epoch',
      registers: [o.registry],
      collect() {
        this.set(self.#notAfter);
      },
    });
    if (o.certFile !== undefined && o.keyFile !== undefined) {
      this.#seen.set('serving_certificate', { loaded: this.#servingHash(o.initial.cert, o.initial.key) });
    }
    if (o.caFile !== undefined && o.initial.ca !== undefined) this.#seen.set('client_ca', { loaded: hash(o.initial.ca) });
  }

  /** The material in use. */
  get current(): TlsMaterial {
    return this.#current;
  }

  /** The material in use under the policy: what a port serves with (tls-options.ts portTlsOptions). */
  portTls(): PortTls {
    const m = this.#current;
    return { cert: m.cert, key: m.key, clientCa: m.ca, ...this.#o.policy };
  }

  /** Calls `listener` with the new material after each successful reload; returns its removal. */
  onChange(listener: (m: TlsMaterial) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** Starts watching and polling the files (nothing to do without files). */
  start(): void {
    const files = [this.#o.certFile, this.#o.keyFile, this.#o.caFile].filter((f): f is string => f !== undefined);
    if (files.length === 0) return;
    this.#timer = setInterval(() => this.check(), this.#o.pollMs ?? 60_000);
    this.#timer.unref();
    if (this.#o.watch === false) return;
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#soon());
        w.on('error', (err) => this.#o.log.warn({ dir, err: message(err) }, 'watching TLS files failed; polling only'));
        this.#watchers.push(w);
      } catch (err) {
        this.#o.log.warn({ dir, err: message(err) }, 'watching TLS files failed; polling only');
      }
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#debounce);
    for (const w of this.#watchers.splice(0)) w.close();
  }

  /** Re-reads the files now; listeners hear of a change. Returns whether anything new was loaded. */
  check(): boolean {
    let next = this.#current;
    const o = this.#o;
    if (o.certFile !== undefined && o.keyFile !== undefined) {
      const certFile = o.certFile;
      const keyFile = o.keyFile;
      const pair = this.#reload('serving_certificate', () => {
        const cert = readFileSync(certFile);
        const key = readFileSync(keyFile);
        return { digest: this.#servingHash(cert, key), load: () => (checkServingPair(cert, key), { cert, key }) };
      });
      if (pair) next = { ...next, ...pair };
    }
    if (o.caFile !== undefined) {
      const caFile = o.caFile;
      const ca = this.#reload('client_ca', () => {
        const pem = readFileSync(caFile);
        return { digest: hash(pem), load: () => (checkCaBundle('--client-ca-file', caFile, pem), createSecureContext({ ca: pem }), pem) };
      });
      if (ca) next = { ...next, ca };
    }
    if (next === this.#current) return false;
    if (next.cert !== this.#current.cert) this.#notAfter = notAfterSeconds(next.cert);
    this.#current = next;
    for (const l of [...this.#listeners]) {
      try {
        l(next);
      } catch (err) {
        o.log.error({ err: message(err) }, 'applying reloaded TLS material failed');
      }
    }
    return true;
  }

  #servingHash(cert: string | Buffer, key: string | Buffer): string {
    return hash(Buffer.from(cert), Buffer.from(key));
  }

  /** One material: undefined when unchanged, refused or unreadable (logged and counted once per content). */
  #reload<T>(material: Material, read: () => { digest: string; load: () => T }): T | undefined {
    const seen = this.#seen.get(material) ?? { loaded: '' };
    this.#seen.set(material, seen);
    let digest: string | undefined;
    try {
      const r = read();
      digest = r.digest;
      if (digest === seen.loaded || digest === seen.refused) return undefined;
      const value = r.load();
      seen.loaded = digest;
      seen.refused = undefined;
      this.#reloads.inc({ material, result: 'success' });
      this.#o.log.info({ material }, 'TLS material reloaded');
      return value;
    } catch (err) {
      // Refused content is not retried until it changes; an unreadable file (mid-swap, removed)
      // is counted once per error text.
      const key = digest ?? `read:${message(err)}`;
      if (key === seen.refused) return undefined;
      seen.refused = key;
      this.#reloads.inc({ material, result: 'failure' });
      this.#o.log.warn({ material, err: message(err) }, 'reloading TLS material failed; keeping the one in use');
      return undefined;
    }
  }

  /** A burst of events (a writer's several files, a symlink swap) makes one check. */
  #soon(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.check(), 200);
    this.#debounce.unref();
  }
}
