// The several-apiservers benchmark (a script, not a test): a cluster of etcd and three
// kube-apiservers behind one proxy. (A) a rolling restart of every apiserver under steady client
// traffic, with and without reshuffling, sampled every second from the proxy's metrics and the
// apiservers' own; (B) client-go-like clients with many watches each, over HTTP/2 and HTTP/1.1:
// connections, memory, time to establish, delivery latency. See bench/README.md ("Several
// apiservers").
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { basename, join } from 'node:path';
import { TestCluster } from '../test/cluster/cluster.js';
import { repoRoot } from '../test/cluster/paths.js';
import { optionsOrExit } from './argv.js';
import { analyseRun } from './backends-analysis.js';
import { BACKENDS_USAGE, backendsScaleLabel, parseBackendsArgs } from './backends-args.js';
import { renderSharesChart, sharesChart } from './backends-chart.js';
import { connectionsRun, type ConnectionsResult } from './backends-connections.js';
import { backendsMarkdown, type BackendsDocument, type RestartResult } from './backends-report.js';
import { createLoadObjects, rollingRestartRun, type RestartEnv } from './backends-restart.js';
import { stopAllProxies } from './proxy-process.js';
import { commandLine, sourceInfo, updateReadme } from './report.js';
import { round } from './stats.js';

const log = (msg: string) => process.stderr.write(`[bench:backends ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

async function main(): Promise<number> {
  const parsed = optionsOrExit(parseBackendsArgs, BACKENDS_USAGE);
  if (typeof parsed === 'number') return parsed;
  const o = parsed;
  const started = performance.now();
  const date = new Date();
  const root = repoRoot();
  const loadAtStart = loadavg();
  const own = o.clusterDir === undefined;
  const dir = o.clusterDir ?? mkdtempSync(join(tmpdir(), 'kcp-backends-'));
  const work = own ? dir : mkdtempSync(join(tmpdir(), 'kcp-backends-'));
  log(`scale ${backendsScaleLabel(o)}; ${own ? 'cluster and logs in' : `cluster ${dir}; logs in`} ${work}`);
  let cluster: TestCluster | undefined;
  let failed = false;
  let interrupted = false;
  const cleanup = async () => {
    await stopAllProxies();
    if (own) await cluster?.down().catch(() => undefined);
    if (own && !o.keepCluster && !failed) rmSync(dir, { recursive: true, force: true });
    else log(`logs kept: ${work}`);
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
    if (own) {
      log('starting the cluster (etcd + 3 kube-apiservers)');
      cluster = await TestCluster.up({ dir, apiservers: 3, log });
    } else {
      cluster = TestCluster.load(dir);
    }
    const c = cluster;
    if (c.info.apiservers.length < 2) throw new Error(`the cluster has ${c.info.apiservers.length} apiserver(s); this benchmark needs several`);
    const env: RestartEnv = { o, dir: work, cluster: c, ca: readFileSync(c.info.caFile, 'utf8'), token: c.info.users.admin.token ?? '', log };
    const restart: RestartResult[] = [];
    let connections: ConnectionsResult | undefined;
    if (o.parts.includes('restart')) {
      await createLoadObjects(env);
      for (const setting of ['on', 'off'] as const) {
        const run = await rollingRestartRun(env, setting);
        const analysis = analyseRun(run);
        log(`  reshuffling ${setting}: recoveries ${JSON.stringify(analysis.recoveries.map((r) => r.seconds))}; failures ${JSON.stringify(analysis.failures)}; relists ${JSON.stringify(analysis.relists)}`);
        restart.push({ run, analysis });
      }
    }
    if (o.parts.includes('connections')) connections = await connectionsRun(env);
    const cpu0 = cpus()[0];
    const doc: BackendsDocument = {
      date: date.toISOString(),
      command: commandLine('bench:backends', 'backends.js'),
      source: sourceInfo(root),
      options: o,
      machine: {
        cores: cpus().length, cpuModel: cpu0?.model.trim() ?? 'unknown', memoryBytes: totalmem(), os: `${osType()} ${release()}`,
        node: process.version, kubernetes: c.info.kubernetesVersion, loadAverageAtStart: loadAtStart.map((v) => round(v, 2)),
      },
      apiservers: c.info.apiservers.map((a) => a.url),
      restart,
      ...(connections ? { connections } : {}),
      runSeconds: round((performance.now() - started) / 1000, 1),
    };
    const resultsDir = join(root, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    const file = o.out ?? join(resultsDir, `backends-${stamp}-${backendsScaleLabel(o)}.json`);
    const svgFile = file.replace(/\.json$/, '') + '.svg';
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
    if (restart.length) writeFileSync(svgFile, renderSharesChart(sharesChart(doc)));
    const md = backendsMarkdown(doc, restart.length ? basename(svgFile) : undefined);
    if (o.writeReadme) updateReadme(join(root, 'bench', 'README.md'), 'bench-backends-results', 'Several apiservers', md);
    process.stdout.write(`${md}\n`);
    log(`results: ${file}${restart.length ? `, ${svgFile}` : ''}${o.writeReadme ? ' and bench/README.md' : ''}; run time ${doc.runSeconds} s`);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    failed = true;
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    if (!interrupted) await cleanup();
  }
}

process.exitCode = await main();
