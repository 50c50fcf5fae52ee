// Admission through every level a request maps to: its rule's level (with the per-flow limits
// inside it), then the global level for where it is served — readOnly or mutating for the apiserver
// (like --max-requests-inflight / --max-mutating-requests-inflight), cache for reads the proxy
// answers itself. Exempt levels skip everything. A request refused by the global level gives back
// what it took in its rule's level. The refusing level's congestion bucket chooses the Retry-After.
import { costOf, type Cost } from './cost.js';
import type { Clock } from './clock.js';
import type { RequestAttributes } from './attributes.js';
import type { FlowControlConfig, GlobalLevel, LevelSpec } from './config.js';
import { GLOBAL_LEVELS } from './config.js';
import { Level, type LevelGrant, type LevelResult, type RefusalReason } from './level.js';
import { RuleIndex } from './rules.js';

export interface Ticket {
  readonly admitted: true;
  readonly level: string;
  readonly rule: string;
  /** Gives back the seat (or watch slot); call once, when the request is done. */
  release(): void;
  /**
   * Gives back the seat and the tokens too: the request was not served as admitted (a read the
   * cache was to answer goes to the apiserver after all, and is admitted again as that).
   */
  refund(): void;
  /**
   * The request goes to be served elsewhere after all (a read the cache was to answer goes to the
   * apiserver): admitted as `a` now describes it, and charged once. In the same level and flow, the
   * tokens taken at arrival stand (only tokens the new cost needs beyond them are taken now, and any
   * surplus is given back), the seat is taken again at the new cost, and the global level is passed
   * again for where it is now served, and it is not counted as admitted a second time (a refusal is
   * counted, and gives back everything). In another level or flow (a reload moved it) it is given
   * back whole and admitted, and counted, anew. Replaces this ticket (instead of release or refund).
   */
  exchange(a: RequestAttributes): Admission | Promise<Admission>;
}

export interface Refusal {
  readonly admitted: false;
  /** The level that refused. */
  readonly level: string;
  readonly rule: string;
  readonly reason: RefusalReason;
  readonly retryAfterSeconds: number;
}

export type Admission = Ticket | Refusal;

/** What flow control reports as it works; the proxy turns it into metrics. */
export interface FlowControlObserver {
  admitted(level: string, rule: string, waitedMs: number): void;
  queued(level: string, rule: string): void;
  rejected(level: string, rule: string, reason: RefusalReason, retryAfterSeconds: number): void;
}

const KEEP: { readonly refund: boolean } = { refund: false };
const REFUND: { readonly refund: boolean } = { refund: true };

/** Rule name for requests no rule matched. */
export const NO_RULE = 'none';

export interface LevelStats {
  readonly level: string;
  readonly inflight: number;
  readonly watches: number;
  readonly queued: number;
  readonly flows: number;
  readonly tokens: number | undefined;
  readonly congestionTokens: number;
}

function sameSpec(a: LevelSpec, b: LevelSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class FlowControl {
  readonly #clock: Clock;
  readonly #observer: FlowControlObserver | undefined;
  #config: FlowControlConfig;
  #rules: RuleIndex;
  #levels = new Map<string, Level>();
  #global: Record<GlobalLevel, Level>;

  constructor(config: FlowControlConfig, clock: Clock, observer?: FlowControlObserver) {
    this.#clock = clock;
    this.#observer = observer;
    this.#config = config;
    this.#rules = new RuleIndex(config.rules);
    for (const spec of config.levels) this.#levels.set(spec.name, new Level(spec, config.retryAfter, clock));
    this.#global = {
      readOnly: new Level(config.global.readOnly, config.retryAfter, clock),
      mutating: new Level(config.global.mutating, config.retryAfter, clock),
      cache: new Level(config.global.cache, config.retryAfter, clock),
    };
  }

  get config(): FlowControlConfig {
    return this.#config;
  }

  /**
   * Applies a new configuration. Levels whose configuration is unchanged keep their state (tokens,
   * flows, queue); changed ones take the new limits in place; removed ones finish what they hold.
   */
  reload(config: FlowControlConfig): void {
    const retryAfterChanged = JSON.stringify(config.retryAfter) !== JSON.stringify(this.#config.retryAfter);
    const levels = new Map<string, Level>();
    for (const spec of config.levels) {
      const old = this.#levels.get(spec.name);
      if (old && (retryAfterChanged || !sameSpec(old.spec, spec))) old.reconfigure(spec, config.retryAfter);
      levels.set(spec.name, old ?? new Level(spec, config.retryAfter, this.#clock));
    }
    for (const g of GLOBAL_LEVELS) {
      const spec = config.global[g];
      if (retryAfterChanged || !sameSpec(this.#global[g].spec, spec)) this.#global[g].reconfigure(spec, config.retryAfter);
    }
    this.#levels = levels;
    this.#rules = new RuleIndex(config.rules);
    this.#config = config;
  }

  /** The rule (name) and level a request maps to. */
  classify(a: RequestAttributes): { rule: string; level: Level } {
    const rule = this.#rules.match(a);
    const name = rule?.spec.level ?? this.#config.defaultLevel;
    const level = this.#levels.get(name);
    // The parser checks every reference; a level is always there.
    if (!level) throw new Error(`flow control: no level "${name}"`);
    return { rule: rule?.spec.name ?? NO_RULE, level };
  }

  #globalFor(a: RequestAttributes): Level {
    if (a.source === 'cache') return this.#global.cache;
    return a.readOnly ? this.#global.readOnly : this.#global.mutating;
  }

  /** Admits the request through every level it maps to, waiting in queues where allowed. */
  admit(a: RequestAttributes): Admission | Promise<Admission> {
    const started = this.#clock.now();
    const { rule, level } = this.classify(a);
    const cost = costOf(a, this.#config.cost);
    const flow = flowKey(a, level.spec.flowBy);
    return this.#through(level, rule, flow, cost, a, level.acquire(flow, cost, a.longRunning), started, true, 0);
  }

  /**
   * The rest of an admission once the rule's level has answered: the global level, then the ticket.
   * `kept`: tokens of `cost` already taken in the rule's level (an exchange), given back on a refusal.
   */
  #through(level: Level, rule: string, flow: string, cost: Cost, a: RequestAttributes, first: LevelResult | Promise<LevelResult>, started: number, count: boolean, kept: number): Admission | Promise<Admission> {
    if (level.exempt) return this.#after(first as LevelResult, undefined, rule, flow, cost, started, count);
    const global = this.#globalFor(a);
    const next = (r: LevelResult): Admission | Promise<Admission> => {
      if (r.queued) this.#observer?.queued(level.name, rule);
      if (!r.ok) {
        if (kept > 0) level.release({ level, flow, cost: { tokens: kept, seats: 0 }, longRunning: false }, REFUND);
        return this.#after(r, undefined, rule, flow, cost, started, count);
      }
      // The grant records the whole cost (an exchange may have taken only part of its tokens now).
      const inner: LevelGrant = { ...r.grant, cost };
      const second = global.acquire(level.name, cost, a.longRunning);
      return second instanceof Promise ? second.then((s) => this.#after(s, inner, rule, flow, cost, started, count)) : this.#after(second, inner, rule, flow, cost, started, count);
    };
    return first instanceof Promise ? first.then(next) : next(first);
  }

  #after(r: LevelResult, inner: LevelGrant | undefined, rule: string, flow: string, cost: Cost, started: number, count: boolean): Admission {
    if (r.queued && inner) this.#observer?.queued(r.ok ? r.grant.level.name : r.level.name, rule);
    if (!r.ok) {
      // Refused further on: what the request took in its own level is given back.
      if (inner) inner.level.release(inner, REFUND);
      this.#observer?.rejected(r.level.name, rule, r.reason, r.retryAfterSeconds);
      return { admitted: false, level: r.level.name, rule, reason: r.reason, retryAfterSeconds: r.retryAfterSeconds };
    }
    // Exempt levels pass no global level: their own grant is then the outer one.
    const outer = inner ? r.grant : { ...r.grant, cost };
    const own = inner ?? outer;
    const levelName = own.level.name;
    if (count) this.#observer?.admitted(levelName, rule, this.#clock.now() - started);
    let released = false;
    const release = (o: typeof KEEP) => {
      if (released) return;
      released = true;
      outer.level.release(outer, o);
      if (inner) inner.level.release(inner, o);
    };
    const exchange = (a: RequestAttributes): Admission | Promise<Admission> => {
      if (released) throw new Error('flow control: exchange of a ticket already given back');
      released = true;
      return this.#exchange(own, inner ? outer : undefined, flow, a);
    };
    return { admitted: true, level: levelName, rule, release: () => release(KEEP), refund: () => release(REFUND), exchange };
  }

  /**
   * Re-admits a request as `a` now describes it, charging it once: see Ticket.exchange. The tokens
   * kept were taken when the request arrived, so its flow's bucket refills from that moment, exactly
   * as if it had been admitted as what it costs now in the first place.
   */
  #exchange(own: LevelGrant, global: LevelGrant | undefined, flow: string, a: RequestAttributes): Admission | Promise<Admission> {
    const started = this.#clock.now();
    global?.level.release(global, REFUND);
    const { rule, level } = this.classify(a);
    const cost = costOf(a, this.#config.cost);
    const newFlow = flowKey(a, level.spec.flowBy);
    if (level !== own.level || newFlow !== flow || a.longRunning !== own.longRunning) {
      own.level.release(own, REFUND);
      return this.admit(a);
    }
    const kept = Math.min(own.cost.tokens, cost.tokens);
    own.level.release({ ...own, cost: { tokens: own.cost.tokens - kept, seats: own.cost.seats } }, REFUND);
    const rest: Cost = { tokens: cost.tokens - kept, seats: cost.seats };
    return this.#through(level, rule, flow, cost, a, level.acquire(flow, rest, a.longRunning), started, false, kept);
  }

  stats(): LevelStats[] {
    const out: LevelStats[] = [];
    for (const l of [...GLOBAL_LEVELS.map((g) => this.#global[g]), ...this.#levels.values()]) out.push({ level: l.name, ...l.stats() });
    return out;
  }
}

/** What a flow is in a level: the user (or, unknown, the credential), the UserAgent or the namespace. */
export function flowKey(a: RequestAttributes, by: LevelSpec['flowBy']): string {
  switch (by) {
    case 'user':
      return a.user ?? a.credential;
    case 'userAgent':
      return a.userAgent;
    case 'namespace':
      return a.namespace;
  }
}
