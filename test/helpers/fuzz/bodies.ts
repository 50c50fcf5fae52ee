// Request bodies for the fuzz test's writes (always sent with dryRun=All, so the cluster stays still):
// objects good and bad, truncated and deeply nested JSON, YAML, binary, with fitting or odd content types.
import type { Rng } from '../prng.js';
import type { World } from './fixture.js';
import { mutate } from './mutate.js';

export interface Write {
  readonly method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly contentType: string | undefined;
  readonly body: string | Buffer | undefined;
}

function configMap(rng: Rng, name: string): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: rng.chance(0.5) ? { a: 'b' } : undefined }, data: { k: rng.pick(['v', '', 'é', 'x'.repeat(2000)]) } };
}

function nested(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

export function writeCase(rng: Rng, w: World): Write {
  const ns = rng.pick([...w.namespaces, `${w.prefix}-none`]);
  const name = rng.pick(['a', 'z', 'new-one', 'cfg-1', 'Bad_Name', '']);
  const coll = `/api/v1/namespaces/${ns}/configmaps`;
  const method = rng.weighted<Write['method']>([[4, 'POST'], [2, 'PUT'], [3, 'PATCH'], [1, 'DELETE']]);
  const path = method === 'POST' ? (rng.chance(0.9) ? coll : `/api/v1/namespaces/${ns}/pods/${name}/eviction`) : rng.chance(0.9) ? `${coll}/${name}` : coll;
  const obj = configMap(rng, name);
  const json = JSON.stringify(obj);
  let body: string | Buffer | undefined = rng.weighted<string | Buffer | undefined>([
    [5, json], [2, mutate(rng, json)], [2, json.slice(0, rng.int(json.length))], [1, ''], [1, undefined], [1, 'null'], [1, '[]'], [1, '"x"'],
    [1, nested(rng.pick([100, 1000, 10_000]))], [1, `{"a":${'{"a":'.repeat(500)}1${'}'.repeat(501)}`], [1, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n'],
    [1, Buffer.from(Array.from({ length: rng.between(1, 300) }, () => rng.int(256)))], [1, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"${name}"},"data":{"k":"${'x'.repeat(rng.pick([1000, 100_000]))}"}}`],
    [1, '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}'], [1, '{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":-5}'], [1, '\ufeff{}'],
  ]);
  if (method === 'PATCH' && rng.chance(0.5)) body = rng.pick(['{"data":{"k":"v2"}}', '[{"op":"add","path":"/data/k","value":"v"}]', '[{"op":"bogus"}]', '{"metadata":{"$patch":"delete"}}', '{}']);
  // A DELETE with a body takes its options from the body alone: the query's dryRun=All would be
  // ignored and the fixture really deleted (it was, mid-run: the proxy's earlier reads then
  // differed from the apiserver's later ones). Its bodies are DeleteOptions that keep dryRun.
  if (method === 'DELETE') {
    body = rng.pick([undefined, '', '{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}', '{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"],"gracePeriodSeconds":-5}', '{"dryRun":["All"],"propagationPolicy":"Bogus"}']);
  }
  const contentType = method === 'PATCH'
    ? rng.pick(['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json', 'application/apply-patch+yaml', 'application/json', 'text/plain', undefined])
    : rng.pick(['application/json', 'application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf', 'text/plain', 'application/json; charset=utf-8', 'application/json; charset=latin1', '', undefined]);
  return { method, path, contentType, body };
}
