// The benchmark's flags.
import { eachFlag } from './argv.js';

export interface BenchOptions {
  readonly nodes: number;
  readonly pods: number;
  readonly namespaces: number;
  readonly configMapsPerNamespace: number;
  /** Requests per case and target (direct, proxy) for the cheap cases. */
  readonly requests: number;
  readonly concurrency: number;
  /** Requests per target for the full LIST of all pods, and its concurrency. */
  readonly fullRequests: number;
  readonly fullConcurrency: number;
  readonly populateConcurrency: number;
  readonly settleSeconds: number;
  readonly mixedSeconds: number;
  readonly writesPerSecond: number;
  readonly seed: number;
  readonly keepCluster: boolean;
  readonly writeReadme: boolean;
  readonly out: string | undefined;
  /** Extra flags for the proxy under test (e.g. --cache-authorization-ttl=10). */
  readonly proxyArgs: readonly string[];
  /** The proxy's authorization modes to measure, in order: a fresh proxy process for each. */
  readonly modes: readonly AuthorizationMode[];
  /** Where the proxy's CPU profiles go (node --cpu-prof), or undefined: not profiled. */
  readonly cpuProf: string | undefined;
}

export type AuthorizationMode = 'probe' | 'local';
/** The mode issue 9's targets are judged in; the others are reported beside it. */
export const JUDGED_MODE: AuthorizationMode = 'local';

export const DEFAULTS: BenchOptions = {
  nodes: 1000,
  pods: 30000,
  namespaces: 100,
  configMapsPerNamespace: 10,
  requests: 1000,
  concurrency: 8,
  fullRequests: 20,
  fullConcurrency: 2,
  populateConcurrency: 32,
  settleSeconds: 10,
  mixedSeconds: 30,
  writesPerSecond: 50,
  seed: 1,
  keepCluster: false,
  writeReadme: true,
  out: undefined,
  proxyArgs: [],
  modes: ['probe', 'local'],
  cpuProf: undefined,
};

export const USAGE = `Usage: npm run bench -- [flags]        (or: node dist/bench/run.js [flags])

Starts its own cluster (etcd + 1 kube-apiserver), populates it, then for each authorization mode
starts a fresh proxy and measures reads direct to the apiserver versus through the proxy; the
targets are judged in ${JUDGED_MODE} mode. Results: bench/results/<date>-<scale>.json, a Markdown summary
on stdout and in bench/README.md.

Scale:
  --nodes N                  Nodes to create (default ${DEFAULTS.nodes})
  --pods N                   Pods to create (default ${DEFAULTS.pods})
  --namespaces N             namespaces the pods are spread over (default ${DEFAULTS.namespaces})
  --configmaps-per-namespace N  ConfigMaps per namespace, for the mixed workload (default ${DEFAULTS.configMapsPerNamespace})
Load:
  --requests N               requests per case and target (default ${DEFAULTS.requests})
  --concurrency N            concurrent requests (default ${DEFAULTS.concurrency})
  --full-requests N          requests per target for the full LIST of all pods (default ${DEFAULTS.fullRequests})
  --full-concurrency N       its concurrency (default ${DEFAULTS.fullConcurrency})
  --populate-concurrency N   concurrent creates while populating (default ${DEFAULTS.populateConcurrency})
  --settle-seconds N         wait after the proxy is ready before sampling its memory (default ${DEFAULTS.settleSeconds})
  --mixed-seconds N          length of the mixed read/write phase (default ${DEFAULTS.mixedSeconds}; 0 skips it)
  --writes-per-second N      write rate of the mixed phase (default ${DEFAULTS.writesPerSecond})
  --seed N                   seed of the request mix (default ${DEFAULTS.seed})
Proxy:
  --modes LIST               the proxy's --authorization-mode values to measure, in order
                             (default ${DEFAULTS.modes.join(',')}; targets judged for ${JUDGED_MODE})
  --proxy-arg FLAG           an extra flag for every proxy under test, repeatable
                             (e.g. --proxy-arg=--cache-authorization-ttl=10)
  --cpu-prof DIR             profile each proxy (node --cpu-prof) into DIR/<date>-<mode>.cpuprofile and
                             summarise its top self-time functions during the indexed cases
Output:
  --out FILE                 results JSON (default bench/results/<ISO date>-<scale>.json)
  --no-readme                do not rewrite the results section of bench/README.md
  --keep-cluster             leave the cluster's directory (logs, etcd data) in place
  -h, --help                 this help
`;

export function parseArgs(argv: readonly string[]): BenchOptions | 'help' {
  const o: { -readonly [K in keyof BenchOptions]: BenchOptions[K] } = { ...DEFAULTS };
  const ints: Record<string, keyof BenchOptions> = {
    '--nodes': 'nodes',
    '--pods': 'pods',
    '--namespaces': 'namespaces',
    '--configmaps-per-namespace': 'configMapsPerNamespace',
    '--requests': 'requests',
    '--concurrency': 'concurrency',
    '--full-requests': 'fullRequests',
    '--full-concurrency': 'fullConcurrency',
    '--populate-concurrency': 'populateConcurrency',
    '--settle-seconds': 'settleSeconds',
    '--mixed-seconds': 'mixedSeconds',
    '--writes-per-second': 'writesPerSecond',
    '--seed': 'seed',
  };
  const help = eachFlag(argv, (flag, value) => {
    if (flag === '--keep-cluster') o.keepCluster = true;
    else if (flag === '--no-readme') o.writeReadme = false;
    else if (flag === '--out') o.out = value();
    else if (flag === '--proxy-arg') o.proxyArgs = [...o.proxyArgs, value()];
    else if (flag === '--modes') o.modes = parseModes(value());
    else if (flag === '--cpu-prof') o.cpuProf = value();
    else {
      const key = ints[flag];
      if (!key) throw new Error(`unknown flag ${flag} (see --help)`);
      const text = value();
      const n = Number(text);
      if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n)) throw new Error(`${flag}: not a whole number: ${text}`);
      (o as Record<string, unknown>)[key] = n;
    }
  });
  if (help) return 'help';
  if (o.proxyArgs.some((a) => a === '--authorization-mode' || a.startsWith('--authorization-mode='))) {
    throw new Error('--proxy-arg: the authorization mode is set by --modes');
  }
  for (const k of ['nodes', 'pods', 'namespaces', 'requests', 'concurrency', 'fullRequests', 'fullConcurrency', 'populateConcurrency'] as const) {
    if (o[k] < 1) throw new Error(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: must be at least 1`);
  }
  return o;
}

function parseModes(text: string): AuthorizationMode[] {
  const out: AuthorizationMode[] = [];
  for (const m of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (m !== 'probe' && m !== 'local') throw new Error(`--modes: unknown authorization mode ${m} (probe, local)`);
    if (!out.includes(m)) out.push(m);
  }
  if (out.length === 0) throw new Error('--modes: at least one of probe, local');
  return out;
}

/** The scale in a file name: e.g. 1000n-30000p-100ns. */
export function scaleLabel(o: BenchOptions): string {
  return `${o.nodes}n-${o.pods}p-${o.namespaces}ns`;
}
