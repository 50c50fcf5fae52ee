// The restart-storm benchmark's flags (bench/storm.ts).
import { eachFlag } from './argv.js';

export const RUN_KINDS = ['direct', 'proxy-static', 'proxy-dynamic'] as const;
export type RunKind = (typeof RUN_KINDS)[number];
export type StormKind = 'start' | 'restart';

export interface StormOptions {
  /** Kubelet-like clients, one per node (each its own Node, pods and bearer token). */
  readonly clients: number;
  readonly podsPerNode: number;
  readonly namespaces: number;
  /** Processes the clients are spread over. */
  readonly workers: number;
  readonly runs: readonly RunKind[];
  /** Restart the apiserver under the synced clients after the start storm (storm b). */
  readonly restart: boolean;
  /** How the apiserver is stopped: SIGKILL (a crash: connections drop at once) or SIGTERM (graceful). */
  readonly restartSignal: 'SIGKILL' | 'SIGTERM';
  /** The apiserver's own limits (kube-apiserver flags of the same names). */
  readonly maxRequestsInflight: number;
  readonly maxMutatingRequestsInflight: number;
  readonly apiserverArgs: readonly string[];
  /** The flow-control YAML of the proxy runs; the static run replaces its retryAfter.seconds by [1, 1, 1, 1]. */
  readonly flowControlConfig: string | undefined;
  /** Run the proxy without --flow-control-config (before flow control exists, or to compare). */
  readonly flowControl: boolean;
  readonly proxyArgs: readonly string[];
  /** How long every client must stay synced before a storm counts as over. */
  readonly settleSeconds: number;
  /** Give up on a storm after this long. */
  readonly stormTimeoutSeconds: number;
  /** Apiserver /metrics and /proc sampling period. */
  readonly sampleMs: number;
  readonly populateConcurrency: number;
  readonly keepCluster: boolean;
  readonly writeReadme: boolean;
  readonly out: string | undefined;
}

export const STORM_DEFAULTS: StormOptions = {
  clients: 2000,
  podsPerNode: 10,
  namespaces: 100,
  workers: 2,
  runs: RUN_KINDS,
  restart: true,
  restartSignal: 'SIGKILL',
  maxRequestsInflight: 100,
  maxMutatingRequestsInflight: 50,
  apiserverArgs: [],
  flowControlConfig: undefined,
  flowControl: true,
  proxyArgs: [],
  settleSeconds: 10,
  stormTimeoutSeconds: 300,
  sampleMs: 500,
  populateConcurrency: 32,
  keepCluster: false,
  writeReadme: true,
  out: undefined,
};

const D = STORM_DEFAULTS;

export const STORM_USAGE = `Usage: npm run bench:storm -- [flags]        (or: node dist/bench/storm.js [flags])

Starts its own cluster (etcd + 1 kube-apiserver with explicit in-flight limits), populates it with
one Node and --pods-per-node pods per client, and runs kubelet-like clients (consistent LIST of the
node's pods, then WATCH from the list's resourceVersion; Retry-After honoured) in two storms: all
clients starting at once, and the apiserver restarted under them. Once direct to the apiserver and
once per proxy run (flow control with a static and with the dynamic Retry-After). Results:
bench/results/storm-<date>-<scale>.json and .svg, a Markdown summary on stdout and in bench/README.md.

Scale:
  --clients N                        kubelets, one Node each (default ${D.clients})
  --pods-per-node N                  pods per node (default ${D.podsPerNode})
  --namespaces N                     namespaces the pods are spread over (default ${D.namespaces})
  --workers N                        processes the clients are spread over (default ${D.workers})
Runs:
  --runs LIST                        of ${RUN_KINDS.join(',')} (default all, in that order)
  --no-restart                       only the start storm (no apiserver restart)
  --restart-signal SIG               SIGKILL (default: a crash, every connection drops at once) or SIGTERM
                                     (graceful: kube-apiserver stops listening at once but keeps open
                                     watches until its 60 s shutdown timeout)
  --settle-seconds N                 every client must stay synced this long to end a storm (default ${D.settleSeconds})
  --storm-timeout-seconds N          give up on a storm after this long (default ${D.stormTimeoutSeconds})
  --sample-ms N                      apiserver /metrics and /proc sampling period (default ${D.sampleMs})
  --populate-concurrency N           concurrent creates while populating (default ${D.populateConcurrency})
Apiserver:
  --max-requests-inflight N          kube-apiserver --max-requests-inflight (default ${D.maxRequestsInflight})
  --max-mutating-requests-inflight N kube-apiserver --max-mutating-requests-inflight (default ${D.maxMutatingRequestsInflight})
  --apiserver-arg FLAG               another kube-apiserver flag, repeatable
Proxy:
  --flow-control-config FILE         flow-control YAML of the proxy runs (default bench/storm-flowcontrol.yaml)
  --no-flow-control                  run the proxy without --flow-control-config
  --proxy-arg FLAG                   an extra flag for the proxy under test, repeatable
Output:
  --out FILE                         results JSON (default bench/results/storm-<ISO date>-<scale>.json; the chart beside it)
  --no-readme                        do not rewrite the storm results section of bench/README.md
  --keep-cluster                     leave the cluster's directory (logs, etcd data) in place
  -h, --help                         this help

A quick run: --clients 200 --pods-per-node 5 --namespaces 10 --settle-seconds 3
`;

export function parseStormArgs(argv: readonly string[]): StormOptions | 'help' {
  const o: { -readonly [K in keyof StormOptions]: StormOptions[K] } = { ...STORM_DEFAULTS };
  const ints: Record<string, keyof StormOptions> = {
    '--clients': 'clients',
    '--pods-per-node': 'podsPerNode',
    '--namespaces': 'namespaces',
    '--workers': 'workers',
    '--max-requests-inflight': 'maxRequestsInflight',
    '--max-mutating-requests-inflight': 'maxMutatingRequestsInflight',
    '--settle-seconds': 'settleSeconds',
    '--storm-timeout-seconds': 'stormTimeoutSeconds',
    '--sample-ms': 'sampleMs',
    '--populate-concurrency': 'populateConcurrency',
  };
  const whole = (flag: string, text: string): number => {
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n)) throw new Error(`${flag}: not a whole number: ${text}`);
    return n;
  };
  const list = <T extends string>(flag: string, text: string, allowed: readonly T[]): T[] => {
    const out = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const s of out) if (!(allowed as readonly string[]).includes(s)) throw new Error(`${flag}: unknown ${s} (one of ${allowed.join(', ')})`);
    if (out.length === 0) throw new Error(`${flag}: empty`);
    return out as T[];
  };
  const help = eachFlag(argv, (flag, value) => {
    if (flag === '--keep-cluster') o.keepCluster = true;
    else if (flag === '--no-readme') o.writeReadme = false;
    else if (flag === '--no-flow-control') o.flowControl = false;
    else if (flag === '--no-restart') o.restart = false;
    else if (flag === '--restart-signal') {
      const v = value();
      if (v !== 'SIGKILL' && v !== 'SIGTERM') throw new Error(`${flag}: SIGKILL or SIGTERM`);
      o.restartSignal = v;
    }
    else if (flag === '--out') o.out = value();
    else if (flag === '--flow-control-config') o.flowControlConfig = value();
    else if (flag === '--proxy-arg') o.proxyArgs = [...o.proxyArgs, value()];
    else if (flag === '--apiserver-arg') o.apiserverArgs = [...o.apiserverArgs, value()];
    else if (flag === '--runs') o.runs = list(flag, value(), RUN_KINDS);
    else {
      const key = ints[flag];
      if (!key) throw new Error(`unknown flag ${flag} (see --help)`);
      (o as Record<string, unknown>)[key] = whole(flag, value());
    }
  });
  if (help) return 'help';
  for (const k of ['clients', 'podsPerNode', 'namespaces', 'workers', 'maxRequestsInflight', 'maxMutatingRequestsInflight', 'stormTimeoutSeconds', 'sampleMs', 'populateConcurrency'] as const) {
    if (o[k] < 1) throw new Error(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: must be at least 1`);
  }
  return o;
}

/** The scale in a file name: e.g. 2000c-10ppn. */
export function stormScaleLabel(o: StormOptions): string {
  return `${o.clients}c-${o.podsPerNode}ppn`;
}
