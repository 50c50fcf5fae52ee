// Micro-benchmark: the cost per request of flow control's rule matching with 1,000 rules (indexed by
// verb and resource, against a scan of every rule), and of a whole admission and release. Not a
// timed test: run it with `npm run bench:rules` and read the figures (ns per request).
import { FlowControl } from '../flowcontrol/flow-control.js';
import { ManualClock } from '../flowcontrol/clock.js';
import { parseFlowControlConfig, type RuleSpec } from '../flowcontrol/config.js';
import { DEFAULT_FLOW_CONTROL } from '../flowcontrol/defaults.js';
import { RuleIndex, compileRules, matchByScan } from '../flowcontrol/rules.js';
import type { RequestAttributes } from '../flowcontrol/attributes.js';

const RULES = Number(process.argv[2] ?? 1000);
const REQUESTS = Number(process.argv[3] ?? 200_000);

const verbs = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const resources = ['pods', 'configmaps', 'secrets', 'nodes', 'services', 'endpointslices.discovery.k8s.io', 'deployments.apps',
  'replicasets.apps', 'leases.coordination.k8s.io', 'events', 'namespaces', 'serviceaccounts', 'jobs.batch', 'ingresses.networking.k8s.io'];

/** Rules as operators write them: each names a verb or two and a resource or two; some add a namespace, user agent or group. */
function rules(n: number): RuleSpec[] {
  return Array.from({ length: n }, (_, i): RuleSpec => ({
    name: `rule-${i}`, level: 'l',
    verbs: [verbs[i % verbs.length] ?? 'get', ...(i % 4 === 0 ? [verbs[(i + 3) % verbs.length] ?? 'list'] : [])],
    resources: [resources[(i * 5) % resources.length] ?? 'pods'],
    ...(i % 2 === 0 ? { namespaces: [`team-${i % 97}`] } : {}),
    ...(i % 3 === 0 ? { userAgents: [{ prefix: `controller-${i % 31}/` }] } : {}),
    ...(i % 5 === 0 ? { groups: [`group-${i % 7}`] } : {}),
  }));
}

function requests(n: number): RequestAttributes[] {
  return Array.from({ length: n }, (_, i): RequestAttributes => {
    const full = resources[(i * 7) % resources.length] ?? 'pods';
    const dot = full.indexOf('.');
    const verb = verbs[(i * 3) % verbs.length] ?? 'get';
    return {
      isResourceRequest: true, verb, apiGroup: dot < 0 ? '' : full.slice(dot + 1), resource: dot < 0 ? full : full.slice(0, dot),
      subresource: '', namespace: `team-${i % 120}`, name: '', path: '', readOnly: ['get', 'list', 'watch'].includes(verb),
      longRunning: verb === 'watch', userAgent: `controller-${i % 40}/v1`, user: undefined, groups: [`group-${i % 9}`],
      credential: `credential:${i % 500}`, source: 'apiserver',
    };
  });
}

function time(label: string, n: number, f: (i: number) => unknown): number {
  for (let i = 0; i < Math.min(n, 20_000); i++) f(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  process.stdout.write(`${label.padEnd(44)} ${ns.toFixed(0).padStart(8)} ns/request\n`);
  return ns;
}

const specs = rules(RULES);
const reqs = requests(4096);
const index = new RuleIndex(specs);
const compiled = compileRules(specs);
let matched = 0;
for (const r of reqs) {
  const a = index.match(r)?.index;
  if (a !== matchByScan(compiled, r)) throw new Error('the index and the scan disagree');
  if (a !== undefined) matched++;
}
process.stdout.write(`${RULES} rules, ${REQUESTS} requests; ${((100 * matched) / reqs.length).toFixed(0)}% of requests match a rule\n`);
const indexed = time('rule match, indexed by verb and resource', REQUESTS, (i) => index.match(reqs[i & 4095] as RequestAttributes));
const scanned = time('rule match, scanning every rule', REQUESTS, (i) => matchByScan(compiled, reqs[i & 4095] as RequestAttributes));
process.stdout.write(`index speed-up: ${(scanned / indexed).toFixed(0)}×\n`);
const config = parseFlowControlConfig({
  levels: [{ name: 'l', maxInflight: 1_000_000, flowBy: 'user', perFlow: { qps: 1e9, burst: 1e9 } }, { name: 'default' }],
  rules: specs, defaultLevel: 'default',
}, DEFAULT_FLOW_CONTROL);
const fc = new FlowControl(config, new ManualClock());
time('admit + release (rule, level, flow, global)', REQUESTS, (i) => {
  const a = fc.admit(reqs[i & 4095] as RequestAttributes);
  if (a instanceof Promise || !a.admitted) throw new Error('expected an immediate admission');
  a.release();
});
