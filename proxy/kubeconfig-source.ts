// The proxy's view of its cluster: which apiservers, how to trust them, and its own credentials,
// read from a kubeconfig (or the in-cluster service account) through @kubernetes/client-node.
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { BackendSet, type BackendUrl, type ProxyCredentials } from './upstream.js';
import { parseBackendUrl } from './backend.js';
import type { BackendMetrics } from './backend-metrics.js';
import { jitteredMs, type BackendOptions } from './options.js';
import { ConfigError } from './errors.js';

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function loadKubeConfig(opts: { kubeconfig?: string | undefined; context?: string | undefined }): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else if (process.env['KUBERNETES_SERVICE_HOST'] && existsSync(IN_CLUSTER_TOKEN) && !process.env['KUBECONFIG']) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new ConfigError(`--kubeconfig: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) throw new ConfigError(`--context: context "${opts.context}" not found in the kubeconfig`);
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentCluster()) throw new ConfigError('--kubeconfig: the current context has no cluster');
  return kc;
}

/** Refreshes the proxy's own token from the kubeconfig (exec plugins, rotated token files). */
class KubeConfigCredentials implements ProxyCredentials {
  readonly #kc: KubeConfig;
  #authorization: string | undefined;
  readonly #certIdentity: CertIdentity | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(kc: KubeConfig, authorization: string | undefined, certIdentity: CertIdentity | undefined) {
    this.#kc = kc;
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
      applied(this.#kc).then((o) => { this.#authorization = o.authorization; }, onError);
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

interface Applied {
  readonly options: RequestOptions;
  readonly authorization: string | undefined;
}

async function applied(kc: KubeConfig): Promise<Applied> {
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  const h = options.headers;
  let authorization: string | undefined;
  if (h && !isHeaderList(h)) {
    const v = h['Authorization'] ?? h['authorization'];
    if (typeof v === 'string') authorization = v;
  }
  if (!authorization && typeof options.auth === 'string') authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
  return { options, authorization };
}

function isHeaderList(h: unknown): h is readonly string[] {
  return Array.isArray(h);
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
function pem(v: unknown): Pem {
  if (typeof v === 'string' || Buffer.isBuffer(v)) return v;
  return undefined;
}

export interface Upstreams {
  readonly set: BackendSet;
  stop(): Promise<void>;
}

/** The --upstream URLs (or the kubeconfig's server) as backends; a bad one is a ConfigError. */
export function backendUrls(kc: KubeConfig, urls: readonly string[]): BackendUrl[] {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('--kubeconfig: the current context has no cluster');
  return (urls.length > 0 ? urls : [cluster.server]).map((s) => {
    const u = parseBackendUrl(s);
    if (typeof u === 'string') throw new ConfigError(`--upstream: ${u}`);
    return u;
  });
}

/** Builds the backend set: the given URLs, or the kubeconfig's server, with its TLS and credentials. */
export async function buildUpstreams(kc: KubeConfig, urls: readonly string[], o: {
  readonly backends: BackendOptions;
  readonly log: Logger;
  readonly metrics: BackendMetrics;
  readonly onRefreshError: (err: unknown) => void;
}): Promise<Upstreams> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('--kubeconfig: the current context has no cluster');
  const { options, authorization } = await applied(kc);
  const backends = backendUrls(kc, urls);
  const creds = new KubeConfigCredentials(kc, authorization, certIdentity(pem(options.cert)));
  creds.startRefresh(60_000, o.onRefreshError);
  const set = new BackendSet(backends, {
    balance: o.backends.balance,
    healthIntervalMs: o.backends.healthIntervalSeconds * 1000,
    // The jitter is drawn per connection (backend.ts); this is the base age.
    connectionAge: { maxAgeMs: jitteredMs(o.backends.connectionMaxAgeSeconds, 0), jitter: o.backends.maxAgeJitter },
    tls: {
      ca: pem(options.ca),
      cert: pem(options.cert),
      key: pem(options.key),
      servername: cluster.tlsServerName,
      rejectUnauthorized: !cluster.skipTLSVerify,
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
