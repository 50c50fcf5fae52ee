// The shared test cluster started by test/run.ts, and a proxy in front of it.
import { DEFAULT_BACKEND_OPTIONS } from '../../proxy/options.js';
import { pino } from 'pino';
import { TestCluster } from '../cluster/cluster.js';
import { runProxy, type RunningProxy } from '../../proxy/main.js';
import type { ProxyOptions } from '../../proxy/options.js';
import { DEFAULT_FLOW_CONTROL } from '../../flowcontrol/defaults.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';

export const CLUSTER_ENV = 'KCP_TEST_CLUSTER_DIR';

let shared: TestCluster | undefined;

/** The cluster started by `npm test` (or `npm run cluster -- up` with KCP_TEST_CLUSTER_DIR set). */
export function sharedCluster(): TestCluster {
  const dir = process.env[CLUSTER_ENV];
  if (!dir) throw new Error(`${CLUSTER_ENV} is not set: run integration tests through \`npm test\``);
  shared ??= TestCluster.load(dir);
  return shared;
}

export interface TestProxy {
  readonly proxy: RunningProxy;
  readonly url: string;
  readonly metricsUrl: string;
  stop(): Promise<void>;
}

/**
 * A proxy on loopback in front of `cluster`, serving the cluster-CA-signed test certificate,
 * configured as users run it: the cache on with its default resources, flow control on. A test
 * about forwarding alone turns the cache off with `{ cache: undefined }`.
 */
export async function startTestProxy(cluster: TestCluster, overrides: Partial<ProxyOptions> = {}): Promise<TestProxy> {
  const options: ProxyOptions = {
    kubeconfig: cluster.info.users.admin.kubeconfig,
    context: undefined,
    upstreams: [],
    listen: { host: '127.0.0.1', port: 0 },
    tlsCertFile: cluster.info.servingCertFile,
    tlsPrivateKeyFile: cluster.info.servingKeyFile,
    clientCaFile: cluster.info.caFile,
    writeKubeconfig: undefined,
    metricsListen: { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    shutdownGracePeriodSeconds: 5,
    cache: cacheConfigFrom({}),
    flowControl: DEFAULT_FLOW_CONTROL,
    flowControlSource: undefined,
    backends: DEFAULT_BACKEND_OPTIONS,
    ...overrides,
  };
  const log = pino({ level: process.env['KCP_TEST_LOG_LEVEL'] ?? options.logLevel });
  const proxy = await runProxy(options, log);
  return {
    proxy,
    url: proxy.url,
    metricsUrl: `${proxy.health.scheme}://127.0.0.1:${proxy.health.port}`,
    stop: () => proxy.shutdown(),
  };
}

/** Waits until the proxy's /readyz answers 200: every cached resource synced. */
export async function proxyReady(p: TestProxy, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ;) {
    const r = await fetch(`${p.metricsUrl}/readyz?verbose`);
    const text = await r.text();
    if (r.status === 200) return;
    if (Date.now() > deadline) throw new Error(`the proxy did not become ready in ${timeoutMs / 1000} s: ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
