// What the watchers of one phase should have received, and what they did receive: every watcher of
// a patched pod's node should get the event of every patch that succeeded, once.
import type { ChurnResult } from './watch-churn.js';
import type { ReportReply } from './watch-clients.js';

/** How many of `watchers` watch node n (watcher i watches node i mod nodes). */
export function watchersOfNode(watchers: number, nodes: number): (n: number) => number {
  return (n: number) => (n < watchers % nodes ? 1 : 0) + Math.floor(watchers / nodes);
}

export interface Expectation {
  /** Events expected, over all watchers. */
  readonly expected: number;
  /** Patches that succeeded, by node. */
  readonly okPatchesOnNode: ReadonlyMap<number, number>;
}

/** Expected: every watcher of a patched pod's node gets the event. */
export function expectedEvents(ch: ChurnResult, nodes: number, perNode: (n: number) => number): Expectation {
  const okPatchesOnNode = new Map<number, number>();
  let expected = 0;
  ch.pods.forEach((pod, k) => {
    if (!ch.ok[k]) return;
    const n = pod % nodes;
    okPatchesOnNode.set(n, (okPatchesOnNode.get(n) ?? 0) + 1);
    expected += perNode(n);
  });
  return { expected, okPatchesOnNode };
}

export interface Deliveries {
  readonly received: number;
  readonly duplicates: number;
  readonly unexpected: number;
  readonly watchersWithMisses: number;
  /** Delivery latency of every expected event that arrived. */
  readonly latencies: readonly number[];
}

/** Matches what arrived (the clients' report) against what was expected. */
export function matchDeliveries(report: ReportReply, ch: ChurnResult, { okPatchesOnNode }: Expectation, watchers: number, nodes: number, seqBase: number): Deliveries {
  let received = 0;
  let duplicates = 0;
  let unexpected = 0;
  let watchersWithMisses = 0;
  const latencies: number[] = [];
  const byId = new Map(report.watchers.map((w) => [w.id, w]));
  for (let id = 0; id < watchers; id++) {
    const w = byId.get(id);
    const node = id % nodes;
    const want = okPatchesOnNode.get(node) ?? 0;
    let got = 0;
    if (w) {
      const seen = new Set<number>();
      w.seqs.forEach((seq, j) => {
        const k = seq - seqBase;
        const pod = ch.pods[k];
        if (k < 0 || pod === undefined || !ch.ok[k] || pod % nodes !== node) {
          unexpected++;
          return;
        }
        if (seen.has(seq)) {
          duplicates++;
          return;
        }
        seen.add(seq);
        got++;
        latencies.push(w.latenciesMs[j] ?? Number.NaN);
      });
    }
    received += got;
    if (got < want) watchersWithMisses++;
  }
  return { received, duplicates, unexpected, watchersWithMisses, latencies };
}
