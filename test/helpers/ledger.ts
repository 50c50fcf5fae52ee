// The history of every object a consistency test writes, and the judge of what a LIST may show.
//
// Each object is written by one sequential writer, so its versions form a sequence with known
// real-time intervals [start, end] and resourceVersions. A LIST answered at resourceVersion X must
// be the exact state at X (no partial or mixed answer), and a consistent LIST (resourceVersion
// unset) must also reflect every write completed before it started (read-your-writes, in real
// time). Two versions have a revision known only within bounds:
// - a ConfigMap DELETE answers with a Status without a resourceVersion: its revision lies after the
//   previous version and every write completed before it started, and before every write started
//   after it completed;
// - a pod DELETE with gracePeriodSeconds=0 answers with the delete revision d, but first writes a
//   terminating state (deletionTimestamp set) at some revision between the previous version and d.
import { performance } from 'node:perf_hooks';

export type Kind = 'configmaps' | 'pods';

export interface ObjState {
  readonly labels: Readonly<Record<string, string>>;
  readonly node: string | undefined;
}

/** One LIST's selection: its kind, namespace (from the path), label equalities and spec.nodeName. */
export interface Scope {
  readonly kind: Kind;
  readonly namespace?: string | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly node?: string | undefined;
}

export interface SeenItem {
  readonly key: string;
  readonly rv: bigint;
  readonly terminating: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly node: string | undefined;
}

export interface Observation {
  readonly path: string;
  readonly scope: Scope;
  readonly consistent: boolean;
  readonly t0: number;
  readonly t1: number;
  readonly listRV: bigint;
  /** The answer's items in the test's namespaces, by key. */
  readonly items: ReadonlyMap<string, SeenItem>;
}

type Version =
  | { readonly op: 'set'; readonly start: number; readonly end: number; readonly rv: bigint; readonly state: ObjState }
  | { readonly op: 'delete'; readonly start: number; readonly end: number; readonly rv: bigint | undefined; readonly terminating: boolean; lo: bigint; hi: bigint };

interface History {
  readonly kind: Kind;
  readonly namespace: string;
  readonly versions: Version[];
  /** Start of a write whose outcome is unknown: later reads do not judge this object. */
  abandonedAt: number;
}

export const now = (): number => performance.now();
const NEVER = Number.POSITIVE_INFINITY;
const INF = 1n << 62n;

export function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function matches(scope: Scope, namespace: string, s: ObjState): boolean {
  if (scope.namespace !== undefined && scope.namespace !== namespace) return false;
  if (scope.node !== undefined && scope.node !== s.node) return false;
  for (const [k, v] of Object.entries(scope.labels ?? {})) if (s.labels[k] !== v) return false;
  return true;
}

export class Ledger {
  readonly #objects = new Map<string, History>();
  /** Writes with an exact revision, in completion order (end times only grow). */
  readonly #exact: Array<{ start: number; end: number; rv: bigint }> = [];
  #prefixMax: bigint[] = [];

  #history(kind: Kind, namespace: string, name: string): History {
    const id = `${kind}|${keyOf(namespace, name)}`;
    let h = this.#objects.get(id);
    if (!h) {
      h = { kind, namespace, versions: [], abandonedAt: NEVER };
      this.#objects.set(id, h);
    }
    return h;
  }

  #exactWrite(start: number, end: number, rv: bigint): void {
    this.#exact.push({ start, end, rv });
    const prev = this.#prefixMax[this.#prefixMax.length - 1] ?? 0n;
    this.#prefixMax.push(rv > prev ? rv : prev);
  }

  /** The highest exact revision of the writes completed before `t`. */
  completedBefore(t: number): bigint {
    let lo = 0;
    let hi = this.#exact.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#exact[mid]?.end ?? NEVER) < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0n : this.#prefixMax[lo - 1] ?? 0n;
  }

  set(kind: Kind, namespace: string, name: string, start: number, rv: bigint, state: ObjState): void {
    const end = now();
    const h = this.#history(kind, namespace, name);
    const last = h.versions[h.versions.length - 1];
    if (last?.op === 'set' && last.rv === rv) throw new Error(`${kind} ${namespace}/${name}: a write that changed nothing (RV ${rv})`);
    h.versions.push({ op: 'set', start, end, rv, state });
    this.#exactWrite(start, end, rv);
  }

  /** A delete; `rv` is the delete revision when the apiserver told it (pods), else undefined. */
  deleted(kind: Kind, namespace: string, name: string, start: number, rv: bigint | undefined): void {
    const end = now();
    const h = this.#history(kind, namespace, name);
    const last = h.versions[h.versions.length - 1];
    const prev = last?.op === 'set' ? last.rv : 0n;
    const lo = rv ?? (this.completedBefore(start) > prev ? this.completedBefore(start) : prev) + 1n;
    h.versions.push({ op: 'delete', start, end, rv, terminating: kind === 'pods', lo, hi: rv ?? INF });
    if (rv !== undefined) this.#exactWrite(start, end, rv);
  }

  abandon(kind: Kind, namespace: string, name: string, start: number): void {
    const h = this.#history(kind, namespace, name);
    if (start < h.abandonedAt) h.abandonedAt = start;
  }

  get objects(): number {
    return this.#objects.size;
  }

  /** Tightens the unknown delete revisions: before every exact write that started after it ended. */
  #bound(): void {
    const byStart = [...this.#exact].sort((a, b) => a.start - b.start);
    const suffixMin: bigint[] = new Array<bigint>(byStart.length + 1).fill(INF);
    for (let i = byStart.length - 1; i >= 0; i--) {
      const rv = byStart[i]?.rv ?? INF;
      const next = suffixMin[i + 1] ?? INF;
      suffixMin[i] = rv < next ? rv : next;
    }
    for (const h of this.#objects.values()) {
      for (const v of h.versions) {
        if (v.op !== 'delete' || v.rv !== undefined) continue;
        let lo = 0;
        let hi = byStart.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((byStart[mid]?.start ?? NEVER) <= v.end) lo = mid + 1;
          else hi = mid;
        }
        v.hi = (suffixMin[lo] ?? INF) - 1n;
      }
    }
  }

  /** Every way `o` contradicts the ledger (empty: the answer is a possible state). */
  judge(observations: readonly Observation[], limit = 50): string[] {
    this.#bound();
    const out: string[] = [];
    for (const o of observations) {
      if (out.length >= limit) break;
      if (o.consistent) {
        const need = this.completedBefore(o.t0);
        if (o.listRV < need) out.push(`${o.path}: consistent list at RV ${o.listRV} older than a write completed before it (RV ${need})`);
      }
      const judged = new Set<string>();
      for (const [id, h] of this.#objects) {
        if (h.kind !== o.scope.kind) continue;
        if (o.scope.namespace !== undefined && h.namespace !== o.scope.namespace) continue;
        const key = id.slice(id.indexOf('|') + 1);
        judged.add(key);
        if (o.t1 >= h.abandonedAt) continue;
        const problem = this.#judgeObject(h, o, o.items.get(key));
        if (problem) out.push(`${o.path} (RV ${o.listRV}, ${o.consistent ? 'consistent' : 'rv=0'}): ${key}: ${problem}`);
      }
      for (const key of o.items.keys()) {
        if (!judged.has(key)) out.push(`${o.path} (RV ${o.listRV}): ${key}: an object nobody wrote`);
      }
    }
    return out;
  }

  #judgeObject(h: History, o: Observation, seen: SeenItem | undefined): string | undefined {
    const X = o.listRV;
    const vs = h.versions;
    // By revision: versions certainly applied at X (definite) and possibly applied (possible).
    let definite = -1;
    let possible = -1;
    vs.forEach((v, i) => {
      const lo = v.op === 'set' ? v.rv : v.lo;
      const hi = v.op === 'set' ? v.rv : v.hi;
      if (hi <= X) definite = i;
      if (lo <= X) possible = i;
    });
    // By real time (consistent reads): at least every version completed before the read started,
    // at most those started before it ended.
    let done = -1;
    let started = -1;
    vs.forEach((v, i) => {
      if (v.end < o.t0) done = i;
      if (v.start < o.t1) started = i;
    });
    const from = o.consistent ? Math.max(definite, done) : definite;
    const to = Math.min(possible, started);
    const visible = (i: number): ObjState | undefined => {
      const v = vs[i];
      return v?.op === 'set' && matches(o.scope, h.namespace, v.state) ? v.state : undefined;
    };
    const describe = () => `allowed versions ${from}..${to} of ${vs.map((v) => (v.op === 'set' ? `set@${v.rv}` : `del@${v.lo}-${v.hi === INF ? '?' : v.hi}`)).join(',')}`;
    if (from > to) return `${seen ? `present at RV ${seen.rv}` : 'absent'}, but no version fits both the list's RV and the read's time; ${describe()}`;
    if (!seen) {
      for (let i = from; i <= to; i++) if (i < 0 || !visible(i)) return undefined;
      // A terminating pod (deletionTimestamp set) may be missing when it no longer matches: never here.
      return `missing; ${describe()}`;
    }
    for (let i = Math.max(from, 0); i <= to; i++) {
      const v = vs[i];
      if (v?.op === 'set' && v.rv === seen.rv && visible(i)) return undefined;
    }
    // The terminating state a pod delete writes before removing the object.
    const next = vs[from + 1];
    const prev = from >= 0 ? vs[from] : undefined;
    if (seen.terminating && next?.op === 'delete' && next.terminating && prev?.op === 'set' && seen.rv > prev.rv && seen.rv <= X && matches(o.scope, h.namespace, prev.state)) {
      if (!o.consistent || next.start < o.t1) return undefined;
    }
    return `present at RV ${seen.rv}${seen.terminating ? ' (terminating)' : ''}; ${describe()}`;
  }
}
