// The flowControl configuration: its types, and the parser that checks a document (parsed YAML or
// JSON, `unknown`) field by field. Errors name the field (`flowControl.levels[1].queue.length`).
import { DEFAULT_COST, type CostSpec } from './cost.js';
import { DEFAULT_RETRY_AFTER, type RetryAfterSpec } from './congestion.js';
import type { Source } from './attributes.js';

export interface QueueSpec {
  /** Requests waiting in the level at most; 0: no queue, refuse at once. */
  readonly length: number;
  /** Requests of one flow waiting at most. */
  readonly lengthPerFlow: number;
  readonly maxWaitSeconds: number;
}

export interface LimitSpec {
  /** Token bucket: tokens a second (with burst); both unset: no bucket. */
  readonly qps?: number | undefined;
  readonly burst?: number | undefined;
  /** Seats in flight (long-running requests hold none). */
  readonly maxInflight?: number | undefined;
  /** Long-running requests (watch, exec, attach, port-forward, logs, proxy) at once. */
  readonly maxWatches?: number | undefined;
}

export type FlowBy = 'user' | 'userAgent' | 'namespace';
export const FLOW_BY: readonly FlowBy[] = ['user', 'userAgent', 'namespace'];

export interface LevelSpec extends LimitSpec {
  readonly name: string;
  /** Not limited at all (system:masters, health checks). */
  readonly exempt: boolean;
  readonly queue: QueueSpec;
  /** What a flow is inside the level: fair queuing between flows, and perFlow limits for each. */
  readonly flowBy: FlowBy;
  readonly perFlow?: LimitSpec | undefined;
}

export type UserAgentMatch = { readonly prefix: string } | { readonly regex: string };

export interface RuleSpec {
  readonly name: string;
  readonly level: string;
  readonly userAgents?: readonly UserAgentMatch[] | undefined;
  readonly users?: readonly string[] | undefined;
  readonly groups?: readonly string[] | undefined;
  readonly verbs?: readonly string[] | undefined;
  /** `resource[.group][/subresource]`, or `*`. */
  readonly resources?: readonly string[] | undefined;
  readonly namespaces?: readonly string[] | undefined;
  /** Exact paths, or prefixes ending in `*`. */
  readonly nonResourceURLs?: readonly string[] | undefined;
  readonly source?: Source | undefined;
}

export const GLOBAL_LEVELS = ['readOnly', 'mutating', 'cache'] as const;
export type GlobalLevel = (typeof GLOBAL_LEVELS)[number];

export interface FlowControlConfig {
  readonly enabled: boolean;
  readonly retryAfter: RetryAfterSpec;
  readonly cost: CostSpec;
  /** readOnly and mutating guard the apiserver (like --max-requests-inflight and --max-mutating-requests-inflight); cache guards the proxy's own capacity for reads it answers. */
  readonly global: Readonly<Record<GlobalLevel, LevelSpec>>;
  readonly levels: readonly LevelSpec[];
  readonly rules: readonly RuleSpec[];
  /** The level of requests no rule matches. */
  readonly defaultLevel: string;
}

export class FlowControlConfigError extends Error {
  constructor(readonly field: string, what: string) {
    super(`${field}: ${what}`);
    this.name = 'FlowControlConfigError';
  }
}

type Obj = Record<string, unknown>;

function fail(field: string, what: string): never {
  throw new FlowControlConfigError(field, what);
}

function mapping(field: string, v: unknown, known: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, 'must be a mapping');
  for (const k of Object.keys(v)) if (!known.includes(k)) fail(`${field}.${k}`, `unknown field (known: ${known.join(', ')})`);
  return v as Obj;
}

function number(field: string, v: unknown, o: { min: number; integer?: boolean; above?: boolean }): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && (o.above ? v > o.min : v >= o.min) && (!o.integer || Number.isInteger(v));
  if (!ok) fail(field, `must be ${o.integer ? 'a whole number' : 'a number'} ${o.above ? '>' : '>='} ${o.min}`);
  return v as number;
}

function optNumber(field: string, v: unknown, o: { min: number; integer?: boolean; above?: boolean }): number | undefined {
  return v === undefined ? undefined : number(field, v, o);
}

function string(field: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') fail(field, 'must be a non-empty string');
  return v;
}

function strings(field: string, v: unknown, allowEmptyItems = false): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0) fail(field, 'must be a non-empty list of strings');
  return v.map((x: unknown, i) => {
    if (typeof x !== 'string' || (x === '' && !allowEmptyItems)) fail(`${field}[${i}]`, 'must be a non-empty string');
    return x as string;
  });
}

function limits(field: string, o: Obj): LimitSpec {
  const qps = optNumber(`${field}.qps`, o['qps'], { min: 0, above: true });
  let burst = optNumber(`${field}.burst`, o['burst'], { min: 1 });
  if (burst !== undefined && qps === undefined) fail(`${field}.burst`, 'needs qps');
  if (qps !== undefined && burst === undefined) burst = Math.max(1, Math.ceil(qps));
  return {
    qps, burst,
    maxInflight: optNumber(`${field}.maxInflight`, o['maxInflight'], { min: 1, integer: true }),
    maxWatches: optNumber(`${field}.maxWatches`, o['maxWatches'], { min: 0, integer: true }),
  };
}

const LIMIT_FIELDS = ['qps', 'burst', 'maxInflight', 'maxWatches'];
const DEFAULT_QUEUE: QueueSpec = { length: 1000, lengthPerFlow: 1000, maxWaitSeconds: 10 };

function queue(field: string, v: unknown): QueueSpec {
  if (v === undefined) return DEFAULT_QUEUE;
  const o = mapping(field, v, ['length', 'lengthPerFlow', 'maxWaitSeconds']);
  const length = optNumber(`${field}.length`, o['length'], { min: 0, integer: true }) ?? DEFAULT_QUEUE.length;
  const lengthPerFlow = optNumber(`${field}.lengthPerFlow`, o['lengthPerFlow'], { min: 0, integer: true }) ?? length;
  const maxWaitSeconds = optNumber(`${field}.maxWaitSeconds`, o['maxWaitSeconds'], { min: 0 }) ?? DEFAULT_QUEUE.maxWaitSeconds;
  return { length, lengthPerFlow, maxWaitSeconds };
}

function level(field: string, v: unknown, name?: string): LevelSpec {
  const o = mapping(field, v, [...(name === undefined ? ['name'] : []), 'exempt', ...LIMIT_FIELDS, 'queue', 'flowBy', 'perFlow']);
  const exempt = o['exempt'] === undefined ? false : o['exempt'] === true ? true : o['exempt'] === false ? false : fail(`${field}.exempt`, 'must be true or false');
  const flowBy = o['flowBy'] ?? 'user';
  if (!FLOW_BY.includes(flowBy as FlowBy)) fail(`${field}.flowBy`, `must be one of ${FLOW_BY.join(', ')}`);
  const perFlow = o['perFlow'] === undefined ? undefined : limits(`${field}.perFlow`, mapping(`${field}.perFlow`, o['perFlow'], LIMIT_FIELDS));
  return {
    name: name ?? string(`${field}.name`, o['name']),
    exempt, ...limits(field, o), queue: queue(`${field}.queue`, o['queue']), flowBy: flowBy as FlowBy, perFlow,
  };
}

function userAgents(field: string, v: unknown): UserAgentMatch[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0) fail(field, 'must be a non-empty list of {prefix} or {regex}');
  return v.map((x: unknown, i): UserAgentMatch => {
    const f = `${field}[${i}]`;
    if (typeof x === 'string' && x !== '') return { prefix: x };
    const o = mapping(f, x, ['prefix', 'regex']);
    if ((o['prefix'] === undefined) === (o['regex'] === undefined)) fail(f, 'must have exactly one of prefix, regex');
    if (o['prefix'] !== undefined) return { prefix: string(`${f}.prefix`, o['prefix']) };
    const regex = string(`${f}.regex`, o['regex']);
    try {
      new RegExp(regex);
    } catch (err) {
      fail(`${f}.regex`, `not a valid regular expression: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { regex };
  });
}

const RULE_FIELDS = ['name', 'level', 'userAgents', 'users', 'groups', 'verbs', 'resources', 'namespaces', 'nonResourceURLs', 'source'];

function rule(field: string, v: unknown): RuleSpec {
  const o = mapping(field, v, RULE_FIELDS);
  const source = o['source'];
  if (source !== undefined && source !== 'cache' && source !== 'apiserver') fail(`${field}.source`, 'must be cache or apiserver');
  const r: RuleSpec = {
    name: string(`${field}.name`, o['name']),
    level: string(`${field}.level`, o['level']),
    userAgents: userAgents(`${field}.userAgents`, o['userAgents']),
    users: strings(`${field}.users`, o['users']),
    groups: strings(`${field}.groups`, o['groups']),
    verbs: strings(`${field}.verbs`, o['verbs']),
    resources: strings(`${field}.resources`, o['resources']),
    namespaces: strings(`${field}.namespaces`, o['namespaces'], true),
    nonResourceURLs: strings(`${field}.nonResourceURLs`, o['nonResourceURLs']),
    source: source as Source | undefined,
  };
  if (r.resources && r.nonResourceURLs) fail(field, 'resources and nonResourceURLs cannot be combined (a request is one or the other)');
  return r;
}

function retryAfter(field: string, v: unknown): RetryAfterSpec {
  const o = mapping(field, v, ['capacity', 'windowSeconds', 'thresholds', 'seconds']);
  const capacity = optNumber(`${field}.capacity`, o['capacity'], { min: 1, integer: true }) ?? DEFAULT_RETRY_AFTER.capacity;
  const windowSeconds = optNumber(`${field}.windowSeconds`, o['windowSeconds'], { min: 0, above: true }) ?? DEFAULT_RETRY_AFTER.windowSeconds;
  const list = (f: string, x: unknown, min: number, integer: boolean): number[] | undefined => {
    if (x === undefined) return undefined;
    if (!Array.isArray(x) || x.length === 0) fail(f, 'must be a non-empty list of numbers');
    return x.map((n: unknown, i) => number(`${f}[${i}]`, n, { min, integer }));
  };
  const thresholds = list(`${field}.thresholds`, o['thresholds'], 0, false) ?? DEFAULT_RETRY_AFTER.thresholds;
  const seconds = list(`${field}.seconds`, o['seconds'], 1, true) ?? DEFAULT_RETRY_AFTER.seconds;
  for (let i = 0; i < thresholds.length; i++) {
    if ((thresholds[i] ?? 0) > 1) fail(`${field}.thresholds[${i}]`, 'must be a fraction of capacity <= 1');
    if (i > 0 && (thresholds[i] ?? 0) >= (thresholds[i - 1] ?? 0)) fail(`${field}.thresholds[${i}]`, 'thresholds must be descending');
  }
  if (seconds.length !== thresholds.length + 1) fail(`${field}.seconds`, `must have one value more than thresholds (${thresholds.length + 1})`);
  return { capacity, windowSeconds, thresholds, seconds };
}

function cost(field: string, v: unknown): CostSpec {
  const o = mapping(field, v, ['objectsPerToken', 'maxSeats']);
  return {
    objectsPerToken: optNumber(`${field}.objectsPerToken`, o['objectsPerToken'], { min: 1 }) ?? DEFAULT_COST.objectsPerToken,
    maxSeats: optNumber(`${field}.maxSeats`, o['maxSeats'], { min: 1, integer: true }) ?? DEFAULT_COST.maxSeats,
  };
}

/**
 * Checks a flowControl document. Sections left out take the defaults of `base`; levels and rules
 * are replaced as a whole (a document that lists levels and no rules has no rules).
 */
export function parseFlowControlConfig(v: unknown, base: FlowControlConfig, field = 'flowControl'): FlowControlConfig {
  if (v === undefined || v === null) return base;
  const o = mapping(field, v, ['enabled', 'retryAfter', 'cost', 'global', 'levels', 'rules', 'defaultLevel']);
  const enabled = o['enabled'] === undefined ? base.enabled : typeof o['enabled'] === 'boolean' ? o['enabled'] : fail(`${field}.enabled`, 'must be true or false');
  let global = base.global;
  if (o['global'] !== undefined) {
    const g = mapping(`${field}.global`, o['global'], GLOBAL_LEVELS);
    const one = (k: GlobalLevel) => (g[k] === undefined ? base.global[k] : level(`${field}.global.${k}`, g[k], k));
    global = { readOnly: one('readOnly'), mutating: one('mutating'), cache: one('cache') };
  }
  const levels = o['levels'] === undefined ? base.levels : listOf(`${field}.levels`, o['levels'], (f, x) => level(f, x));
  // The default rules name the default levels: a document with levels of its own starts with no rules.
  const rules = o['rules'] !== undefined ? listOf(`${field}.rules`, o['rules'], rule, true) : o['levels'] === undefined ? base.rules : [];
  const defaultLevel = o['defaultLevel'] === undefined ? base.defaultLevel : string(`${field}.defaultLevel`, o['defaultLevel']);
  const config: FlowControlConfig = {
    enabled, retryAfter: o['retryAfter'] === undefined ? base.retryAfter : retryAfter(`${field}.retryAfter`, o['retryAfter']),
    cost: o['cost'] === undefined ? base.cost : cost(`${field}.cost`, o['cost']), global, levels, rules, defaultLevel,
  };
  checkReferences(field, config);
  return config;
}

function listOf<T>(field: string, v: unknown, item: (f: string, x: unknown) => T, allowEmpty = false): T[] {
  if (!Array.isArray(v) || (!allowEmpty && v.length === 0)) fail(field, `must be a ${allowEmpty ? '' : 'non-empty '}list`);
  return v.map((x: unknown, i) => item(`${field}[${i}]`, x));
}

function checkReferences(field: string, c: FlowControlConfig): void {
  const names = new Set<string>();
  c.levels.forEach((l, i) => {
    if ((GLOBAL_LEVELS as readonly string[]).includes(l.name)) fail(`${field}.levels[${i}].name`, `"${l.name}" is a global level's name`);
    if (names.has(l.name)) fail(`${field}.levels[${i}].name`, `duplicate level "${l.name}"`);
    names.add(l.name);
  });
  const ruleNames = new Set<string>();
  c.rules.forEach((r, i) => {
    if (!names.has(r.level)) fail(`${field}.rules[${i}].level`, `no level named "${r.level}"`);
    if (ruleNames.has(r.name)) fail(`${field}.rules[${i}].name`, `duplicate rule "${r.name}"`);
    ruleNames.add(r.name);
  });
  if (!names.has(c.defaultLevel)) fail(`${field}.defaultLevel`, `no level named "${c.defaultLevel}"`);
}
