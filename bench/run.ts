// The kube-cache-proxy benchmark (a script, not a test): starts its own cluster (etcd + one
// kube-apiserver), populates it directly, then for each authorization mode (--modes, default probe
// and local) starts a fresh proxy process and measures the same reads direct to the apiserver and
// through the proxy: latency, throughput, the apiserver's (and the proxy's) CPU per 1,000 requests,
// the upstream requests per cache-served read, the proxy's memory per cached byte, and consistent
// reads under writes. Issue 9's targets are judged for the local mode. See bench/README.md.
import { optionsOrExit } from './argv.js';
import { populate } from './population.js';
import { commandLine, sourceInfo, updateReadme } from './report.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../test/cluster/cluster.js';
import { repoRoot } from '../test/cluster/paths.js';
import { JUDGED_MODE, parseArgs, scaleLabel, USAGE } from './args.js';
import { Client } from './client.js';
import type { Layout } from './objects.js';
import { cpuDelta, sampleCpu } from './proc.js';
import { sum } from './prom.js';
import { ProxyProcess, stopAllProxies } from './proxy-process.js';
import type { BenchResult, ModeResult } from './results.js';
import { lowestRss, processMemory } from './memory.js';
import { runMode } from './mode.js';
import { markdown } from './report-markdown.js';
import { log } from './run-env.js';
import { round, sleep } from './stats.js';

async function main(): Promise<number> {
  const o = optionsOrExit(parseArgs, USAGE);
  if (typeof o === 'number') return o;
  const opts = o;
  const runStarted = performance.now();
  const date = new Date();
  const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const root = repoRoot();
  const layout: Layout = { nodes: opts.nodes, pods: opts.pods, namespaces: opts.namespaces, configMapsPerNamespace: opts.configMapsPerNamespace };
  const loadAtStart = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'kcp-bench-'));
  log(`scale ${scaleLabel(opts)}; modes ${opts.modes.join(', ')}; working directory ${dir}`);

  let cluster: TestCluster | undefined;
  const clients: Client[] = [];
  let interrupted = false;
  let failed = false;
  const cleanup = async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await stopAllProxies();
    await cluster?.down().catch(() => undefined);
    if (!opts.keepCluster && !failed) rmSync(dir, { recursive: true, force: true });
    else log(`cluster directory kept (logs, etcd data): ${dir}`);
  };
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted: stopping the proxy and the cluster');
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
    const connections = Math.max(opts.concurrency, opts.fullConcurrency, opts.populateConcurrency);
    const direct = new Client('direct', apiserver.url, { ca, token, connections });
    clients.push(direct);

    // The proxy without a cache: its idle memory is the baseline a cached object adds to.
    log('baseline: the proxy with --cache-resources none');
    const base = await ProxyProcess.start(cluster, join(dir, 'proxy-baseline.log'), ['--cache-resources', 'none']);
    await sleep(3000);
    const bm = await base.metrics();
    const baseline = { rssBytes: sum(bm, 'process_resident_memory_bytes'), heapUsedBytes: sum(bm, 'nodejs_heap_size_used_bytes'), externalBytes: sum(bm, 'nodejs_external_memory_bytes') };
    await base.stop();

    // The anchor: what the apiserver itself (and etcd) grows by for the same objects.
    const apiserverBefore = await lowestRss(apiserver.pid, 3);
    const etcdBefore = await lowestRss(info.etcd.pid, 1);
    log(`populating: ${opts.namespaces} namespaces, ${opts.nodes} nodes, ${opts.namespaces * opts.configMapsPerNamespace} configmaps, ${opts.pods} pods`);
    const cpuBeforePopulate = sampleCpu({ apiserver: apiserver.pid });
    const pop = await populate(layout, direct, opts.populateConcurrency, log);
    const popCpu = cpuDelta(cpuBeforePopulate, sampleCpu({ apiserver: apiserver.pid }))['apiserver'] ?? Number.NaN;
    log(`populated in ${pop.seconds.toFixed(1)} s (pods ${(opts.pods / pop.podSeconds).toFixed(0)}/s); sampling the apiserver's RSS for 5 s`);
    const apiserverRss = processMemory(apiserverBefore, await lowestRss(apiserver.pid, 5));
    const etcdRss = processMemory(etcdBefore, await lowestRss(info.etcd.pid, 1));
    log(`apiserver RSS ${apiserverRss.beforeBytes} → ${apiserverRss.afterBytes} (+${apiserverRss.growthBytes})`);

    const ctx = { o: opts, layout, cluster, direct, clientOptions: { ca, token, connections }, dir, stamp, clients };
    const modes: ModeResult[] = [];
    for (const mode of opts.modes) modes.push(await runMode(ctx, mode));

    const firstMem = modes[0]?.memory[0];
    const podsBytes = firstMem?.cacheBytes['pods'] ?? Number.NaN;
    const podsCount = firstMem?.cacheObjects['pods'] ?? Number.NaN;
    const runSeconds = (performance.now() - runStarted) / 1000;
    const cpu0 = cpus()[0];
    const result: BenchResult = {
      date: date.toISOString(),
      command: commandLine('bench', 'run.js'),
      source: sourceInfo(root),
      scale: scaleLabel(opts),
      options: { ...opts },
      machine: {
        cores: cpus().length,
        cpuModel: cpu0?.model.trim() ?? 'unknown',
        memoryBytes: totalmem(),
        os: `${osType()} ${release()}`,
        node: process.version,
        kubernetes: info.kubernetesVersion,
        loadAverageAtStart: loadAtStart.map((v) => round(v, 2)),
      },
      population: {
        namespaces: opts.namespaces,
        nodes: opts.nodes,
        configMaps: opts.namespaces * opts.configMapsPerNamespace,
        pods: opts.pods,
        seconds: round(pop.seconds, 1),
        podsPerSecond: round(opts.pods / pop.podSeconds, 1),
        meanPodBytes: Math.round(podsBytes / podsCount),
        apiserverCpuSeconds: round(popCpu, 2),
        apiserverRss,
        etcdRss,
      },
      baseline,
      judgedMode: JUDGED_MODE,
      modes,
      runSeconds: round(runSeconds, 1),
    };
    const md = markdown(result);
    const resultsDir = join(root, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const file = opts.out ?? join(resultsDir, `${stamp}-${scaleLabel(opts)}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    if (opts.writeReadme) updateReadme(join(root, 'bench', 'README.md'), 'bench-results', 'Latest results', md);
    process.stdout.write(`${md}\n`);
    log(`results: ${file}${opts.writeReadme ? ' and bench/README.md' : ''}; run time ${runSeconds.toFixed(0)} s`);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    failed = true;
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    log(`proxy logs: ${dir}/proxy-*.log`);
    return 1;
  } finally {
    if (!interrupted) await cleanup();
  }
}

process.exitCode = await main();
