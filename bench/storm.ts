// The restart-storm benchmark (a script, not a test): starts its own cluster (etcd + one
// kube-apiserver with explicit in-flight limits), gives every simulated kubelet its own Node, pods
// and bearer token, and runs them in two storms — all starting at once, then the apiserver restarted
// under them — once direct to the apiserver and once through the proxy per flow-control
// configuration (static Retry-After: 1, then the dynamic Retry-After). Per storm: the time until
// every kubelet is synced again, the apiserver's peak in-flight requests (its own per-second
// watermark), its CPU, 429s and retries; a chart of 200s and 429s per second. See bench/README.md
// ("Restart-storm benchmark").
import { optionsOrExit } from './argv.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { writeWithRetry } from './client.js';
import { basename, join } from 'node:path';
import { TestCluster } from '../test/cluster/cluster.js';
import { repoRoot } from '../test/cluster/paths.js';
import { Client } from './client.js';
import { nodeName, podRef, type Layout } from './objects.js';
import { populate } from './population.js';
import { ProxyProcess, stopAllProxies } from './proxy-process.js';
import { commandLine, sourceInfo, updateReadme } from './report.js';
import { round, sleep } from './stats.js';
import { parseStormArgs, STORM_USAGE, stormScaleLabel, type RunKind, type StormOptions } from './storm-args.js';
import { renderChart } from './storm-chart.js';
import { KUBELET_USER_AGENT, type KubeletSpec } from './storm-clients.js';
import { flowControlFiles, stormChart, stormMarkdown, evaluateStormTargets } from './storm-report.js';
import { apiserverPeaks, responsesBetween, syncAnalysis, type RunResult, type StormDocument, type StormResult } from './storm-results.js';
import { proxyDelta } from './storm-proxy-metrics.js';
import { acceptQueuePeaks, cpuBetween, rejectedBetween, Sampler, tcpCounters, wallClock } from './storm-sampler.js';
import { Workers } from './storm-workers.js';

const log = (msg: string) => process.stderr.write(`[bench:storm ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Env {
  readonly o: StormOptions;
  readonly dir: string;
  readonly cluster: TestCluster;
  readonly ca: string;
  readonly kubelets: readonly KubeletSpec[];
  readonly layout: Layout;
  /** Direct to the apiserver as admin (the liveness patches). */
  readonly admin: Client;
  readonly sampler: Sampler;
  /** Processes whose CPU the sampler follows (the current ones; a name's earlier pids stay counted). */
  readonly pids: Record<string, number[]>;
}

/** Polls the workers until every kubelet has been synced for `settleMs` (and `gate()` holds). */
async function waitAllSynced(workers: Workers, total: number, settleMs: number, deadline: number, gate: () => boolean = () => true): Promise<{ ok: boolean; at: number }> {
  let since: number | undefined;
  let lastLog = wallClock();
  for (;;) {
    const st = await workers.status();
    const now = wallClock();
    if (st.synced === total && gate()) {
      since ??= now;
      if (now - since >= settleMs) return { ok: true, at: now };
    } else {
      since = undefined;
    }
    if (now - lastLog > 5000) {
      lastLog = now;
      log(`  synced ${st.synced}/${total} (ever ${st.everSynced})`);
    }
    if (now > deadline) return { ok: false, at: now };
    await sleep(250);
  }
}

async function runOnce(env: Env, kind: RunKind, fc: ReturnType<typeof flowControlFiles>): Promise<RunResult> {
  const { o, cluster } = env;
  const apiserver = cluster.info.apiservers[0];
  if (!apiserver) throw new Error('no apiserver');
  let proxy: ProxyProcess | undefined;
  let proxyArgs: string[] | undefined;
  let flowControl: RunResult['flowControl'];
  if (kind !== 'direct') {
    const f = kind === 'proxy-static' ? fc.static : fc.dynamic;
    flowControl = o.flowControl ? { file: f.file, retryAfterSeconds: f.seconds } : undefined;
    proxyArgs = [...(o.flowControl ? ['--flow-control-config', f.file] : []), ...o.proxyArgs];
    log(`${kind}: starting the proxy (${proxyArgs.join(' ') || 'defaults'})`);
    proxy = await ProxyProcess.start(cluster, join(env.dir, `proxy-${kind}.log`), proxyArgs);
    env.pids['proxy'] = [proxy.pid];
    env.sampler.listeners['proxy'] = Number(new URL(proxy.url).port);
    log(`  proxy ready in ${proxy.readySeconds.toFixed(1)} s`);
    await sleep(2000);
  }
  const origin = proxy?.url ?? apiserver.url;
  const workers = new Workers(o.workers);
  env.pids['clients'] = workers.pids;
  const storms: StormResult[] = [];
  const epoch = wallClock() + 1500;
  try {
    // ---- storm (a): every kubelet starts at the same instant.
    const m0 = await proxy?.metrics();
    const tcp0 = tcpCounters();
    const load0 = loadavg()[0] ?? 0;
    await workers.start({ origin, ca: env.ca, epoch, startAt: epoch, kubelets: env.kubelets });
    await sleep(Math.max(0, epoch - wallClock()));
    env.sampler.cpuNow();
    log(`${kind}: storm (a), ${o.clients} kubelets start at once against ${origin}`);
    const a = await waitAllSynced(workers, o.clients, o.settleSeconds * 1000, epoch + o.stormTimeoutSeconds * 1000);
    env.sampler.cpuNow();
    const m1 = await proxy?.metrics();
    const tcp1 = tcpCounters();
    const aMarks = { from: epoch, to: a.at, m0, m1, tcp0, tcp1, load: [load0, loadavg()[0] ?? 0] as [number, number] };

    // ---- storm (b): the apiserver restarted under the synced kubelets.
    let bMarks: { from: number; to: number; stopped: number; ready: number; m0: typeof m0; m1: typeof m0; tcp0: typeof tcp0; tcp1: typeof tcp0; load: [number, number] } | undefined;
    if (o.restart) {
      await sleep(1000);
      const bm0 = await proxy?.metrics();
      const btcp0 = tcpCounters();
      const bload0 = loadavg()[0] ?? 0;
      env.sampler.cpuNow();
      const from = wallClock();
      log(`${kind}: storm (b), restarting the apiserver under them (${o.restartSignal})`);
      let stopped = Number.NaN;
      let ready = Number.NaN;
      const restart = (async () => {
        await cluster.stopApiserver(0, o.restartSignal);
        stopped = wallClock();
        await cluster.startApiserver(0);
        ready = wallClock();
        env.pids['apiserver'] = [cluster.info.apiservers[0]?.pid ?? 0];
      })();
      const b = await waitAllSynced(workers, o.clients, o.settleSeconds * 1000, from + o.stormTimeoutSeconds * 1000, () => Number.isFinite(ready));
      await restart;
      env.sampler.cpuNow();
      const bm1 = await proxy?.metrics();
      bMarks = { from, to: b.at, stopped, ready, m0: bm0, m1: bm1, tcp0: btcp0, tcp1: tcpCounters(), load: [bload0, loadavg()[0] ?? 0] };
    }

    const liveness = await checkLiveness(env, workers);
    log(`  liveness: ${liveness.received}/${liveness.patched} watches delivered a MODIFIED event of their node's pod (${liveness.seconds} s)`);
    const report = await workers.report();
    const storm = (k: 'start' | 'restart', w: { from: number; to: number; m0: typeof m0; m1: typeof m0; tcp0: typeof tcp0; tcp1: typeof tcp0; load: [number, number] }, extra: Partial<StormResult> = {}): StormResult => {
      const { sync } = syncAnalysis(report.kubelets, w.from, w.to);
      const responses = responsesBetween(report.seconds, epoch, w.from, w.to);
      return {
        kind: k,
        from: w.from,
        to: w.to,
        ...sync,
        ...extra,
        responses,
        retries: responses.list429 + responses.watch429 + responses.listOther + responses.watchOther,
        apiserver: {
          ...apiserverPeaks(env.sampler.apiserver, w.from, w.to),
          failedScrapes: env.sampler.failedScrapes.filter((t) => t >= w.from && t <= w.to).length,
          apfRejected: rejectedBetween(env.sampler.apiserver, w.from, w.to),
        },
        cpuSeconds: Object.fromEntries(Object.entries(cpuBetween(env.sampler.cpu, w.from, w.to)).map(([n, v]) => [n, round(v, 2)])),
        loadAverage: [round(w.load[0], 2), round(w.load[1], 2)],
        acceptQueues: acceptQueuePeaks(env.sampler.acceptQueues, w.from, w.to),
        tcp: Object.fromEntries(Object.entries(w.tcp1).map(([n, v]) => [n, v - (w.tcp0[n] ?? 0)])),
        ...(w.m0 && w.m1 ? { proxy: proxyDelta(w.m0, w.m1) } : {}),
      };
    };
    storms.push(storm('start', aMarks));
    if (bMarks) {
      const s = syncAnalysis(report.kubelets, bMarks.from, bMarks.to);
      storms.push(storm('restart', bMarks, {
        apiserverStoppedSeconds: round((bMarks.stopped - bMarks.from) / 1000, 3),
        apiserverReadySeconds: round((bMarks.ready - bMarks.from) / 1000, 3),
        allSyncedAfterReadySeconds: s.allSyncedAt === null ? null : round(Math.max(0, s.allSyncedAt - bMarks.ready) / 1000, 3),
      }));
    }
    for (const s of storms) {
      log(`  ${kind} ${s.kind}: all synced after ${s.allSyncedSeconds ?? 'never'} s; 429s ${s.responses.list429 + s.responses.watch429}, retries ${s.retries}; ` +
        `apiserver peak in-flight ${s.apiserver.peakInflightReadOnly} (limit ${o.maxRequestsInflight}), queued ${s.apiserver.peakInqueueReadOnly}; CPU ${JSON.stringify(s.cpuSeconds)}`);
    }
    if (report.firstOther) log(`  first other failure: ${report.firstOther}`);
    const inflight = env.sampler.apiserver.filter((s) => s.at >= epoch - 2000).map((s) => ({ at: s.at, readOnly: s.inflightReadOnly, inqueue: s.inqueueReadOnly }));
    return {
      kind,
      ...(proxyArgs ? { proxyArgs } : {}),
      flowControl,
      ...(proxy ? { proxyReadySeconds: round(proxy.readySeconds, 2) } : {}),
      epoch,
      storms,
      liveness,
      clients: {
        retryAfterValues: report.retryAfter,
        otherFailures: report.other,
        ...(report.firstOther ? { firstOther: report.firstOther } : {}),
        events: report.events,
        listItems: report.listItems,
        lists: report.kubelets.reduce((n, k) => n + k.lists, 0),
        watches: report.kubelets.reduce((n, k) => n + k.watches, 0),
      },
      seconds: report.seconds,
      inflight,
    };
  } finally {
    await workers.stop();
    env.pids['clients'] = [];
    await proxy?.stop();
    env.pids['proxy'] = [];
    delete env.sampler.listeners['proxy'];
    await sleep(2000);
  }
}

/** Patches one pod of each of the first (up to) 50 nodes directly; counts the MODIFIED events the kubelets get. */
async function checkLiveness(env: Env, workers: Workers): Promise<RunResult['liveness']> {
  const n = Math.min(50, env.o.clients);
  const before = (await workers.status()).modified;
  const started = wallClock();
  for (let i = 0; i < n; i++) {
    const ref = podRef(i, env.layout);
    await writeWithRetry(env.admin, 'PATCH', `/api/v1/namespaces/${ref.namespace}/pods/${ref.name}`, JSON.stringify({ metadata: { annotations: { 'kcp-bench/storm-check': String(started) } } }), 'application/merge-patch+json');
  }
  let received = 0;
  while (wallClock() - started < 10_000) {
    received = (await workers.status()).modified - before;
    if (received >= n) break;
    await sleep(250);
  }
  return { patched: n, received, seconds: round((wallClock() - started) / 1000, 2) };
}

/** Can node i list its own pods, and not another node's? (the Node authorizer, with selectors). */
async function checkAuthorization(url: string, ca: Buffer, ks: readonly KubeletSpec[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const k0 = ks[0];
  const k1 = ks[1] ?? ks[0];
  if (!k0 || !k1) return out;
  const c = new Client('check', url, { ca, token: k0.token, connections: 1 });
  try {
    const own = await c.get(`/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${k0.node}`)}`, true);
    out['list own pods'] = `${own.status}${own.status === 200 ? ` (${(JSON.parse(own.body?.toString('utf8') ?? '{}') as { items?: unknown[] }).items?.length ?? 0} items)` : ''}`;
    const other = await c.get(`/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${k1.node}`)}`);
    out["list another node's pods"] = String(other.status);
    const all = await c.get('/api/v1/pods?limit=1');
    out['list all pods'] = String(all.status);
  } finally {
    await c.close();
  }
  return out;
}

async function main(): Promise<number> {
  const parsed = optionsOrExit(parseStormArgs, STORM_USAGE);
  if (typeof parsed === 'number') return parsed;
  const o = parsed;
  const runStarted = performance.now();
  const date = new Date();
  const root = repoRoot();
  const loadAtStart = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'kcp-storm-'));
  log(`scale ${stormScaleLabel(o)}; working directory ${dir}`);
  let cluster: TestCluster | undefined;
  let sampler: Sampler | undefined;
  let adminClient: Client | undefined;
  let failed = false;
  let interrupted = false;
  const cleanup = async () => {
    sampler?.stop();
    await adminClient?.close().catch(() => undefined);
    await stopAllProxies();
    await cluster?.down().catch(() => undefined);
    if (!o.keepCluster && !failed) rmSync(dir, { recursive: true, force: true });
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
    const kubelets: KubeletSpec[] = Array.from({ length: o.clients }, (_, i) => ({ id: i, node: nodeName(i), token: randomBytes(16).toString('hex') }));
    const apiserverArgs = [`--max-requests-inflight=${o.maxRequestsInflight}`, `--max-mutating-requests-inflight=${o.maxMutatingRequestsInflight}`, ...o.apiserverArgs];
    log(`starting the cluster (etcd + 1 kube-apiserver ${apiserverArgs.join(' ')}; ${o.clients} node tokens)`);
    cluster = await TestCluster.up({
      dir, apiservers: 1, log, apiserverArgs,
      tokenUsers: kubelets.map((k) => ({ token: k.token, user: `system:node:${k.node}`, groups: ['system:nodes'] })),
    });
    const c = cluster;
    const info = c.info;
    const apiserver = info.apiservers[0];
    if (!apiserver) throw new Error('the cluster has no apiserver');
    const caBuf = readFileSync(info.caFile);
    const admin = info.users.admin.token ?? '';
    const layout: Layout = { nodes: o.clients, pods: o.clients * o.podsPerNode, namespaces: o.namespaces, configMapsPerNamespace: 0 };
    const direct = new Client('direct', apiserver.url, { ca: caBuf, token: admin, connections: o.populateConcurrency });
    adminClient = direct;
    log(`populating: ${o.namespaces} namespaces, ${layout.nodes} nodes, ${layout.pods} pods`);
    const pop = await populate(layout, direct, o.populateConcurrency, log);
    log(`populated in ${pop.seconds.toFixed(1)} s`);
    const authorization = await checkAuthorization(apiserver.url, caBuf, kubelets);
    log(`node authorization: ${JSON.stringify(authorization)}`);

    const pids: Record<string, number[]> = { apiserver: [apiserver.pid], etcd: [info.etcd.pid], proxy: [], clients: [] };
    sampler = new Sampler(o.sampleMs, () => {
      const a = c.info.apiservers[0];
      return a?.pid ? { url: a.url, token: admin, agent: c.agent, pid: a.pid } : undefined;
    }, () => pids);
    sampler.listeners['apiserver'] = apiserver.port;
    sampler.start();
    await sleep(3000);
    const i0 = sampler.cpuNow();
    await sleep(5000);
    const i1 = sampler.cpuNow();
    const idleCpuPerSecond = round(((i1['apiserver'] ?? 0) - (i0['apiserver'] ?? 0)) / 5, 4);
    const last = sampler.apiserver[sampler.apiserver.length - 1];
    const limitSeatsByLevel = last?.limitSeatsBy ?? {};
    log(`apiserver idle CPU ${idleCpuPerSecond} s/s while sampled every ${o.sampleMs} ms (/metrics ${sampler.lastScrape.bytes} bytes in ${sampler.lastScrape.ms.toFixed(0)} ms); APF seat limits ${JSON.stringify(limitSeatsByLevel)}`);

    const fc = flowControlFiles(o, root, dir);
    const env: Env = { o, dir, cluster: c, ca: caBuf.toString('utf8'), kubelets, layout, admin: direct, sampler, pids };
    const runs: RunResult[] = [];
    for (const kind of o.runs) runs.push(await runOnce(env, kind, fc));
    sampler.stop();

    const runSeconds = (performance.now() - runStarted) / 1000;
    const cpu0 = cpus()[0];
    const doc: StormDocument = {
      date: date.toISOString(),
      command: commandLine('bench:storm', 'storm.js'),
      source: sourceInfo(root),
      options: { ...o, userAgent: KUBELET_USER_AGENT },
      machine: {
        cores: cpus().length, cpuModel: cpu0?.model.trim() ?? 'unknown', memoryBytes: totalmem(), os: `${osType()} ${release()}`,
        node: process.version, kubernetes: info.kubernetesVersion, loadAverageAtStart: loadAtStart.map((v) => round(v, 2)),
      },
      apiserver: {
        args: apiserverArgs, maxRequestsInflight: o.maxRequestsInflight, maxMutatingRequestsInflight: o.maxMutatingRequestsInflight,
        limitSeatsByLevel, kubeletLevel: 'system', idleCpuPerSecond,
        scrape: { bytes: sampler.lastScrape.bytes, ms: round(sampler.lastScrape.ms, 1), periodMs: o.sampleMs },
      },
      population: { nodes: layout.nodes, pods: layout.pods, namespaces: layout.namespaces, seconds: round(pop.seconds, 1) },
      authorization,
      runs,
      targets: evaluateStormTargets(o, runs),
      runSeconds: round(runSeconds, 1),
    };
    const resultsDir = join(root, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    const file = o.out ?? join(resultsDir, `storm-${stamp}-${stormScaleLabel(o)}.json`);
    const svgFile = file.replace(/\.json$/, '') + '.svg';
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
    writeFileSync(svgFile, renderChart(stormChart(doc)));
    const md = stormMarkdown(doc, basename(svgFile));
    if (o.writeReadme) updateReadme(join(root, 'bench', 'README.md'), 'bench-storm-results', 'Latest restart-storm results', md);
    process.stdout.write(`${md}\n`);
    log(`results: ${file}, ${svgFile}${o.writeReadme ? ' and bench/README.md' : ''}; run time ${runSeconds.toFixed(0)} s`);
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
