// Admission through every level a request maps to: its rule's level (with the per-flow limits
// inside it), then the global level for where it is served — readOnly or mutating for the apiserver
// (like --max-requests-inflight / --max-mutating-requests-inflight), cache for reads the proxy
// answers itself. Exempt levels skip everything. A request refused by the global level gives back
// what it took in its rule's level. The refusing level's congestion bucket chooses the Retry-After.
import { costOf } from './cost.js';
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
    const first = level.acquire(flow, cost, a.longRunning);
    if (level.exempt) return this.#after(first as LevelResult, undefined, rule, started);
    const global = this.#globalFor(a);
    const next = (r: LevelResult): Admission | Promise<Admission> => {
      if (r.queued) this.#observer?.queued(level.name, rule);
      if (!r.ok) return this.#after(r, undefined, rule, started);
      const second = global.acquire(level.name, cost, a.longRunning);
      return second instanceof Promise ? second.then((s) => this.#after(s, r.grant, rule, started)) : this.#after(second, r.grant, rule, started);
    };
    return first instanceof Promise ? first.then(next) : next(first);
  }

  #after(r: LevelResult, inner: LevelGrant | undefined, rule: string, started: number): Admission {
    if (r.queued && inner) this.#observer?.queued(r.ok ? r.grant.level.name : r.level.name, rule);
    if (!r.ok) {
      // Refused further on: what the request took in its own level is given back.
      if (inner) inner.level.release(inner, REFUND);
      this.#observer?.rejected(r.level.name, rule, r.reason, r.retryAfterSeconds);
      return { admitted: false, level: r.level.name, rule, reason: r.reason, retryAfterSeconds: r.retryAfterSeconds };
    }
    const outer = r.grant;
    const levelName = (inner ?? outer).level.name;
    this.#observer?.admitted(levelName, rule, this.#clock.now() - started);
    let released = false;
    const release = (o: typeof KEEP) => {
      if (released) return;
      released = true;
      outer.level.release(outer, o);
      if (inner) inner.level.release(inner, o);
    };
    return { admitted: true, level: levelName, rule, release: () => release(KEEP), refund: () => release(REFUND) };
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
