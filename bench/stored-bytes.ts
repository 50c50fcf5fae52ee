// What keeping objects as deflate segments costs and saves (bench/README.md, "Stored bytes"): for
// pods of the benchmark's shape (bench/objects.ts, with the fields the apiserver adds), the stored
// bytes against the raw JSON, the time to compress at ingestion, the wire bytes and build time of
// a gzip LIST assembled from segments against a whole-body gzip as the apiserver writes it (level
// 1), and the time to inflate for identity answers and watch events. No cluster: pure CPU.
//   node dist/bench/stored-bytes.js [--pods 30000] [--nodes 1000] [--namespaces 100]
import { gzipSync, gunzipSync } from 'node:zlib';
import { podObject, type Layout } from './objects.js';
import { storedObject, itemBytes, itemsBytes, type StoredObject } from '../cache/stored-object.js';
import { packSegment } from '../cache/deflate-segments.js';
import { stripTypeMeta } from '../cache/json-scan.js';
import { gzipListBody, listBody, type BodyType, type ListMeta } from '../cache/list-body.js';
import { fieldSetFor } from '../indexes/selectable-fields.js';
import { eachFlag } from './argv.js';

const layout: { -readonly [K in keyof Layout]: Layout[K] } = { nodes: 1000, pods: 30_000, namespaces: 100, configMapsPerNamespace: 0 };
eachFlag(process.argv.slice(2), (flag, value) => {
  if (flag === '--pods') layout.pods = Number(value());
  else if (flag === '--nodes') layout.nodes = Number(value());
  else if (flag === '--namespaces') layout.namespaces = Number(value());
  else throw new Error(`unknown flag ${flag}`);
});

type Json = Record<string, unknown>;

/** managedFields' fieldsV1 for an object: every map key as `f:key` (lists left empty). */
function fieldsV1(v: unknown): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [`f:${k}`, fieldsV1(x)]));
}

/** A pod as the apiserver stores and lists it: defaults, uid, timestamps, managedFields. */
function storedPod(i: number): Buffer {
  const p = podObject(i, layout) as { metadata: Json; spec: Json & { containers: Json[] } };
  const meta = p.metadata;
  meta['uid'] = `0f1e2d3c-4b5a-4697-a8b9-${String(i).padStart(12, '0')}`;
  meta['resourceVersion'] = String(100_000 + i);
  meta['creationTimestamp'] = '2026-12-04T10:00:00Z';
  meta['managedFields'] = [{ manager: 'bench', operation: 'Update', apiVersion: 'v1', time: '2026-12-04T10:00:00Z', fieldsType: 'FieldsV1', fieldsV1: fieldsV1({ metadata: { ...meta }, spec: p.spec }) }];
  for (const c of p.spec.containers) Object.assign(c, { terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent' });
  Object.assign(p.spec, {
    restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', serviceAccountName: 'default', serviceAccount: 'default',
    securityContext: {}, schedulerName: 'default-scheduler', priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
    tolerations: ['not-ready', 'unreachable'].map((k) => ({ key: `node.kubernetes.io/${k}`, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 })),
  });
  return Buffer.from(JSON.stringify({ ...p, status: { phase: 'Pending', qosClass: 'Burstable' } }));
}

const MB = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);

/** The median of 5 timed runs (after one untimed), in ms, and the last run's result. */
function timed<T>(f: () => T): { ms: number; value: T } {
  let value = f();
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    value = f();
    runs.push(performance.now() - t);
  }
  runs.sort((a, b) => a - b);
  return { ms: runs[2] as number, value };
}
const ms = (x: number) => (x >= 10 ? `${x.toFixed(0)} ms` : x >= 1 ? `${x.toFixed(1)} ms` : `${Math.round(x * 1000)} µs`);
const POD: BodyType = { kind: 'Pod', apiVersion: 'v1', sortedKeys: false };
const META: ListMeta = { resourceVersion: 123_456n, continueToken: undefined, remainingItemCount: undefined };
const PODS = fieldSetFor('', 'pods', true);

const raws = Array.from({ length: layout.pods }, (_, i) => storedPod(i));
let t = performance.now();
const objs: StoredObject[] = raws.map((b) => storedObject(b, PODS, true));
const ingest = performance.now() - t;
const items = raws.map(stripTypeMeta);
t = performance.now();
for (const b of items) packSegment(b);
const compress = performance.now() - t;
objs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
const raw = raws.reduce((n, b) => n + b.length, 0);
const stored = objs.reduce((n, o) => n + o.z.length, 0);
console.log(`${layout.pods} pods: ${MB(raw)} JSON (${Math.round(raw / layout.pods)} B each), stored ${MB(stored)} (${(stored / raw).toFixed(3)} of the JSON)`);
console.log(`ingestion: ${(ingest * 1000 / layout.pods).toFixed(1)} µs per pod (parse, strip, compress), of which compression ${(compress * 1000 / layout.pods).toFixed(1)} µs`);

const drain = (g: Iterable<Buffer>) => Buffer.concat([...g]);
/** Takes every chunk as a response would, without joining them. */
function count(g: Iterable<Buffer>): number {
  let n = 0;
  for (const c of g) n += c.length;
  return n;
}

function compare(what: string, items: readonly StoredObject[]): void {
  const body = drain(listBody(POD, META, items));
  if (!gunzipSync(drain(gzipListBody(POD, META, items))).equals(body)) throw new Error('the assembled body does not decode to the identity body');
  const assembled = timed(() => count(gzipListBody(POD, META, items)));
  const identity = timed(() => count(listBody(POD, META, items)));
  const whole = timed(() => gzipSync(body, { level: 1 }).length);
  const a = assembled.value;
  const w = whole.value;
  const id = identity.value;
  console.log(`| ${what} | ${MB(id)} | ${MB(a)} (${(a / id).toFixed(3)}), ${ms(assembled.ms)} | ${MB(w)} (${(w / id).toFixed(3)}), ${ms(whole.ms)} | ${(a / w).toFixed(1)}× | ${ms(identity.ms)} |`);
}

console.log('| list | identity | assembled gzip (ratio), build time | whole-body gzip level 1 (ratio), time | assembled / whole | identity by inflating |');
console.log('| --- | --- | --- | --- | --- | --- |');
compare(`all ${objs.length} pods`, objs);
const node = objs.filter((o) => o.fields['spec.nodeName'] === 'bench-node-00007');
compare(`one node's ${node.length} pods`, node);
const ns = objs.filter((o) => o.namespace === 'bench-007');
compare(`one namespace's ${ns.length} pods`, ns);

const sample = objs.slice(0, 4992);
const one = timed(() => sample.forEach(itemBytes));
console.log(`inflate one object (GET, a watch event): ${(one.ms * 1000 / sample.length).toFixed(1)} µs`);
const batched = timed(() => {
  for (let i = 0; i < sample.length; i += 64) itemsBytes(sample.slice(i, i + 64));
});
console.log(`inflate in batches of 64 (a watch's initial events): ${(batched.ms * 1000 / sample.length).toFixed(1)} µs per object`);
