// The proxy's view of its cluster: which apiservers, how to trust them, and its own credentials,
// read from a kubeconfig or the in-cluster service account (kubeconfig.ts, kube-credentials.ts).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { BackendSet, type BackendUrl, type ProxyCredentials } from './upstream.js';
import { parseBackendUrl } from './backend.js';
import type { BackendMetrics } from './backend-metrics.js';
import { jitteredMs, type BackendOptions } from './options.js';
import { ConfigError } from './errors.js';
import { loadKubeConfig, type KubeConfig } from './kubeconfig.js';
import { KubeCredentialSource } from './kube-credentials.js';

export { loadKubeConfig, type KubeConfig };

/** Keeps the proxy's own token current: token files re-read, exec plugins re-run near expiry. */
class KubeConfigCredentials implements ProxyCredentials {
  readonly #source: KubeCredentialSource;
  #authorization: string | undefined;
  readonly #certIdentity: CertIdentity | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(source: KubeCredentialSource, authorization: string | undefined, certIdentity: CertIdentity | undefined) {
    this.#source = source;
    this.#authorization = authorization;
    this.#certIdentity = certIdentity;
  }

  authorization(): string | undefined {
    return this.#authorization;
  }

  certificateIdentity(): CertIdentity | undefined {
    return this.#authorization === undefined ? this.#certIdentity : undefined;
  }

  startRefresh(intervalMs: number, onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => {
      this.#source.refresh().then((c) => { this.#authorization = c.authorization; }, onError);
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

interface CertIdentity {
  readonly user: string;
  readonly groups: readonly string[];
}

/** The user (CN) and groups (O) kube-apiserver's x509 authenticator reads from a client certificate. */
function certIdentity(cert: Pem): CertIdentity | undefined {
  if (cert === undefined) return undefined;
  try {
    const subject = new X509Certificate(cert).toLegacyObject().subject;
    const cn: unknown = subject.CN;
    const o: unknown = subject.O;
    const user = Array.isArray(cn) ? cn[0] : cn;
    if (typeof user !== 'string' || user === '') return undefined;
    const groups = (Array.isArray(o) ? o : o === undefined ? [] : [o]).filter((g): g is string => typeof g === 'string');
    return { user, groups };
  } catch {
    return undefined;
  }
}

type Pem = string | Buffer | undefined;

export interface Upstreams {
  readonly set: BackendSet;
  stop(): Promise<void>;
}

/** The --upstream URLs (or the kubeconfig's server) as backends; a bad one is a ConfigError. */
export function backendUrls(kc: KubeConfig, urls: readonly string[]): BackendUrl[] {
  return (urls.length > 0 ? urls : [kc.cluster.server]).map((s) => {
    const u = parseBackendUrl(s);
    if (typeof u === 'string') throw new ConfigError(`--upstream: ${u}`);
    return u;
  });
}

function caBundle(kc: KubeConfig): Buffer | undefined {
  const c = kc.cluster;
  if (c.caData) return c.caData;
  if (!c.caFile) return undefined;
  try {
    return readFileSync(c.caFile);
  } catch (err) {
    throw new ConfigError(`--kubeconfig: certificate-authority ${c.caFile}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Builds the backend set: the given URLs, or the kubeconfig's server, with its TLS and credentials. */
export async function buildUpstreams(kc: KubeConfig, urls: readonly string[], o: {
  readonly backends: BackendOptions;
  readonly log: Logger;
  readonly metrics: BackendMetrics;
  readonly onRefreshError: (err: unknown) => void;
}): Promise<Upstreams> {
  const source = new KubeCredentialSource(kc.user, kc.cluster);
  let first;
  try {
    first = await source.refresh();
  } catch (err) {
    throw new ConfigError(`--kubeconfig: user of context "${kc.contextName}": ${err instanceof Error ? err.message : String(err)}`);
  }
  const ca = caBundle(kc);
  const backends = backendUrls(kc, urls);
  const creds = new KubeConfigCredentials(source, first.authorization, certIdentity(first.cert));
  creds.startRefresh(60_000, o.onRefreshError);
  const set = new BackendSet(backends, {
    balance: o.backends.balance,
    healthIntervalMs: o.backends.healthIntervalSeconds * 1000,
    // The jitter is drawn per connection (backend.ts); this is the base age.
    connectionAge: { maxAgeMs: jitteredMs(o.backends.connectionMaxAgeSeconds, 0), jitter: o.backends.maxAgeJitter },
    tls: {
      ca: kc.cluster.insecureSkipTlsVerify ? undefined : ca,
      // A plugin's client certificate is the one it gave at start: connections are not re-keyed.
      cert: first.cert,
      key: first.key,
      servername: kc.cluster.tlsServerName,
      rejectUnauthorized: !kc.cluster.insecureSkipTlsVerify,
    },
    credentials: creds,
    log: o.log,
    metrics: o.metrics,
  });
  set.start();
  return {
    set,
    async stop() {
      creds.stop();
      await set.close();
    },
  };
}
