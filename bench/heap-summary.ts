// What a V8 heap snapshot holds, by constructor: self sizes summed per (node type, name), the
// largest first, and for the largest ones what retains them (the retainer's name and the edge).
//   node dist/bench/heap-summary.js FILE.heapsnapshot [top=30]
import { readFileSync } from 'node:fs';

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: readonly string[]; readonly node_types: readonly [readonly string[]]; readonly edge_fields: readonly string[]; readonly edge_types: readonly [readonly string[]] } };
  readonly nodes: readonly number[];
  readonly edges: readonly number[];
  readonly strings: readonly string[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node dist/bench/heap-summary.js FILE.heapsnapshot [top]\n');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const nf = s.snapshot.meta.node_fields;
const ef = s.snapshot.meta.edge_fields;
const NF = nf.length;
const EF = ef.length;
const nType = nf.indexOf('type');
const nName = nf.indexOf('name');
const nSelf = nf.indexOf('self_size');
const nEdges = nf.indexOf('edge_count');
const eType = ef.indexOf('type');
const eName = ef.indexOf('name_or_index');
const eTo = ef.indexOf('to_node');
const nodeTypes = s.snapshot.meta.node_types[0];
const edgeTypes = s.snapshot.meta.edge_types[0];
const count = s.nodes.length / NF;

/** Objects are grouped by constructor; strings, code, arrays and the like by their type. */
function group(i: number): string {
  const t = nodeTypes[s.nodes[i * NF + nType] as number] ?? '?';
  const name = s.strings[s.nodes[i * NF + nName] as number] ?? '';
  if (t === 'object' || t === 'native') return `${t}:${name}`;
  if (t === 'hidden' || t === 'array' || t === 'code') return `${t}:${name.slice(0, 40)}`;
  return t;
}

const groups = new Map<string, { n: number; bytes: number }>();
const groupOf: string[] = new Array<string>(count);
let total = 0;
for (let i = 0; i < count; i++) {
  const g = group(i);
  groupOf[i] = g;
  const size = s.nodes[i * NF + nSelf] as number;
  total += size;
  const e = groups.get(g) ?? { n: 0, bytes: 0 };
  e.n++;
  e.bytes += size;
  groups.set(g, e);
}

// Retainers: for each node, the (group, edge name) of the edges that point at it (weak edges aside).
const firstEdge = new Uint32Array(count + 1);
for (let i = 0, e = 0; i < count; i++) {
  firstEdge[i] = e;
  e += (s.nodes[i * NF + nEdges] as number) * EF;
  firstEdge[i + 1] = e;
}
const sorted = [...groups.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top);
const wanted = new Set(sorted.slice(0, Math.min(12, top)).map(([g]) => g));
const retainers = new Map<string, Map<string, { n: number; bytes: number }>>();
for (let from = 0; from < count; from++) {
  for (let e = firstEdge[from] as number; e < (firstEdge[from + 1] as number); e += EF) {
    const et = edgeTypes[s.edges[e + eType] as number];
    if (et === 'weak' || et === 'shortcut') continue;
    const to = (s.edges[e + eTo] as number) / NF;
    const g = groupOf[to] as string;
    if (!wanted.has(g)) continue;
    const nameOrIndex = s.edges[e + eName] as number;
    const edge = et === 'element' || et === 'hidden' ? `[${et}]` : (s.strings[nameOrIndex] ?? '?');
    const key = `${groupOf[from]} .${edge}`;
    const m = retainers.get(g) ?? new Map<string, { n: number; bytes: number }>();
    const r = m.get(key) ?? { n: 0, bytes: 0 };
    r.n++;
    r.bytes += s.nodes[to * NF + nSelf] as number;
    m.set(key, r);
    retainers.set(g, m);
  }
}

const mb = (n: number) => (n / 1048576).toFixed(2);
process.stdout.write(`${count} nodes, ${mb(total)} MiB self size in all\n\n| group | count | MiB | bytes each |\n| --- | ---: | ---: | ---: |\n`);
for (const [g, e] of sorted) process.stdout.write(`| ${g} | ${e.n} | ${mb(e.bytes)} | ${(e.bytes / e.n).toFixed(0)} |\n`);
process.stdout.write('\nRetainers (edges into each group, by the retainer\'s group and the edge; a node may have several):\n');
for (const [g] of sorted) {
  const m = retainers.get(g);
  if (!m) continue;
  process.stdout.write(`\n${g}\n`);
  for (const [k, r] of [...m.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 6)) process.stdout.write(`  ${k}: ${r.n} edges, ${mb(r.bytes)} MiB\n`);
}
