// flowcontrol/ with a manual clock: buckets, the Retry-After at its exact thresholds, nested levels,
// queues and their timeouts, fairness between flows, the cost model, rules and reloads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../flowcontrol/clock.js';
import { TokenBucket } from '../../flowcontrol/token-bucket.js';
import { CongestionBucket, DEFAULT_RETRY_AFTER, retryAfterFor } from '../../flowcontrol/congestion.js';
import { costOf, DEFAULT_COST } from '../../flowcontrol/cost.js';
import { FlowControl, type Admission, type Ticket } from '../../flowcontrol/flow-control.js';
import { parseFlowControlConfig, FlowControlConfigError, type FlowControlConfig } from '../../flowcontrol/config.js';
import { DEFAULT_FLOW_CONTROL } from '../../flowcontrol/defaults.js';
import { RuleIndex, compileRules, matchByScan } from '../../flowcontrol/rules.js';
import type { RequestAttributes } from '../../flowcontrol/attributes.js';

const attrs = (o: Partial<RequestAttributes> = {}): RequestAttributes => ({
  isResourceRequest: true, verb: 'list', apiGroup: '', resource: 'pods', subresource: '', namespace: 'default', name: '',
  path: '/api/v1/namespaces/default/pods', readOnly: true, longRunning: false, userAgent: 'test/1.0', user: undefined,
  groups: [], credential: 'credential:a', source: 'apiserver', ...o,
});

/** A config of one level `l` (plus `default`), every request of UserAgent prefix "t/" in it. */
function config(level: Record<string, unknown>, extra: Record<string, unknown> = {}): FlowControlConfig {
  return parseFlowControlConfig({
    global: { readOnly: { maxInflight: 1000 }, mutating: { maxInflight: 1000 }, cache: { maxInflight: 1000 } },
    levels: [{ name: 'l', ...level }, { name: 'default' }],
    rules: [{ name: 'r', level: 'l', userAgents: [{ prefix: 't/' }] }],
    defaultLevel: 'default',
    ...extra,
  }, DEFAULT_FLOW_CONTROL);
}

const settle = () => new Promise((r) => setImmediate(r));

function sync(p: Admission | Promise<Admission>): Admission {
  assert.ok(!(p instanceof Promise), 'decided at once');
  return p as Admission;
}

/** The admission once decided (a getter: assertions on an earlier read do not narrow later ones). */
function track(p: Admission | Promise<Admission>): { result(): Admission | undefined } {
  let result: Admission | undefined;
  if (p instanceof Promise) void p.then((a) => { result = a; });
  else result = p;
  return { result: () => result };
}

test('token bucket: refill over time, burst cap, debt for an expensive request', () => {
  const b = new TokenBucket({ qps: 10, burst: 5 }, 0);
  assert.equal(b.available(0), 5);
  for (let i = 0; i < 5; i++) {
    assert.equal(b.waitMs(1, 0), 0);
    b.take(1, 0);
  }
  assert.equal(b.waitMs(1, 0), 100);
  assert.equal(b.available(100), 1);
  assert.equal(b.available(10_000), 5, 'capped at burst');
  // A request costing more than the burst passes when the bucket is full and leaves it in debt.
  assert.equal(b.waitMs(20, 10_000), 0);
  b.take(20, 10_000);
  assert.equal(b.available(10_000), -15);
  assert.equal(b.waitMs(1, 10_000), 1600);
  b.refund(20, 10_000);
  assert.equal(b.available(10_000), 5);
});

test('Retry-After at the exact thresholds: > 1/2 → 1 s, > 1/4 → 2 s, > 1/8 → 4 s, else 8 s', () => {
  const s = DEFAULT_RETRY_AFTER;
  const cases: Array<[number, number]> = [
    [1024, 1], [513, 1], [512, 2], [257, 2], [256, 4], [129, 4], [128, 8], [1, 8], [0, 8],
  ];
  for (const [left, want] of cases) assert.equal(retryAfterFor(s, left), want, `left ${left}`);
  // Through the bucket: the value comes from what is left after taking.
  const c = new CongestionBucket(s, 0);
  let seen = new Map<number, number>();
  for (let i = 1; i <= 1024; i++) {
    const v = c.refuse(0);
    seen.set(v, (seen.get(v) ?? 0) + 1);
    const left = 1024 - i;
    assert.equal(v, left > 512 ? 1 : left > 256 ? 2 : left > 128 ? 4 : 8, `refusal ${i}`);
  }
  assert.deepEqual([...seen.entries()], [[1, 511], [2, 256], [4, 128], [8, 129]]);
  assert.equal(c.refuse(0), 8, 'empty: 8 s');
  // Refilled in full over the window: after 1 s a single refusal gets 1 s again.
  assert.equal(c.refuse(1000), 1);
  // Half a window refills half the capacity: 0 + 512 - 1 = 511 → 2 s.
  const d = new CongestionBucket(s, 0);
  for (let i = 0; i < 1024; i++) d.refuse(0);
  assert.equal(d.refuse(500), 2);
  // Configurable: a static Retry-After.
  const st = new CongestionBucket({ ...s, seconds: [1, 1, 1, 1] }, 0);
  seen = new Map();
  for (let i = 0; i < 2000; i++) seen.set(st.refuse(0), 1);
  assert.deepEqual([...seen.keys()], [1]);
});

test('cost model: objects returned by forwarded lists, 1 otherwise, probe cost for cache reads', () => {
  assert.deepEqual(costOf(attrs({ objects: 30_000 }), DEFAULT_COST), { tokens: 300, seats: 10 });
  assert.deepEqual(costOf(attrs({ objects: 250 }), DEFAULT_COST), { tokens: 3, seats: 3 });
  assert.deepEqual(costOf(attrs({ objects: 0 }), DEFAULT_COST), { tokens: 1, seats: 1 });
  assert.deepEqual(costOf(attrs({ objects: undefined }), DEFAULT_COST), { tokens: 1, seats: 1 });
  assert.deepEqual(costOf(attrs({ objects: 30_000, source: 'cache' }), DEFAULT_COST), { tokens: 1, seats: 1 });
  assert.deepEqual(costOf(attrs({ verb: 'get', objects: 30_000 }), DEFAULT_COST), { tokens: 1, seats: 1 });
  assert.deepEqual(costOf(attrs({ verb: 'watch', longRunning: true, objects: 500 }), DEFAULT_COST), { tokens: 5, seats: 0 });
  assert.deepEqual(costOf(attrs({ verb: 'watch', longRunning: true, source: 'cache' }), DEFAULT_COST), { tokens: 1, seats: 0 });
});

test('a level bucket: qps over time with no queue refuses the rest at once', () => {
  const clock = new ManualClock();
  const fc = new FlowControl(config({ qps: 50, burst: 1, queue: { length: 0 } }), clock);
  let ok = 0;
  let refused = 0;
  // 500 requests a second for 5 s, one every 2 ms.
  for (let t = 0; t < 5000; t += 2) {
    clock.advance(t - clock.now());
    const a = sync(fc.admit(attrs({ userAgent: 't/1' })));
    if (a.admitted) {
      ok++;
      a.release();
    } else refused++;
  }
  assert.ok(ok >= 249 && ok <= 251, `admitted ${ok}`);
  assert.equal(ok + refused, 2500);
});

test('in-flight limit with a queue: waiters admitted as seats free, in order, timing out after maxWait', async () => {
  const clock = new ManualClock();
  const fc = new FlowControl(config({ maxInflight: 2, queue: { length: 2, maxWaitSeconds: 1 } }), clock);
  const a1 = fc.admit(attrs({ userAgent: 't/1' })) as Ticket;
  const a2 = fc.admit(attrs({ userAgent: 't/1' })) as Ticket;
  assert.ok(a1.admitted && a2.admitted);
  const w1 = track(fc.admit(attrs({ userAgent: 't/1' })));
  const w2 = track(fc.admit(attrs({ userAgent: 't/1' })));
  const full = sync(fc.admit(attrs({ userAgent: 't/1' })));
  assert.ok(!full.admitted && full.reason === 'queue_full', 'queue of 2 is full');
  a1.release();
  await settle();
  assert.equal(w1.result()?.admitted, true, 'first waiter admitted when a seat frees');
  assert.equal(w2.result(), undefined);
  clock.advance(999);
  await settle();
  assert.equal(w2.result(), undefined);
  clock.advance(1);
  await settle();
  const timedOut = w2.result();
  assert.ok(timedOut && !timedOut.admitted && timedOut.reason === 'queue_timeout', 'timed out after 1 s');
  assert.equal(fc.stats().find((s) => s.level === 'l')?.queued, 0);
  assert.equal(clock.pending, 0, 'no timer left behind');
});

test('nested levels: the global level limits every rule level; a global refusal gives back the rule level\'s seat', async () => {
  const clock = new ManualClock();
  const fc = new FlowControl(parseFlowControlConfig({
    global: { readOnly: { maxInflight: 3, queue: { length: 0 } } },
    levels: [{ name: 'a', maxInflight: 2, queue: { length: 0 } }, { name: 'b', maxInflight: 2, queue: { length: 0 } }],
    rules: [{ name: 'a', level: 'a', userAgents: ['a/'] }, { name: 'b', level: 'b', userAgents: ['b/'] }],
    defaultLevel: 'a',
  }, DEFAULT_FLOW_CONTROL), clock);
  const admit = (ua: string) => fc.admit(attrs({ userAgent: ua })) as Admission;
  const admitCache = (ua: string) => fc.admit(attrs({ userAgent: ua, source: 'cache' })) as Admission;
  const t1 = admit('a/');
  const t2 = admit('a/');
  const t3 = admit('a/');
  assert.ok(t1.admitted && t2.admitted);
  assert.ok(!t3.admitted && t3.level === 'a', 'level a: 2 in flight');
  const t4 = admit('b/');
  assert.ok(t4.admitted);
  const t5 = admit('b/');
  assert.ok(!t5.admitted && t5.level === 'readOnly', 'global: 3 in flight');
  assert.equal(fc.stats().find((s) => s.level === 'b')?.inflight, 1, 'the refused request gave back its seat in b');
  t1.release();
  assert.ok(admit('b/').admitted);
  // readOnly is full now; a read the cache answers passes the cache level instead.
  assert.equal(fc.stats().find((s) => s.level === 'readOnly')?.inflight, 3);
  assert.ok(admitCache('a/').admitted, 'a cache read is not held by the readOnly level');
});

test('two flows in one level share it fairly, however much each offers', async () => {
  const clock = new ManualClock();
  const fc = new FlowControl(config({ qps: 100, burst: 1, flowBy: 'user', queue: { length: 1000, lengthPerFlow: 50, maxWaitSeconds: 10 } }), clock);
  const got = new Map<string, number>();
  const offer = (user: string) => {
    const p = fc.admit(attrs({ userAgent: 't/', credential: user }));
    const count = (a: Admission) => {
      if (a.admitted) {
        got.set(user, (got.get(user) ?? 0) + 1);
        a.release();
      }
    };
    if (p instanceof Promise) void p.then(count);
    else count(p);
  };
  // Flow A offers 400/s, flow B 100/s, for 5 s; the level passes 100/s.
  for (let t = 0; t < 5000; t++) {
    if (t % 10 === 0) offer('B');
    if (t % 10 === 0 || t % 10 === 2 || t % 10 === 5 || t % 10 === 7) offer('A');
    clock.advance(1);
    if (t % 50 === 0) await settle();
  }
  await settle();
  const a = got.get('A') ?? 0;
  const b = got.get('B') ?? 0;
  assert.ok(a + b >= 490 && a + b <= 510, `total ${a + b}`);
  assert.ok(Math.abs(a - b) <= 0.1 * (a + b), `A ${a}, B ${b}: not fair`);
});

test('per-flow limits inside a level: one flow at its limit does not hold back the others', async () => {
  const clock = new ManualClock();
  const fc = new FlowControl(config({ maxInflight: 100, flowBy: 'user', perFlow: { maxInflight: 1 }, queue: { length: 10, maxWaitSeconds: 5 } }), clock);
  const a1 = fc.admit(attrs({ userAgent: 't/', credential: 'A' })) as Ticket;
  assert.ok(a1.admitted);
  const a2 = track(fc.admit(attrs({ userAgent: 't/', credential: 'A' })));
  const b1 = track(fc.admit(attrs({ userAgent: 't/', credential: 'B' })));
  await settle();
  assert.equal(a2.result(), undefined, 'A waits for its own seat');
  assert.equal(b1.result()?.admitted, true, 'B passes beside it');
  a1.release();
  await settle();
  assert.equal(a2.result()?.admitted, true);
});

test('long-running requests hold no seat; maxWatches refuses at once', () => {
  const clock = new ManualClock();
  const fc = new FlowControl(config({ maxInflight: 1, maxWatches: 2, queue: { length: 10, maxWaitSeconds: 5 } }), clock);
  const w = (): Admission => fc.admit(attrs({ userAgent: 't/', verb: 'watch', longRunning: true })) as Admission;
  const w1 = w();
  const w2 = w();
  assert.ok(w1.admitted && w2.admitted);
  const w3 = w();
  assert.ok(!w3.admitted && w3.reason === 'watches');
  assert.ok((fc.admit(attrs({ userAgent: 't/' })) as Admission).admitted, 'watches took no seat');
  w1.release();
  assert.ok(w().admitted);
});

test('exempt levels are never limited, also not by the global level', () => {
  const clock = new ManualClock();
  const fc = new FlowControl(parseFlowControlConfig({
    global: { readOnly: { maxInflight: 1, queue: { length: 0 } } },
  }, DEFAULT_FLOW_CONTROL), clock);
  const masters = attrs({ user: 'admin', groups: ['system:masters'] });
  for (let i = 0; i < 100; i++) assert.ok((fc.admit(masters) as Admission).admitted);
  assert.equal(fc.classify(masters).level.name, 'exempt');
  assert.ok((fc.admit(attrs()) as Admission).admitted);
  const second = fc.admit(attrs()) as Admission;
  assert.ok(!second.admitted && second.level === 'readOnly');
});

test('default rules: control plane, kubelets per node, health checks, everyone else', () => {
  const fc = new FlowControl(DEFAULT_FLOW_CONTROL, new ManualClock());
  const level = (a: Partial<RequestAttributes>) => fc.classify(attrs(a)).level.name;
  assert.equal(level({ userAgent: 'kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc' }), 'control-plane');
  assert.equal(level({ userAgent: 'kube-scheduler/v1.37.2' }), 'control-plane');
  assert.equal(level({ user: 'system:kube-scheduler' }), 'control-plane');
  assert.equal(level({ userAgent: 'kubelet/v1.37.2 (linux/amd64) kubernetes/abc' }), 'kubelets');
  assert.equal(level({ user: 'system:node:n1', groups: ['system:nodes'] }), 'kubelets');
  assert.equal(level({ isResourceRequest: false, verb: 'get', path: '/readyz' }), 'exempt');
  assert.equal(level({ isResourceRequest: false, verb: 'get', path: '/version' }), 'default');
  assert.equal(level({ userAgent: 'kubectl/v1.37.2' }), 'default');
});

test('rules: first match wins, every field must match; the index agrees with a scan of 1,000 rules', () => {
  const rules = parseFlowControlConfig({
    levels: [{ name: 'x' }, { name: 'default' }],
    rules: [
      { name: 'ns', level: 'x', namespaces: ['kube-system'], verbs: ['get'] },
      { name: 'ua-re', level: 'x', userAgents: [{ regex: '^my-ctl/v[0-9]+' }], resources: ['configmaps', 'deployments.apps'] },
      { name: 'sub', level: 'x', resources: ['pods/log'] },
      { name: 'src', level: 'x', source: 'cache', verbs: ['list'] },
      { name: 'nr', level: 'x', nonResourceURLs: ['/metrics', '/debug/*'] },
      { name: 'u', level: 'x', users: ['alice'], groups: ['devs'] },
    ],
    defaultLevel: 'default',
  }, DEFAULT_FLOW_CONTROL).rules;
  const idx = new RuleIndex(rules);
  const name = (a: Partial<RequestAttributes>) => idx.match(attrs(a))?.spec.name;
  assert.equal(name({ namespace: 'kube-system', verb: 'get' }), 'ns');
  assert.equal(name({ namespace: 'kube-system', verb: 'list' }), undefined);
  assert.equal(name({ userAgent: 'my-ctl/v2', resource: 'deployments', apiGroup: 'apps', verb: 'create' }), 'ua-re');
  assert.equal(name({ userAgent: 'my-ctl/x', resource: 'configmaps' }), undefined);
  assert.equal(name({ resource: 'pods', subresource: 'log', verb: 'get' }), 'sub');
  assert.equal(name({ resource: 'pods', verb: 'get' }), undefined);
  assert.equal(name({ source: 'cache' }), 'src');
  assert.equal(name({ isResourceRequest: false, verb: 'get', path: '/debug/pprof' }), 'nr');
  assert.equal(name({ isResourceRequest: false, verb: 'get', path: '/metricsx' }), undefined);
  assert.equal(name({ user: 'alice', groups: ['devs'] }), 'u');
  assert.equal(name({ user: 'alice', groups: [] }), undefined, 'all fields must match');

  // 1,000 rules over verbs, resources, namespaces and user agents: the index and a scan agree.
  const verbs = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
  const resources = ['pods', 'configmaps', 'secrets', 'nodes', 'deployments.apps', 'leases.coordination.k8s.io', 'events'];
  const many = Array.from({ length: 1000 }, (_, i) => ({
    name: `r${i}`, level: 'x',
    ...(i % 7 !== 0 ? { verbs: [verbs[i % verbs.length] ?? 'get'] } : {}),
    ...(i % 5 !== 0 ? { resources: [resources[(i * 3) % resources.length] ?? 'pods'] } : {}),
    ...(i % 3 === 0 ? { namespaces: [`ns-${i % 50}`] } : {}),
    ...(i % 11 === 0 ? { userAgents: [{ prefix: `agent-${i % 13}/` }] } : {}),
  }));
  const big = new RuleIndex(many);
  const compiled = compileRules(many);
  let matched = 0;
  for (let i = 0; i < 3000; i++) {
    const [resource, group] = (resources[i % resources.length] ?? 'pods').split('.', 2) as [string, string | undefined];
    const a = attrs({
      verb: verbs[(i * 7) % verbs.length] ?? 'get', resource, apiGroup: group === undefined ? '' : resources[i % resources.length]?.slice(resource.length + 1) ?? '',
      namespace: `ns-${i % 60}`, userAgent: `agent-${i % 17}/1`,
    });
    const want = matchByScan(compiled, a);
    assert.equal(big.match(a)?.index, want, `request ${i}`);
    if (want !== undefined) matched++;
  }
  assert.ok(matched > 1000, `matched ${matched}`);
});

test('config: errors name the field; defaults fill what is left out', () => {
  const bad: Array<[unknown, string]> = [
    [{ levels: [{ name: 'a', qps: -1 }], defaultLevel: 'a' }, 'flowControl.levels[0].qps'],
    [{ levels: [{ name: 'a', queue: { length: 'x' } }], defaultLevel: 'a' }, 'flowControl.levels[0].queue.length'],
    [{ levels: [{ name: 'a', flowBy: 'pod' }], defaultLevel: 'a' }, 'flowControl.levels[0].flowBy'],
    [{ levels: [{ name: 'a' }], defaultLevel: 'b' }, 'flowControl.defaultLevel'],
    [{ rules: [{ name: 'r', level: 'nope' }] }, 'flowControl.rules[0].level'],
    [{ rules: [{ name: 'r', level: 'default', userAgents: [{ regex: '(' }] }] }, 'flowControl.rules[0].userAgents[0].regex'],
    [{ retryAfter: { thresholds: [0.5, 0.6], seconds: [1, 2, 3] } }, 'flowControl.retryAfter.thresholds[1]'],
    [{ retryAfter: { seconds: [1, 2] } }, 'flowControl.retryAfter.seconds'],
    [{ global: { readOnly: { maxInflight: 0 } } }, 'flowControl.global.readOnly.maxInflight'],
    [{ levels: [{ name: 'cache' }], defaultLevel: 'cache' }, 'flowControl.levels[0].name'],
    [{ bogus: 1 }, 'flowControl.bogus'],
  ];
  for (const [doc, field] of bad) {
    assert.throws(() => parseFlowControlConfig(doc, DEFAULT_FLOW_CONTROL), (err: unknown) => err instanceof FlowControlConfigError && err.field === field, JSON.stringify(doc));
  }
  assert.deepEqual(parseFlowControlConfig({}, DEFAULT_FLOW_CONTROL), DEFAULT_FLOW_CONTROL);
  const c = parseFlowControlConfig({ retryAfter: { seconds: [1, 1, 1, 1] }, levels: [{ name: 'a', qps: 5 }], defaultLevel: 'a', rules: [] }, DEFAULT_FLOW_CONTROL);
  assert.deepEqual(c.retryAfter.seconds, [1, 1, 1, 1]);
  assert.equal(c.levels[0]?.burst, 5, 'burst defaults to qps');
  assert.deepEqual(c.global, DEFAULT_FLOW_CONTROL.global);
});

test('reload: unchanged levels keep their state, changed ones take new limits in place', () => {
  const clock = new ManualClock();
  const doc = (lRate: number) => ({
    levels: [
      { name: 'l', qps: lRate, burst: 2 * lRate, queue: { length: 0 } },
      { name: 'other', qps: 1, burst: 1, queue: { length: 0 } },
      { name: 'default' },
    ],
    rules: [{ name: 'r', level: 'l', userAgents: ['t/'] }, { name: 'o', level: 'other', userAgents: ['o/'] }],
    defaultLevel: 'default',
  });
  const fc = new FlowControl(parseFlowControlConfig(doc(1), DEFAULT_FLOW_CONTROL), clock);
  const take = (ua: string) => sync(fc.admit(attrs({ userAgent: ua })));
  const held = take('t/');
  assert.ok(held.admitted);
  assert.ok(take('o/').admitted);
  assert.ok(!take('o/').admitted, 'other: its one token is spent');
  assert.ok(take('t/').admitted && !take('t/').admitted, 'l: two tokens spent');
  fc.reload(parseFlowControlConfig(doc(1000), DEFAULT_FLOW_CONTROL));
  assert.ok(!take('o/').admitted, 'the unchanged level was not reset');
  assert.equal(fc.stats().find((s) => s.level === 'l')?.inflight, 2, 'in-flight carries over');
  clock.advance(10);
  let n = 0;
  for (let i = 0; i < 20; i++) if (take('t/').admitted) n++;
  assert.ok(n >= 9, `l has the new rate at once (${n})`);
  held.release();
  assert.equal(fc.stats().find((s) => s.level === 'l')?.inflight, 1 + n);
});

test('refund: a ticket given back whole returns its tokens and seat in every level', () => {
  const clock = new ManualClock();
  const fc = new FlowControl(config({ qps: 1, burst: 1, maxInflight: 1, flowBy: 'user', perFlow: { qps: 1, burst: 1 }, queue: { length: 0 } }), clock);
  const t = sync(fc.admit(attrs({ userAgent: 't/', source: 'cache' })));
  assert.ok(t.admitted);
  assert.ok(!sync(fc.admit(attrs({ userAgent: 't/' }))).admitted, 'the token and the seat are taken');
  t.refund();
  const again = sync(fc.admit(attrs({ userAgent: 't/' })));
  assert.ok(again.admitted, 'the same request admitted again as served by the apiserver');
  again.release();
  assert.ok(!sync(fc.admit(attrs({ userAgent: 't/' }))).admitted, 'release keeps the tokens spent');
  t.refund();
  assert.equal(fc.stats().find((s) => s.level === 'l')?.inflight, 0, 'a second refund or release does nothing');
});

test('exchange: a cache read forwarded after all is charged once, its bucket refilling from its arrival, counted once', () => {
  const clock = new ManualClock();
  let admittedCount = 0;
  const observer = { admitted: () => { admittedCount++; }, queued: () => {}, rejected: () => {} };
  const fc = new FlowControl(config({ qps: 1, burst: 1, flowBy: 'user', queue: { length: 0 } }), clock, observer);
  const t = sync(fc.admit(attrs({ userAgent: 't/', source: 'cache' })));
  assert.ok(t.admitted);
  // The cache looks for 50 ms, then the read goes to the apiserver.
  clock.advance(50);
  const forwarded = sync(t.exchange(attrs({ userAgent: 't/', objects: 1 })));
  assert.ok(forwarded.admitted, 'the token paid on arrival stands');
  assert.equal(admittedCount, 1, 'one request, one admission');
  assert.equal(fc.stats().find((s) => s.level === 'readOnly')?.inflight, 1, 'now holds an apiserver seat');
  assert.equal(fc.stats().find((s) => s.level === 'cache')?.inflight, 0, 'and no cache seat');
  clock.advance(949);
  assert.ok(!sync(fc.admit(attrs({ userAgent: 't/' }))).admitted, '1 s after the arrival less 1 ms: no token yet');
  clock.advance(1);
  // Refunded and admitted again at 50 ms, the bucket would refill from there: not before 1050 ms.
  const next = sync(fc.admit(attrs({ userAgent: 't/' })));
  assert.ok(next.admitted, 'one second after the arrival the next token is there');
  forwarded.release();
  next.release();
  assert.equal(fc.stats().find((s) => s.level === 'l')?.inflight, 0);
  assert.throws(() => forwarded.exchange(attrs({ userAgent: 't/' })), /already given back/);
});

test('exchange: a dearer apiserver read takes only the tokens beyond those paid; a refusal gives all back', () => {
  const clock = new ManualClock();
  const fc = new FlowControl(config({ qps: 1, burst: 4, flowBy: 'user', queue: { length: 0 } }), clock);
  const t = sync(fc.admit(attrs({ userAgent: 't/', source: 'cache' })));
  assert.ok(t.admitted);
  // 250 objects: 3 tokens; 1 was paid on arrival, 2 more now, leaving 1 of the burst of 4.
  const dear = sync(t.exchange(attrs({ userAgent: 't/', objects: 250 })));
  assert.ok(dear.admitted);
  assert.equal(fc.stats().find((s) => s.level === 'l')?.tokens, 1);
  assert.equal(fc.stats().find((s) => s.level === 'l')?.inflight, 3, 'seats at the new cost');
  dear.refund();
  assert.equal(fc.stats().find((s) => s.level === 'l')?.tokens, 4, 'a refund gives back all 3 tokens');
  // Refused in its level when exchanged: the token paid on arrival comes back too.
  const u = sync(fc.admit(attrs({ userAgent: 't/', source: 'cache' })));
  assert.ok(u.admitted && sync(fc.admit(attrs({ userAgent: 't/' }))).admitted && sync(fc.admit(attrs({ userAgent: 't/' }))).admitted);
  assert.equal(fc.stats().find((s) => s.level === 'l')?.tokens, 1);
  const refused = sync(u.exchange(attrs({ userAgent: 't/', objects: 500 })));
  assert.ok(!refused.admitted, '4 more tokens than the 1 left');
  assert.equal(fc.stats().find((s) => s.level === 'l')?.tokens, 2, 'the refused request\'s arrival token given back');
});
