// Part (A) of the several-apiservers benchmark: one run of steady client traffic through a fresh
// proxy in front of every apiserver while each apiserver in turn is stopped with SIGTERM, started
// again and waited for until ready, with a pause after each; sampled every second (see
// backends-sampler.ts).
import { join } from 'node:path';
import type { TestCluster } from '../test/cluster/cluster.js';
import { Client, writeWithRetry } from './client.js';
import { IpcChild } from './ipc-child.js';
import type { BackendsOptions } from './backends-args.js';
import type { LoadReport, LoadRequest } from './backends-load.js';
import { BackendsSampler, LOAD_RESOURCE, type BackendsSample } from './backends-sampler.js';
import { ProxyProcess } from './proxy-process.js';
import { sleep } from './stats.js';

export const LOAD_NAMESPACE = 'bench-backends';

export type ReshuffleSetting = 'on' | 'off';

export interface RestartEvent {
  readonly apiserver: number;
  /** Wall-clock ms: SIGTERM sent, the process gone, /readyz 200 again. */
  readonly stopAt: number;
  readonly stoppedAt: number;
  readonly readyAt: number;
}

export interface RestartRun {
  readonly reshuffle: ReshuffleSetting;
  readonly proxyArgs: readonly string[];
  readonly proxyReadySeconds: number;
  /** The clients' forwarded watches (each holds at most one). */
  readonly watchers: number;
  /** Wall-clock ms: load started (after its warm-up of a few seconds) and stopped. */
  readonly from: number;
  readonly to: number;
  readonly restarts: readonly RestartEvent[];
  readonly samples: readonly BackendsSample[];
  readonly failedProxyScrapes: number;
  readonly load: LoadReport;
}

export interface RestartEnv {
  readonly o: BackendsOptions;
  readonly dir: string;
  readonly cluster: TestCluster;
  readonly ca: string;
  readonly token: string;
  readonly log: (msg: string) => void;
}

const wallClock = (): number => performance.timeOrigin + performance.now();

/** The namespace, podtemplates and configmaps the load reads (created once, directly on apiserver 0). */
export async function createLoadObjects(env: RestartEnv): Promise<void> {
  const a = env.cluster.info.apiservers[0];
  if (!a) throw new Error('no apiserver');
  const admin = new Client('admin', a.url, { ca: Buffer.from(env.ca), token: env.token, connections: 8 });
  try {
    const ns = LOAD_NAMESPACE;
    await writeWithRetry(admin, 'POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }));
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < env.o.objects; i++) {
      jobs.push(writeWithRetry(admin, 'POST', `/api/v1/namespaces/${ns}/${LOAD_RESOURCE}`, JSON.stringify({
        apiVersion: 'v1', kind: 'PodTemplate', metadata: { name: `pt-${i}` },
        template: { metadata: { labels: { app: 'bench' } }, spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } },
      })));
      jobs.push(writeWithRetry(admin, 'POST', `/api/v1/namespaces/${ns}/configmaps`, JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}` }, data: { i: String(i) } })));
    }
    await Promise.all(jobs);
  } finally {
    await admin.close();
  }
}

export function reshuffleArgs(setting: ReshuffleSetting, maxAgeSeconds: number): string[] {
  const age = setting === 'on' ? String(maxAgeSeconds) : '0';
  return ['--upstream-connection-max-age', age, '--forwarded-watch-max-age', age, '--client-connection-max-age', age];
}

export async function rollingRestartRun(env: RestartEnv, setting: ReshuffleSetting): Promise<RestartRun> {
  const { o, cluster, log } = env;
  const upstreams = cluster.info.apiservers.flatMap((a) => ['--upstream', a.url]);
  const proxyArgs = [...upstreams, ...reshuffleArgs(setting, o.maxAgeSeconds), ...o.proxyArgs];
  log(`restart, reshuffling ${setting}: starting the proxy (${proxyArgs.join(' ')})`);
  const proxy = await ProxyProcess.start(cluster, join(env.dir, `proxy-restart-${setting}.log`), proxyArgs);
  const load = new IpcChild<LoadRequest>(new URL('./backends-load.js', import.meta.url), 'load', "the load's process");
  const targets = () => cluster.info.apiservers.map((a) => ({ host: a.host, port: a.port, url: a.url, pid: a.pid }));
  const sampler = new BackendsSampler(proxy, targets, env.token, cluster.agent);
  const restarts: RestartEvent[] = [];
  try {
    await load.call({ op: 'start', origin: proxy.url, ca: env.ca, token: env.token, rate: o.rate, watchers: o.watchers, namespace: LOAD_NAMESPACE, objects: o.objects });
    // The watchers start over 3 s; the share is charted from the first sample on.
    sampler.start(1000);
    const from = wallClock();
    log(`  load running (${o.rate} short requests/s, ${o.watchers} watches); warm-up ${o.warmupSeconds} s`);
    await sleep(o.warmupSeconds * 1000);
    for (let i = 0; i < cluster.info.apiservers.length; i++) {
      const stopAt = wallClock();
      log(`  apiserver ${i}: SIGTERM`);
      await cluster.stopApiserver(i, 'SIGTERM');
      const stoppedAt = wallClock();
      await cluster.startApiserver(i);
      const readyAt = wallClock();
      restarts.push({ apiserver: i, stopAt, stoppedAt, readyAt });
      log(`  apiserver ${i}: stopped after ${((stoppedAt - stopAt) / 1000).toFixed(1)} s, ready after ${((readyAt - stopAt) / 1000).toFixed(1)} s; pause ${o.pauseSeconds} s`);
      await sleep(o.pauseSeconds * 1000);
    }
    await sampler.tick();
    const to = wallClock();
    sampler.stop();
    const report = await load.call<LoadReport>({ op: 'stop' });
    return {
      reshuffle: setting, proxyArgs, proxyReadySeconds: proxy.readySeconds, watchers: o.watchers, from, to, restarts,
      samples: sampler.samples, failedProxyScrapes: sampler.failedProxyScrapes, load: report,
    };
  } finally {
    sampler.stop();
    await load.stop();
    await proxy.stop();
    // An apiserver left stopped by a failure is started again for the next run.
    for (let i = 0; i < cluster.info.apiservers.length; i++) if (!cluster.info.apiservers[i]?.pid) await cluster.startApiserver(i).catch(() => undefined);
  }
}
