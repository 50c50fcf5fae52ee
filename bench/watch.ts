// The kube-cache-proxy watch benchmark (a script, not a test): starts its own cluster (etcd + one
// kube-apiserver), populates it directly, and for each watcher count W opens W kubelet-like watches
// (pods, fieldSelector=spec.nodeName=<node>, resourceVersion from a LIST, bookmarks on), once direct
// to the apiserver and once through the proxy (separate phases, same workload), then patches pods
// direct to the apiserver at a fixed rate with the send time in an annotation. Per phase: delivery
// latency, events received versus expected, CPU of the apiserver (and the proxy) during the churn and
// while opening, the proxy's memory per watcher, and the time to open the watchers. See
// bench/README.md ("Watch benchmark").
//
// This file is the scenario as a whole (cluster, population, the order of the phases, the result
// file); the parts: watch-phase.ts (one phase and the baseline), watch-churn.ts (the patches),
// watch-delivery.ts (expected versus received events), watch-proxy.ts (the proxy under test and
// its memory), watch-clients-process.ts (the watch clients' process), watch-results.ts (what is
// recorded), watch-report.ts (the Markdown summary), watch-args.ts (flags and --help).
import { optionsOrExit } from './argv.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../test/cluster/cluster.js';
import { repoRoot } from '../test/cluster/paths.js';
import { parseWatchArgs, WATCH_USAGE, watchScaleLabel } from './watch-args.js';
import { Client } from './client.js';
import type { Layout } from './objects.js';
import { populate } from './population.js';
import { commandLine, sourceInfo, updateReadme } from './report.js';
import { ProxyProcess, stopAllProxies } from './proxy-process.js';
import { round, sleep } from './stats.js';
import { ClientsProcess } from './watch-clients-process.js';
import { log } from './watch-log.js';
import { baselineChurn, phase, type Env } from './watch-phase.js';
import { startProxy, type ProxyHandle } from './watch-proxy.js';
import { markdown } from './watch-report.js';
import type { PhaseResult, Side, WatchBenchResult } from './watch-results.js';

async function main(): Promise<number> {
  const parsed = optionsOrExit(parseWatchArgs, WATCH_USAGE);
  if (typeof parsed === 'number') return parsed;
  const o = parsed;
  const runStarted = performance.now();
  const date = new Date();
  const root = repoRoot();
  const layout: Layout = { nodes: o.nodes, pods: o.pods, namespaces: o.namespaces, configMapsPerNamespace: 0 };
  const loadAtStart = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'kcp-bench-watch-'));
  log(`scale ${watchScaleLabel(o)}; working directory ${dir}`);

  let cluster: TestCluster | undefined;
  let proxy: ProxyProcess | undefined;
  let clients: ClientsProcess | undefined;
  const httpClients: Client[] = [];
  let interrupted = false;
  let failed = false;
  const cleanup = async () => {
    await clients?.stop().catch(() => undefined);
    await Promise.allSettled(httpClients.map((c) => c.close()));
    await proxy?.stop().catch(() => undefined);
    await stopAllProxies();
    await cluster?.down().catch(() => undefined);
    if (!o.keepCluster && !failed) rmSync(dir, { recursive: true, force: true });
    else log(`cluster directory kept (logs, etcd data): ${dir}`);
  };
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted: stopping the clients, the proxy and the cluster');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    log('starting the cluster (etcd + 1 kube-apiserver)');
    cluster = await TestCluster.up({ dir, apiservers: 1, log });
    const info = cluster.info;
    const apiserver = info.apiservers[0];
    if (!apiserver) throw new Error('the cluster has no apiserver');
    const ca = readFileSync(info.caFile);
    const token = info.users.admin.token ?? '';
    const direct = new Client('direct', apiserver.url, { ca, token, connections: Math.max(32, o.populateConcurrency) });
    httpClients.push(direct);

    log(`populating: ${o.namespaces} namespaces, ${o.nodes} nodes, ${o.pods} pods`);
    const pop = await populate(layout, direct, o.populateConcurrency, log);
    log(`populated in ${pop.seconds.toFixed(1)} s (pods ${(o.pods / pop.podSeconds).toFixed(0)}/s)`);

    clients = new ClientsProcess();
    const env: Env = { o, layout, ca, token, direct, clients, basePids: { apiserver: apiserver.pid, etcd: info.etcd.pid } };

    // Direct for the first count, then every count through one proxy, then direct for the others
    // in reverse (for two counts: direct, proxy, proxy, direct), so drift weighs on both sides alike.
    const order: { side: Side; watchers: number }[] = [
      { side: 'direct', watchers: o.watchers[0] ?? 1 },
      ...o.watchers.map((w) => ({ side: 'proxy' as const, watchers: w })),
      ...o.watchers.slice(1).reverse().map((w) => ({ side: 'direct' as const, watchers: w })),
    ];
    const baseline = o.baseline ? await baselineChurn(env) : undefined;
    const phases: PhaseResult[] = [];
    let proxyReady: number | undefined;
    let px: ProxyHandle | undefined;
    for (const [i, step] of order.entries()) {
      if (step.side === 'proxy' && !px) {
        log(`starting the proxy (cache on${o.proxyArgs.length ? `, ${o.proxyArgs.join(' ')}` : ', defaults'}) and waiting for /readyz`);
        px = await startProxy(cluster, join(dir, 'proxy.log'), o.proxyArgs, ca, token);
        proxy = px.proxy;
        httpClients.push(px.client);
        proxyReady = px.proxy.readySeconds;
        log(`proxy ready in ${px.proxy.readySeconds.toFixed(1)} s`);
      }
      if (step.side === 'direct' && px) {
        log('stopping the proxy (direct phases run without it)');
        px.inspector?.close();
        await px.client.close();
        await px.proxy.stop();
        px = undefined;
        proxy = undefined;
        await sleep(2000);
      }
      phases.push(await phase(env, step.side, step.watchers, i, px));
    }
    px?.inspector?.close();

    const runSeconds = (performance.now() - runStarted) / 1000;
    const cpu0 = cpus()[0];
    const result: WatchBenchResult = {
      date: date.toISOString(),
      command: commandLine('bench:watch', 'watch.js'),
      source: sourceInfo(root),
      scale: watchScaleLabel(o),
      options: o,
      machine: {
        cores: cpus().length,
        cpuModel: cpu0?.model.trim() ?? 'unknown',
        memoryBytes: totalmem(),
        os: `${osType()} ${release()}`,
        node: process.version,
        kubernetes: info.kubernetesVersion,
        loadAverageAtStart: loadAtStart.map((v) => round(v, 2)),
      },
      population: { seconds: round(pop.seconds, 1), podsPerSecond: round(o.pods / pop.podSeconds, 1) },
      proxy: proxyReady !== undefined ? { readySeconds: round(proxyReady, 2) } : undefined,
      baseline,
      phases,
      runSeconds: round(runSeconds, 1),
    };
    const md = markdown(result);
    const resultsDir = join(root, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    const file = o.out ?? join(resultsDir, `watch-${stamp}-${watchScaleLabel(o)}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    if (o.writeReadme) updateReadme(join(root, 'bench', 'README.md'), 'bench-watch-results', 'Latest watch results', md);
    process.stdout.write(`${md}\n`);
    log(`results: ${file}${o.writeReadme ? ' and bench/README.md' : ''}; run time ${runSeconds.toFixed(0)} s`);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    failed = true;
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (proxy) log(`proxy log: ${proxy.logFile}`);
    return 1;
  } finally {
    if (!interrupted) await cleanup();
  }
}

process.exitCode = await main();
