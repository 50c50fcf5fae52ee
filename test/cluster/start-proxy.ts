// npm start: runs kube-cache-proxy on https://127.0.0.1:8443 in front of the current kubeconfig
// context or, when there is none, in front of a local test cluster started for the purpose
// (test/cluster, built from Go modules on first use), and prints how to point kubectl at it.
import { DEFAULT_BACKEND_OPTIONS } from '../../proxy/options.js';
import { DEFAULT_FLOW_CONTROL } from '../../flowcontrol/defaults.js';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { runProxy } from '../../proxy/main.js';
import type { ProxyOptions } from '../../proxy/options.js';
import { TestCluster } from './cluster.js';
import { DEFAULT_CACHE_CONFIG } from '../../cache/config.js';
import { repoRoot } from './paths.js';

function currentContextUsable(): boolean {
  const files = (process.env['KUBECONFIG'] ?? join(homedir(), '.kube', 'config')).split(':').filter((f) => f && existsSync(f));
  if (files.length === 0) return false;
  try {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    return kc.getCurrentContext() !== '' && kc.getCurrentCluster() !== null;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const state = join(repoRoot(), '.cache');
  mkdirSync(state, { recursive: true });
  const log = pino({ level: process.env['LOG_LEVEL'] ?? 'info' });
  let cluster: TestCluster | undefined;
  const base: ProxyOptions = {
    kubeconfig: undefined, context: undefined, upstreams: [],
    listen: { host: '127.0.0.1', port: Number(process.env['PORT'] ?? 8443) },
    tlsCertFile: undefined, tlsPrivateKeyFile: undefined, clientCaFile: undefined,
    writeKubeconfig: join(state, 'proxy.kubeconfig'),
    metricsListen: { host: '127.0.0.1', port: Number(process.env['METRICS_PORT'] ?? 9443) },
    logLevel: 'info', shutdownGracePeriodSeconds: 10,
    cache: DEFAULT_CACHE_CONFIG,
    flowControl: DEFAULT_FLOW_CONTROL, flowControlSource: undefined,
    backends: DEFAULT_BACKEND_OPTIONS,
  };
  let options = base;
  if (currentContextUsable()) {
    log.info('proxying the current kubeconfig context');
  } else {
    log.info('no kubeconfig context: starting a local cluster (test/cluster; the first build takes several minutes)');
    cluster = await TestCluster.up({ dir: join(state, 'cluster', 'local'), apiservers: 1, log: (m) => log.info(m) });
    options = { ...base, kubeconfig: cluster.info.users.admin.kubeconfig, clientCaFile: cluster.info.caFile };
  }
  let proxy;
  try {
    proxy = await runProxy(options, log);
  } catch (err) {
    await cluster?.down();
    throw err;
  }
  process.stdout.write(`\nkube-cache-proxy is serving on ${proxy.url} (metrics: http://127.0.0.1:${proxy.health.port}/metrics)\n` +
    `Point kubectl at it:\n  export KUBECONFIG=${options.writeKubeconfig}\n  kubectl get namespaces\n` +
    (cluster ? `The local cluster's other users: ${cluster.info.dir}/{viewer,nobody,node-1}.kubeconfig (use --server ${proxy.url})\n` : '') +
    'Ctrl-C stops it.\n\n');
  const stop = () => {
    proxy.shutdown()
      .then(() => cluster?.down())
      .then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`npm start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
