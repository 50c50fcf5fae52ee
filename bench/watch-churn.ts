// The watch benchmark's load: annotation patches of pods on watched nodes, sent direct to the
// apiserver at a fixed rate, each carrying its sequence number and send time (SENT_ANNOTATION) for
// the watch clients to measure delivery.
import type { WatchBenchOptions } from './watch-args.js';
import type { Client } from './client.js';
import { podRef, type Layout } from './objects.js';
import { sleep } from './stats.js';
import { clock, SENT_ANNOTATION } from './watch-clients.js';

/** Nodes that have watchers and pods: watcher i watches node i mod nodes; pod i lives on node i mod nodes. */
export function patchTargets(o: WatchBenchOptions, watchers: number): { nodes: number; plan: (rand: () => number) => number } {
  const nodes = Math.min(watchers, o.nodes, o.pods);
  return {
    nodes,
    plan: (rand) => {
      const n = Math.floor(rand() * nodes);
      const onNode = Math.floor((o.pods - 1 - n) / o.nodes) + 1;
      return n + o.nodes * Math.floor(rand() * onNode);
    },
  };
}

export interface ChurnResult {
  readonly seconds: number;
  /** Per patch (index = sequence number within the phase): the pod index, and whether it succeeded. */
  readonly pods: readonly number[];
  readonly ok: readonly boolean[];
  readonly patchErrors: number;
  readonly firstPatchError?: string;
  readonly skipped: number;
  readonly latenciesMs: readonly number[];
}

export async function churn(o: WatchBenchOptions, layout: Layout, direct: Client, plan: readonly number[], seqBase: number): Promise<ChurnResult> {
  const interval = 1000 / o.updatesPerSecond;
  const started = performance.now();
  const deadline = started + o.churnSeconds * 1000;
  const inflight = new Set<Promise<void>>();
  const pods: number[] = [];
  const ok: boolean[] = [];
  const latenciesMs: number[] = [];
  let patchErrors = 0;
  let firstPatchError: string | undefined;
  let skipped = 0;
  for (let k = 0; k < plan.length; k++) {
    const due = started + k * interval;
    if (due >= deadline) break;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const pod = plan[k] ?? 0;
    pods.push(pod);
    ok.push(false);
    if (inflight.size >= 256) {
      skipped++;
      continue;
    }
    const ref = podRef(pod, layout);
    const seq = seqBase + k;
    const body = JSON.stringify({ metadata: { annotations: { [SENT_ANNOTATION]: `${seq}:${clock().toFixed(3)}` } } });
    const p: Promise<void> = direct.request('PATCH', `/api/v1/namespaces/${ref.namespace}/pods/${ref.name}`, { body, contentType: 'application/merge-patch+json' }).then(
      (r) => {
        latenciesMs.push(r.ms);
        if (r.status === 200) ok[k] = true;
        else {
          patchErrors++;
          firstPatchError ??= `${r.status} ${r.body?.toString('utf8').slice(0, 300) ?? ''}`;
        }
      },
      (err: unknown) => {
        patchErrors++;
        firstPatchError ??= String(err);
      },
    ).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all([...inflight]);
  const r: ChurnResult = { seconds: (performance.now() - started) / 1000, pods, ok, patchErrors, skipped, latenciesMs };
  return firstPatchError ? { ...r, firstPatchError } : r;
}
