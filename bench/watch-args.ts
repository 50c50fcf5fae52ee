// The watch benchmark's flags (bench/watch.ts).
import { eachFlag } from './argv.js';

export interface WatchBenchOptions {
  readonly nodes: number;
  readonly pods: number;
  readonly namespaces: number;
  /** Watcher counts, one direct and one proxy phase each, in this order. */
  readonly watchers: readonly number[];
  readonly updatesPerSecond: number;
  readonly churnSeconds: number;
  /** Watches being opened at once (each waits for its response headers). */
  readonly openConcurrency: number;
  /** After the last patch, how long to wait for events still on their way. */
  readonly drainSeconds: number;
  /** Memory and idle-CPU sampling window before and after opening the watchers. */
  readonly settleSeconds: number;
  readonly watchTimeoutSeconds: number;
  readonly populateConcurrency: number;
  readonly seed: number;
  /** Run the churn once with no watchers first (the patches' own cost). */
  readonly baseline: boolean;
  readonly keepCluster: boolean;
  readonly writeReadme: boolean;
  readonly out: string | undefined;
  readonly proxyArgs: readonly string[];
}

export const WATCH_DEFAULTS: WatchBenchOptions = {
  nodes: 1000,
  pods: 30000,
  namespaces: 100,
  watchers: [1000, 5000],
  updatesPerSecond: 200,
  churnSeconds: 30,
  openConcurrency: 100,
  drainSeconds: 10,
  settleSeconds: 5,
  watchTimeoutSeconds: 1800,
  populateConcurrency: 32,
  seed: 1,
  baseline: true,
  keepCluster: false,
  writeReadme: true,
  out: undefined,
  proxyArgs: [],
};

const D = WATCH_DEFAULTS;

export const WATCH_USAGE = `Usage: npm run bench:watch -- [flags]        (or: node dist/bench/watch.js [flags])

Starts its own cluster (etcd + 1 kube-apiserver), populates it, and for each watcher count W opens W
watches of pods with fieldSelector=spec.nodeName=<node>, once direct to the apiserver and once
through the proxy, then patches pods direct to the apiserver at a fixed rate and measures event
delivery (latency from the patch's send time, misses), the apiserver's and the proxy's CPU, the
proxy's memory per watcher and the time to open the watches. Results:
bench/results/watch-<date>-<scale>.json, a Markdown summary on stdout and in bench/README.md.

Scale:
  --nodes N                  Nodes (pods are spread round-robin over them; default ${D.nodes})
  --pods N                   Pods (default ${D.pods})
  --namespaces N             namespaces the pods are spread over (default ${D.namespaces})
  --watchers LIST            watcher counts, comma-separated (default ${D.watchers.join(',')}); watcher i
                             watches node i mod --nodes
Load:
  --updates-per-second N     pod annotation patches per second during the churn (default ${D.updatesPerSecond})
  --churn-seconds N          length of the churn (default ${D.churnSeconds})
  --open-concurrency N       watches opened at once (default ${D.openConcurrency})
  --drain-seconds N          after the churn, how long to wait for missing events (default ${D.drainSeconds})
  --settle-seconds N         memory / idle-CPU sampling before and after opening (default ${D.settleSeconds})
  --watch-timeout-seconds N  timeoutSeconds of each watch (default ${D.watchTimeoutSeconds})
  --populate-concurrency N   concurrent creates while populating (default ${D.populateConcurrency})
  --seed N                   seed of the patch sequence (default ${D.seed})
  --no-baseline              skip the churn with no watchers (run first: what the patches alone cost)
Proxy:
  --proxy-arg FLAG           an extra flag for the proxy under test, repeatable
Output:
  --out FILE                 results JSON (default bench/results/watch-<ISO date>-<scale>.json)
  --no-readme                do not rewrite the watch results section of bench/README.md
  --keep-cluster             leave the cluster's directory (logs, etcd data) in place
  -h, --help                 this help
`;

export function parseWatchArgs(argv: readonly string[]): WatchBenchOptions | 'help' {
  const o: { -readonly [K in keyof WatchBenchOptions]: WatchBenchOptions[K] } = { ...WATCH_DEFAULTS };
  const ints: Record<string, keyof WatchBenchOptions> = {
    '--nodes': 'nodes',
    '--pods': 'pods',
    '--namespaces': 'namespaces',
    '--updates-per-second': 'updatesPerSecond',
    '--churn-seconds': 'churnSeconds',
    '--open-concurrency': 'openConcurrency',
    '--drain-seconds': 'drainSeconds',
    '--settle-seconds': 'settleSeconds',
    '--watch-timeout-seconds': 'watchTimeoutSeconds',
    '--populate-concurrency': 'populateConcurrency',
    '--seed': 'seed',
  };
  const whole = (flag: string, text: string): number => {
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n)) throw new Error(`${flag}: not a whole number: ${text}`);
    return n;
  };
  const help = eachFlag(argv, (flag, value) => {
    if (flag === '--keep-cluster') o.keepCluster = true;
    else if (flag === '--no-readme') o.writeReadme = false;
    else if (flag === '--no-baseline') o.baseline = false;
    else if (flag === '--out') o.out = value();
    else if (flag === '--proxy-arg') o.proxyArgs = [...o.proxyArgs, value()];
    else if (flag === '--watchers') o.watchers = value().split(',').filter((s) => s.trim() !== '').map((s) => whole(flag, s.trim()));
    else {
      const key = ints[flag];
      if (!key) throw new Error(`unknown flag ${flag} (see --help)`);
      (o as Record<string, unknown>)[key] = whole(flag, value());
    }
  });
  if (help) return 'help';
  for (const k of ['nodes', 'pods', 'namespaces', 'updatesPerSecond', 'churnSeconds', 'openConcurrency', 'populateConcurrency', 'watchTimeoutSeconds'] as const) {
    if (o[k] < 1) throw new Error(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: must be at least 1`);
  }
  if (o.watchers.length === 0 || o.watchers.some((w) => w < 1)) throw new Error('--watchers: give one or more counts of at least 1');
  return o;
}

/** The scale in a file name: e.g. 1000n-30000p-1000-5000w. */
export function watchScaleLabel(o: WatchBenchOptions): string {
  return `${o.nodes}n-${o.pods}p-${o.watchers.join('-')}w`;
}
