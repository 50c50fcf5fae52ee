// Composition root: options in, a running proxy out.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { ConfigError } from './errors.js';
import { buildUpstreams, loadKubeConfig } from './kubeconfig-source.js';
import { jitteredMs, type ProxyOptions } from './options.js';
import { createBackendMetrics } from './backend-metrics.js';
import { startUpstreamDiscovery } from './upstream-discovery.js';
import { startProxyServer, type ProxyServer } from './server.js';
import { startHealthServer, type HealthServer } from './health-server.js';
import { MetricsAuth } from './metrics-auth.js';
import { reviewPoster } from './local-review.js';
import { generateSelfSignedCert } from './self-signed-cert.js';
import { checkCaBundle, checkServingPair, ServingTls } from './serving-tls.js';
import { DEFAULT_TLS_MIN_VERSION, tlsPolicy } from './tls-options.js';
import { writeProxyKubeconfig } from './write-kubeconfig.js';
import type { ReadinessCheck } from './health-server.js';
import { cacheUpstream } from './cache-upstream.js';
import type { BackendSet } from './upstream.js';
import { ResourceCache } from '../cache/resource-cache.js';
import { createCacheMetrics } from '../cache/metrics.js';
import { FlowControl } from '../flowcontrol/flow-control.js';
import { createFlowControlMetrics } from '../flowcontrol/metrics.js';
import type { Clock } from '../flowcontrol/clock.js';
import { watchFlowControlConfig, type FlowControlReloader } from './flow-control-source.js';

export interface RunningProxy {
  readonly server: ProxyServer;
  readonly health: HealthServer;
  /** The URL clients use (loopback when listening on all interfaces). */
  readonly url: string;
  readonly caPem: string;
  readonly cache: ResourceCache | undefined;
  readonly flowControl: FlowControl;
  /** The apiservers behind the proxy. */
  readonly backends: BackendSet;
  /** The main port's certificate, key and client CA, reloaded from their files (reusable by another port). */
  readonly servingTls: ServingTls;
  /** Re-reads the flow-control file (SIGHUP); returns the error when the new configuration is refused. */
  reloadFlowControl(): string | undefined;
  shutdown(): Promise<void>;
}

/** The process clock for flow control: monotonic milliseconds, and Node timers. */
const processClock: Clock = {
  now: () => performance.now(),
  schedule(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

function readFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${flag}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function clientHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIP(host) === 6 ? `[${host}]` : host;
}

export async function runProxy(o: ProxyOptions, log: Logger): Promise<RunningProxy> {
  const kc = loadKubeConfig(o);
  let cert: string | Buffer;
  let key: string | Buffer;
  if (o.tlsCertFile && o.tlsPrivateKeyFile) {
    cert = readFile('--tls-cert-file', o.tlsCertFile);
    key = readFile('--tls-private-key-file', o.tlsPrivateKeyFile);
    checkServingPair(cert, key);
  } else {
    const ips = ['127.0.0.1', '::1', ...(isIP(o.listen.host) && !['0.0.0.0', '::'].includes(o.listen.host) ? [o.listen.host] : [])];
    // The listen host, when a name, is the URL clients get (and --write-kubeconfig writes): cover it too.
    const names = ['localhost', hostname(), ...(o.listen.host !== '' && isIP(o.listen.host) === 0 ? [o.listen.host] : [])];
    const dnsNames = [...new Set(names.map((n) => n.toLowerCase()))];
    const generated = await generateSelfSignedCert({ commonName: 'kube-cache-proxy', dnsNames, ipAddresses: ips, validDays: 365 });
    cert = generated.certPem;
    key = generated.keyPem;
    log.info('serving with a generated self-signed certificate (pass --tls-cert-file/--tls-private-key-file in production)');
  }
  const clientCa = o.clientCaFile ? readFile('--client-ca-file', o.clientCaFile) : undefined;
  if (o.clientCaFile && clientCa) checkCaBundle('--client-ca-file', o.clientCaFile, clientCa);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const policy = tlsPolicy(o.tlsMinVersion ?? DEFAULT_TLS_MIN_VERSION, o.tlsCipherSuites ?? []);
  const servingTls = new ServingTls({
    certFile: o.tlsCertFile, keyFile: o.tlsPrivateKeyFile, caFile: o.clientCaFile, initial: { cert, key, ca: clientCa }, policy, log, registry,
  });
  let healthyHosts: () => readonly string[] = () => [];
  const backendMetrics = createBackendMetrics(registry, () => healthyHosts());
  const upstreams = await buildUpstreams(kc, o.upstreams, {
    backends: o.backends, log, metrics: backendMetrics,
    onRefreshError: (err) => log.warn({ err: String(err) }, 'refreshing the proxy credentials failed'),
  });
  const set = upstreams.set;
  healthyHosts = () => set.backends.filter((b) => b.health.healthy).map((b) => b.origin.host);
  // Undone in reverse order when a later step fails, and on shutdown.
  const stops: Array<() => Promise<void>> = [() => upstreams.stop()];
  const undo = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  const step = async <T>(flag: string, f: () => Promise<T> | T): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      await undo();
      throw new ConfigError(`${flag}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  let cache: ResourceCache | undefined;
  if (o.cache) {
    cache = new ResourceCache({ upstream: cacheUpstream(upstreams.set), config: o.cache, log, metrics: createCacheMetrics(registry) });
    cache.start();
    const c = cache;
    stops.push(() => c.stop());
  }
  if (o.backends.discovery) {
    const d = startUpstreamDiscovery({
      upstream: cacheUpstream(set),
      log,
      onChange: (urls) => {
        log.info({ upstreams: urls.map((u) => u.host) }, 'apiservers discovered');
        set.update(urls.map((origin) => ({ origin, weight: 1 })));
      },
    });
    stops.push(() => d.stop());
  }
  let flowControl: FlowControl | undefined;
  const flowControlMetrics = createFlowControlMetrics(registry, () => flowControl?.stats() ?? []);
  flowControl = new FlowControl(o.flowControl, processClock, flowControlMetrics);
  const fc = flowControl;
  let reloader: FlowControlReloader | undefined;
  if (o.flowControlSource) {
    const r = watchFlowControlConfig(o.flowControlSource, fc, log);
    reloader = r;
    stops.push(async () => r.stop());
  }
  const server = await step('--listen', () => startProxyServer({
    host: o.listen.host, port: o.listen.port, tls: servingTls.portTls(), upstreams: set, log, registry, cache, flowControl: fc,
    clientConnections: { maxAgeSeconds: o.backends.clientConnectionMaxAgeSeconds, jitter: o.backends.maxAgeJitter },
    connectionLimits: o.connectionLimits,
    reshuffle: {
      forwardedWatchMaxAgeMs: () => jitteredMs(o.backends.forwardedWatchMaxAgeSeconds, o.backends.maxAgeJitter),
      recycled: (reason) => backendMetrics.recycled(reason),
    },
  }));
  stops.push(() => server.shutdown(o.shutdownGracePeriodSeconds * 1000));
  servingTls.onChange(() => server.setTls(servingTls.portTls()));
  servingTls.start();
  stops.push(async () => servingTls.stop());
  const readiness: ReadinessCheck[] = [() => [{ name: 'shutdown', failed: server.draining ? 'shutting down' : undefined }]];
  if (cache) {
    const c = cache;
    // One line per cached resource: not synced or stale fails readiness, not cached is only noted.
    readiness.push(() => c.readiness().map((r) => ({ name: `cache:${r.name}`, failed: r.failed, note: r.note })));
  }
  // --metrics-mode tls and tls-authn: the main port's certificate (and client CA); tls-authn: /metrics
  // authorized by the apiserver, on the proxy's own credentials.
  const metricsTls = o.metricsMode === 'tls' || o.metricsMode === 'tls-authn' ? servingTls.portTls() : undefined;
  const metricsAuth = o.metricsMode === 'tls-authn' ? new MetricsAuth({
    post: reviewPoster(set), clientCerts: clientCa !== undefined,
    onReviewError: (why) => log.warn({ why }, 'a review for /metrics on the metrics port failed: the scrape was refused'),
  }) : undefined;
  const health = await step('--metrics-listen', () => startHealthServer({ host: o.metricsListen.host, port: o.metricsListen.port, registry, readiness, tls: metricsTls, auth: metricsAuth }));
  stops.push(() => health.close());
  // A reloaded serving certificate or client CA serves the metrics port's new handshakes too.
  if (metricsTls) servingTls.onChange(() => health.setTls(servingTls.portTls()));
  const url = `https://${clientHost(o.listen.host)}:${server.port}`;
  const caPem = Buffer.from(cert).toString('utf8');
  const kubeconfigOut = o.writeKubeconfig;
  if (kubeconfigOut) await step('--write-kubeconfig', () => writeProxyKubeconfig(kubeconfigOut, kc, url, caPem));
  log.info({ url, metricsPort: health.port, metricsScheme: health.scheme, upstreams: set.backends.map((b) => b.key) }, 'kube-cache-proxy serving');
  let stopping: Promise<void> | undefined;
  return {
    server, health, url, caPem, cache, flowControl: fc, backends: set, servingTls,
    reloadFlowControl: () => reloader?.reload(),
    shutdown() {
      // Drain first, while /readyz still answers (503, "shutting down"); then everything else.
      stopping ??= server.shutdown(o.shutdownGracePeriodSeconds * 1000).then(undo);
      return stopping;
    },
  };
}
