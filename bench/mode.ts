// One authorization mode of `npm run bench`: a fresh proxy process with --authorization-mode=<mode>
// (optionally under node --cpu-prof), its memory once synced, every read case (direct measured again
// beside it, so each mode keeps the direct/proxy/proxy/direct interleaving), the mixed phase, its
// memory after the load; then the proxy is stopped and its CPU profile summarised.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TestCluster } from '../test/cluster/cluster.js';
import type { AuthorizationMode, BenchOptions } from './args.js';
import { caseSpecs, runCase } from './cases.js';
import { Client } from './client.js';
import { summariseProfile, type Window } from './cpu-profile.js';
import { proxyMemory, settle } from './memory.js';
import { mixed } from './mixed.js';
import type { Layout } from './objects.js';
import { ProxyProcess } from './proxy-process.js';
import type { CaseResult, MemoryResult, ModeResult, ProfileResult } from './results.js';
import { log, type Env } from './run-env.js';
import { round, sleep } from './stats.js';
import { evaluateTargets } from './targets.js';

export interface ModeContext {
  readonly o: BenchOptions;
  readonly layout: Layout;
  readonly cluster: TestCluster;
  readonly direct: Client;
  /** What a client through the proxy needs: the cluster's CA, the admin token, the pool size. */
  readonly clientOptions: { readonly ca: Buffer; readonly token: string; readonly connections: number };
  /** The run's working directory (proxy logs) and its date stamp (profile names). */
  readonly dir: string;
  readonly stamp: string;
  /** Clients to close if the run is interrupted. */
  readonly clients: Client[];
}

/** Top functions kept in the summaries. */
const PROFILE_TOP = 15;

export async function runMode(ctx: ModeContext, mode: AuthorizationMode): Promise<ModeResult> {
  const { o, cluster } = ctx;
  const started = performance.now();
  const proxyArgs = ['--authorization-mode', mode, ...o.proxyArgs];
  const profileDir = o.cpuProf === undefined ? undefined : resolve(o.cpuProf);
  const profileName = `${ctx.stamp}-${mode}.cpuprofile`;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', profileName] : [];
  log(`mode ${mode}: starting the proxy (cache on, ${proxyArgs.join(' ')}${profileDir ? `; CPU profile ${join(profileDir, profileName)}` : ''}) and waiting for /readyz`);
  const proxy = await ProxyProcess.start(cluster, join(ctx.dir, `proxy-${mode}.log`), proxyArgs, { nodeArgs });
  const viaProxy = new Client('proxy', proxy.url, ctx.clientOptions);
  ctx.clients.push(viaProxy);
  try {
    log(`proxy ready in ${proxy.readySeconds.toFixed(1)} s; settling ${o.settleSeconds} s`);
    const apiserver = cluster.info.apiservers[0];
    const pids = { apiserver: apiserver?.pid ?? 0, etcd: cluster.info.etcd.pid, proxy: proxy.pid };
    const settled = await settle(proxy, pids, o.settleSeconds);
    const mem: MemoryResult[] = [settled.memory];
    const m0 = settled.memory;
    log(`proxy memory: RSS ${m0.rssBytes}, heap ${m0.heapUsedBytes}, raw JSON ${m0.totalCacheBytes} (pods ${m0.cacheObjects['pods']}, ${Math.round((m0.cacheBytes['pods'] ?? 0) / (m0.cacheObjects['pods'] ?? 1))} B each)`);

    const windows: Window[] = [];
    const env: Env = { o, layout: ctx.layout, cluster, direct: ctx.direct, viaProxy, proxy, pids, indexedWindow: (fromUs, toUs) => windows.push({ fromUs, toUs }) };
    const cases: CaseResult[] = [];
    for (const c of caseSpecs(o, ctx.layout)) cases.push(await runCase(env, c));
    const mixedResult = o.mixedSeconds > 0 ? await mixed(env) : undefined;
    await sleep(2000);
    mem.push(await proxyMemory(proxy, 'after the load'));
    await viaProxy.close();
    await proxy.stop();
    const profile = profileDir ? profileSummary(join(profileDir, profileName), windows) : undefined;
    const targets = evaluateTargets(cases, mem[0], mixedResult);
    const passed = targets.filter((t) => t.pass).length;
    log(`mode ${mode}: ${passed} of ${targets.length} target checks pass`);
    return {
      mode,
      proxyArgs,
      readySeconds: round(proxy.readySeconds, 2),
      idleCpuPerSecond: settled.idleCpuPerSecond,
      memory: mem,
      cases,
      mixed: mixedResult,
      targets,
      ...(profile ? { profile } : {}),
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    await viaProxy.close().catch(() => undefined);
    await proxy.stop();
  }
}

function profileSummary(file: string, windows: readonly Window[]): ProfileResult {
  if (!existsSync(file)) return { file, error: 'the proxy exited without writing its profile' };
  try {
    const text = readFileSync(file, 'utf8');
    const indexed = summariseProfile(text, { windows, top: PROFILE_TOP });
    const whole = summariseProfile(text, { top: PROFILE_TOP });
    log(`profile ${file}: ${indexed.samples} samples in the indexed cases' proxy rounds, ${(indexed.busyMs / 1000).toFixed(1)} s busy of ${(indexed.wallMs / 1000).toFixed(1)} s`);
    return { file, indexed, whole };
  } catch (err) {
    return { file, error: err instanceof Error ? err.message : String(err) };
  }
}
