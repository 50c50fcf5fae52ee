// The several-apiservers benchmark's flags (bench/backends.ts).
import { eachFlag } from './argv.js';

export const PARTS = ['restart', 'connections'] as const;
export type Part = (typeof PARTS)[number];

export const PROTOCOLS = ['h2', 'http1'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export interface BackendsOptions {
  readonly parts: readonly Part[];
  /** Attach to a cluster started earlier (`npm run cluster -- up --apiservers 3`) instead of starting one. */
  readonly clusterDir: string | undefined;
  // ---- (A) rolling restart
  /** The reshuffling run's --upstream-connection-max-age, --forwarded-watch-max-age and --client-connection-max-age. */
  readonly maxAgeSeconds: number;
  /** Short requests per second (open loop), all kinds together. */
  readonly rate: number;
  /** Forwarded watches held open (one client each). */
  readonly watchers: number;
  /** Steady load before the first restart. */
  readonly warmupSeconds: number;
  /** Pause after each apiserver is ready again (the last one: before the run ends). */
  readonly pauseSeconds: number;
  /** Objects of the uncached resource (podtemplates) read by the short requests. */
  readonly objects: number;
  // ---- (B) client connections
  readonly clients: number;
  readonly watchesPerClient: number;
  readonly protocols: readonly Protocol[];
  /** Processes the connection clients are spread over. */
  readonly workers: number;
  /** Writes whose delivery to every watch of their namespace is timed. */
  readonly writes: number;
  readonly proxyArgs: readonly string[];
  readonly keepCluster: boolean;
  readonly writeReadme: boolean;
  readonly out: string | undefined;
}

export const BACKENDS_DEFAULTS: BackendsOptions = {
  parts: PARTS,
  clusterDir: undefined,
  maxAgeSeconds: 20,
  rate: 60,
  watchers: 30,
  warmupSeconds: 30,
  pauseSeconds: 60,
  objects: 50,
  clients: 1000,
  watchesPerClient: 10,
  protocols: PROTOCOLS,
  workers: 4,
  writes: 5,
  proxyArgs: [],
  keepCluster: false,
  writeReadme: true,
  out: undefined,
};

const D = BACKENDS_DEFAULTS;

export const BACKENDS_USAGE = `Usage: npm run bench:backends -- [flags]      (or: node dist/bench/backends.js [flags])

Several apiservers behind one proxy (a cluster of etcd + 3 kube-apiservers, started by the
benchmark unless --cluster-dir is given):
 (A) restart: a steady mix of client traffic through the proxy while every apiserver is restarted in
     turn (SIGTERM, start, ready, a pause), once with reshuffling (the proxy's upstream connection,
     forwarded watch and client connection max ages all --max-age) and once without (ages 0). Each
     apiserver's share of short requests and of watches, every second, from the proxy's metrics and
     from the apiservers' own.
 (B) connections: --clients client-go-like clients with --watches-per-client watches each (served
     by the cache), over HTTP/2 (one connection per client) and over HTTP/1.1 (one per watch): TCP
     connections to the proxy, its RSS and heap, time to establish the watches, delivery latency.
Results: bench/results/backends-<date>-<scale>.json and .svg, a Markdown summary on stdout and in
bench/README.md ("Several apiservers").

  --parts LIST                 of ${PARTS.join(',')} (default both)
  --cluster-dir DIR            use the cluster in DIR (3 apiservers) instead of starting one
(A) rolling restart:
  --max-age SEC                the reshuffling run's max ages (default ${D.maxAgeSeconds})
  --rate N                     short requests per second through the proxy (default ${D.rate})
  --watchers N                 forwarded watches of podtemplates held open (default ${D.watchers})
  --warmup-seconds N           steady load before the first restart (default ${D.warmupSeconds})
  --pause-seconds N            after each apiserver is ready again (default ${D.pauseSeconds})
  --objects N                  podtemplates the short requests read (default ${D.objects})
(B) connections:
  --clients N                  clients (default ${D.clients})
  --watches-per-client N       watches per client (default ${D.watchesPerClient})
  --protocols LIST             of ${PROTOCOLS.join(',')} (default both; h2 is skipped if the proxy does not offer it)
  --workers N                  processes the clients are spread over (default ${D.workers})
  --writes N                   timed writes (default ${D.writes})
Other:
  --proxy-arg FLAG             an extra flag for the proxy under test, repeatable
  --keep-cluster               keep the cluster directory (logs) after the run
  --out FILE                   results JSON (default bench/results/backends-<date>-<scale>.json; the chart beside it)
  --no-readme                  do not rewrite the "Several apiservers" results in bench/README.md
`;

function positive(flag: string, v: string, integer = true): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new Error(`${flag}: must be a ${integer ? 'whole ' : ''}number >= 0`);
  return n;
}

function listOf<T extends string>(flag: string, v: string, all: readonly T[]): T[] {
  const out = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of out) if (!all.includes(s as T)) throw new Error(`${flag}: ${s} is not one of ${all.join(', ')}`);
  return out as T[];
}

export function parseBackendsArgs(argv: readonly string[]): BackendsOptions | 'help' {
  const o: { -readonly [K in keyof BackendsOptions]: BackendsOptions[K] } = { ...D, proxyArgs: [] };
  const proxyArgs: string[] = [];
  const r = eachFlag(argv, (flag, value) => {
    switch (flag) {
      case '--parts': o.parts = listOf(flag, value(), PARTS); break;
      case '--cluster-dir': o.clusterDir = value(); break;
      case '--max-age': o.maxAgeSeconds = positive(flag, value(), false); break;
      case '--rate': o.rate = positive(flag, value(), false); break;
      case '--watchers': o.watchers = positive(flag, value()); break;
      case '--warmup-seconds': o.warmupSeconds = positive(flag, value(), false); break;
      case '--pause-seconds': o.pauseSeconds = positive(flag, value(), false); break;
      case '--objects': o.objects = Math.max(1, positive(flag, value())); break;
      case '--clients': o.clients = Math.max(1, positive(flag, value())); break;
      case '--watches-per-client': o.watchesPerClient = Math.max(1, positive(flag, value())); break;
      case '--protocols': o.protocols = listOf(flag, value(), PROTOCOLS); break;
      case '--workers': o.workers = Math.max(1, positive(flag, value())); break;
      case '--writes': o.writes = positive(flag, value()); break;
      case '--proxy-arg': proxyArgs.push(value()); break;
      case '--keep-cluster': o.keepCluster = true; break;
      case '--out': o.out = value(); break;
      case '--no-readme': o.writeReadme = false; break;
      default: throw new Error(`unknown flag ${flag} (see --help)`);
    }
  });
  if (r === 'help') return 'help';
  return { ...o, proxyArgs };
}

export function backendsScaleLabel(o: BackendsOptions): string {
  return `${o.watchers}w-${o.rate}rps-${o.clients}c-${o.watchesPerClient}wpc`;
}
