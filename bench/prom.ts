// A minimal Prometheus text-format reader for the proxy's /metrics: samples, sums, deltas and
// histogram quantiles.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export type Metrics = readonly Sample[];

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Metrics {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.push({ name: m[1] as string, labels, value: v });
  }
  return out;
}

function matches(s: Sample, name: string, want: Readonly<Record<string, string>>): boolean {
  if (s.name !== name) return false;
  for (const [k, v] of Object.entries(want)) if (s.labels[k] !== v) return false;
  return true;
}

/** Sum of all samples of `name` whose labels include `want`. */
export function sum(m: Metrics, name: string, want: Readonly<Record<string, string>> = {}): number {
  let n = 0;
  for (const s of m) if (matches(s, name, want)) n += s.value;
  return n;
}

/** Sums of `name` grouped by one label, for samples whose labels include `want`. */
export function sumBy(m: Metrics, name: string, label: string, want: Readonly<Record<string, string>> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of m) if (matches(s, name, want)) out[s.labels[label] ?? ''] = (out[s.labels[label] ?? ''] ?? 0) + s.value;
  return out;
}

/** b − a for every key of b (and a). */
export function deltaOf(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export interface HistogramDelta {
  readonly count: number;
  readonly sumSeconds: number;
  /** Cumulative counts per upper bound (le), ascending. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
}

/** The change of a histogram (labels including `want`, all matching series added) between two scrapes. */
export function histogramDelta(a: Metrics, b: Metrics, name: string, want: Readonly<Record<string, string>>): HistogramDelta {
  const bucketSums = (m: Metrics) => {
    const by = new Map<number, number>();
    for (const s of m) {
      if (!matches(s, `${name}_bucket`, want)) continue;
      const le = s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le']);
      by.set(le, (by.get(le) ?? 0) + s.value);
    }
    return by;
  };
  const ba = bucketSums(a);
  const bb = bucketSums(b);
  const buckets = [...bb.keys()].sort((x, y) => x - y).map((le) => ({ le, count: (bb.get(le) ?? 0) - (ba.get(le) ?? 0) }));
  return {
    count: sum(b, `${name}_count`, want) - sum(a, `${name}_count`, want),
    sumSeconds: sum(b, `${name}_sum`, want) - sum(a, `${name}_sum`, want),
    buckets,
  };
}

/** Prometheus-style quantile estimate (linear within the bucket) of a histogram delta. */
export function histogramQuantile(h: HistogramDelta, q: number): number {
  if (h.count <= 0 || h.buckets.length === 0) return Number.NaN;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket <= 0 ? b.le : prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
