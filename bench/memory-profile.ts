// The proxy's memory with a populated cluster's objects cached, as the benchmark measures it (a
// separate proxy process, cache on, /readyz, a settle, its /metrics) plus what the metrics do not
// say: the kernel's view of the RSS (anonymous vs file-backed, /proc/<pid>/status) and, on demand,
// a heap snapshot taken in the proxy (--heapsnapshot-signal) for bench/heap-summary.ts.
//
//   node dist/test/cluster/cli.js up --dir /tmp/mem --apiservers 1
//   node dist/bench/memory-profile.js --dir /tmp/mem --populate          # once: 30,000 pods …
//   node dist/bench/memory-profile.js --dir /tmp/mem [--settle 20] [--heap-snapshot F] [-- proxy flags]
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../test/cluster/cluster.js';
import { Client } from './client.js';
import { populate } from './population.js';
import { ProxyProcess } from './proxy-process.js';
import { sum, type Metrics } from './prom.js';
import { eachFlag, optionsOrExit } from './argv.js';
import { sleep } from './stats.js';
import type { Layout } from './objects.js';

interface Options {
  readonly dir: string;
  readonly populate: boolean;
  readonly layout: Layout;
  readonly settleSeconds: number;
  readonly heapSnapshot: string | undefined;
  readonly proxyArgs: readonly string[];
}

const usage = `usage: node dist/bench/memory-profile.js --dir CLUSTER_DIR [--populate] [--pods 30000] [--nodes 1000]
  [--namespaces 100] [--configmaps-per-namespace 10] [--settle 20] [--heap-snapshot FILE] [-- proxy flags]`;

function parse(argv: readonly string[]): Options | 'help' {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const o = { dir: '', populate: false, pods: 30_000, nodes: 1000, namespaces: 100, cms: 10, settle: 20, snapshot: undefined as string | undefined };
  const num = (s: string) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${s}`);
    return n;
  };
  const r = eachFlag(own, (flag, value) => {
    switch (flag) {
      case '--dir': o.dir = value(); break;
      case '--populate': o.populate = true; break;
      case '--pods': o.pods = num(value()); break;
      case '--nodes': o.nodes = num(value()); break;
      case '--namespaces': o.namespaces = num(value()); break;
      case '--configmaps-per-namespace': o.cms = num(value()); break;
      case '--settle': o.settle = num(value()); break;
      case '--heap-snapshot': o.snapshot = value(); break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  });
  if (r === 'help') return 'help';
  if (!o.dir) throw new Error('--dir is required');
  return {
    dir: o.dir, populate: o.populate, settleSeconds: o.settle, heapSnapshot: o.snapshot,
    layout: { pods: o.pods, nodes: o.nodes, namespaces: o.namespaces, configMapsPerNamespace: o.cms },
    proxyArgs: dash < 0 ? [] : argv.slice(dash + 1),
  };
}

const log = (m: string) => process.stderr.write(`${m}\n`);
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

/** Kernel figures of the process, in bytes (VmRSS, RssAnon, RssFile, VmHWM). */
function procStatus(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM):\s+(\d+) kB/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]) * 1024;
  }
  return out;
}

interface Sample {
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly raw: number;
  readonly objects: number;
  readonly perResource: string;
  /** V8's heap spaces: used/total MiB each. */
  readonly spaces: string;
}

function sample(pid: number, m: Metrics): Sample {
  const s = procStatus(pid);
  const perResource = m.filter((x) => x.name === 'kube_cache_proxy_cache_bytes' && x.value > 0)
    .map((x) => `${x.labels['resource']} ${mib(x.value)}`).join(', ');
  return {
    rss: sum(m, 'process_resident_memory_bytes'), anon: s['RssAnon'] ?? NaN, file: s['RssFile'] ?? NaN,
    heapUsed: sum(m, 'nodejs_heap_size_used_bytes'), heapTotal: sum(m, 'nodejs_heap_size_total_bytes'),
    external: sum(m, 'nodejs_external_memory_bytes'), raw: sum(m, 'kube_cache_proxy_cache_bytes'),
    objects: sum(m, 'kube_cache_proxy_cache_objects'), perResource,
    spaces: m.filter((x) => x.name === 'nodejs_heap_space_size_total_bytes' && x.value > 0)
      .map((x) => `${x.labels['space']} ${(sum(m, 'nodejs_heap_space_size_used_bytes', { space: x.labels['space'] ?? '' }) / 1048576).toFixed(1)}/${(x.value / 1048576).toFixed(1)}`).join(', '),
  };
}

async function countPods(c: Client): Promise<number> {
  const r = await c.get('/api/v1/pods?limit=1', true);
  const body: unknown = JSON.parse(r.body?.toString('utf8') ?? '{}');
  const b = typeof body === 'object' && body !== null ? (body as { items?: unknown; metadata?: { remainingItemCount?: unknown } }) : {};
  const items = Array.isArray(b.items) ? b.items.length : 0;
  const more = typeof b.metadata?.remainingItemCount === 'number' ? b.metadata.remainingItemCount : 0;
  return items + more;
}

/** Waits until the newest *.heapsnapshot in `dir` has stopped growing; returns its path. */
async function waitSnapshot(dir: string): Promise<string> {
  let last = -1;
  for (let i = 0; i < 600; i++) {
    await sleep(1000);
    const f = readdirSync(dir).filter((n) => n.endsWith('.heapsnapshot')).map((n) => join(dir, n))[0];
    if (!f) continue;
    const size = statSync(f).size;
    if (size > 0 && size === last) return f;
    last = size;
  }
  throw new Error('no heap snapshot after 10 minutes');
}

async function main(o: Options): Promise<void> {
  if (!TestCluster.exists(o.dir)) throw new Error(`no cluster in ${o.dir}: node dist/test/cluster/cli.js up --dir ${o.dir} --apiservers 1`);
  const cluster = TestCluster.load(o.dir);
  const info = cluster.info;
  const apiserver = info.apiservers[0];
  if (!apiserver) throw new Error('the cluster has no apiserver');
  if (o.populate) {
    const direct = new Client('direct', apiserver.url, { ca: readFileSync(info.caFile), token: info.users.admin.token ?? '', connections: 32 });
    const have = await countPods(direct);
    if (have >= o.layout.pods) log(`already ${have} pods: not populating`);
    else {
      log(`populating (${have} pods there): ${JSON.stringify(o.layout)}`);
      const p = await populate(o.layout, direct, 32, log);
      log(`populated in ${p.seconds.toFixed(0)} s`);
    }
    await direct.close();
  }
  const snapDir = o.heapSnapshot ? mkdtempSync(join(tmpdir(), 'kcp-heap-')) : undefined;
  if (snapDir) process.env['NODE_OPTIONS'] = `${process.env['NODE_OPTIONS'] ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapDir}`.trim();
  const proxy = await ProxyProcess.start(cluster, join(o.dir, 'memory-profile-proxy.log'), o.proxyArgs);
  try {
    log(`proxy ${proxy.pid} ready in ${proxy.readySeconds.toFixed(1)} s; settling ${o.settleSeconds} s`);
    const samples: Sample[] = [];
    const end = performance.now() + o.settleSeconds * 1000;
    while (performance.now() < end) {
      await sleep(1000);
      samples.push(sample(proxy.pid, await proxy.metrics()));
    }
    const last = samples[samples.length - 1] ?? sample(proxy.pid, await proxy.metrics());
    const low = (f: (s: Sample) => number) => Math.min(...samples.map(f), f(last));
    const rows: Array<[string, Sample]> = [['last', last], [`lowest of ${samples.length}`, { ...last, rss: low((s) => s.rss), anon: low((s) => s.anon), file: low((s) => s.file), heapUsed: low((s) => s.heapUsed), heapTotal: low((s) => s.heapTotal), external: low((s) => s.external) }]];
    if (snapDir && o.heapSnapshot) {
      process.kill(proxy.pid, 'SIGUSR2');
      const f = await waitSnapshot(snapDir);
      renameSync(f, o.heapSnapshot);
      // The snapshot collected the garbage (a full GC): what is left is what the cache holds.
      await sleep(2000);
      rows.push(['after the heap snapshot (full GC)', sample(proxy.pid, await proxy.metrics())]);
      log(`heap snapshot: ${o.heapSnapshot} (node dist/bench/heap-summary.js ${o.heapSnapshot})`);
    }
    process.stdout.write(`objects ${last.objects}, raw JSON cached ${mib(last.raw)} (${last.perResource})\n`);
    process.stdout.write('| sample | RSS | RSS / raw | anon | file | heap used | heap total | external |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n');
    for (const [name, s] of rows) {
      process.stdout.write(`| ${name} | ${mib(s.rss)} | ${(s.rss / s.raw).toFixed(2)}× | ${mib(s.anon)} | ${mib(s.file)} | ${mib(s.heapUsed)} | ${mib(s.heapTotal)} | ${mib(s.external)} |\n`);
    }
    for (const [name, s] of rows) process.stdout.write(`heap spaces (used/total MiB), ${name}: ${s.spaces}\n`);
  } finally {
    await proxy.stop();
    if (snapDir && existsSync(snapDir)) rmSync(snapDir, { recursive: true, force: true });
  }
}

const opts = optionsOrExit(parse, usage);
if (typeof opts === 'number') process.exit(opts);
main(opts).then(() => process.exit(0), (err: unknown) => {
  log(`memory-profile: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(1);
});
