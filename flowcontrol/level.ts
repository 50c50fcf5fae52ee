// One level: its limits, per-flow limits inside it, and a bounded queue that is fair between flows
// (one FIFO per flow, served round-robin, so a flow that floods the level waits behind its own
// requests, not in front of everyone else's). A request passes when both its flow's limits and the
// level's allow it; otherwise it waits in the queue up to maxWaitSeconds, or is refused at once when
// the queue (or its flow's share of it) is full. Refusals take a token from the level's congestion
// bucket, which chooses the Retry-After.
import type { Cancel, Clock } from './clock.js';
import type { Cost } from './cost.js';
import type { LevelSpec } from './config.js';
import type { RetryAfterSpec } from './congestion.js';
import { CongestionBucket } from './congestion.js';
import { Limits, type Blocked } from './limits.js';

export type RefusalReason = 'queue_full' | 'queue_timeout' | 'watches';

export interface LevelGrant {
  readonly level: Level;
  readonly flow: string;
  readonly cost: Cost;
  readonly longRunning: boolean;
}

export type LevelResult =
  | { readonly ok: true; readonly grant: LevelGrant; readonly queued: boolean }
  | { readonly ok: false; readonly level: Level; readonly reason: RefusalReason; readonly retryAfterSeconds: number; readonly queued: boolean };

interface Waiter {
  readonly flow: string;
  readonly cost: Cost;
  readonly longRunning: boolean;
  readonly resolve: (r: LevelResult) => void;
  cancel: Cancel;
}

class Flow {
  readonly limits: Limits | undefined;
  readonly queue: Waiter[] = [];
  constructor(limits: Limits | undefined) {
    this.limits = limits;
  }
}

const FLOW_SWEEP_MIN = 1024;

export class Level {
  readonly name: string;
  #spec: LevelSpec;
  readonly #clock: Clock;
  readonly #limits: Limits;
  readonly #congestion: CongestionBucket;
  readonly #flows = new Map<string, Flow>();
  /** Flows with waiters, in round-robin order. */
  readonly #waiting = new Map<string, Flow>();
  #queued = 0;
  #wake: Cancel | undefined;
  #wakeAt = Infinity;
  #sweepAt = FLOW_SWEEP_MIN;

  constructor(spec: LevelSpec, retryAfter: RetryAfterSpec, clock: Clock) {
    this.name = spec.name;
    this.#spec = spec;
    this.#clock = clock;
    const now = clock.now();
    this.#limits = new Limits(spec.exempt ? {} : spec, now);
    this.#congestion = new CongestionBucket(retryAfter, now);
  }

  get spec(): LevelSpec {
    return this.#spec;
  }

  get exempt(): boolean {
    return this.#spec.exempt;
  }

  /** New limits in place: requests in flight, queued requests and bucket contents carry over. */
  reconfigure(spec: LevelSpec, retryAfter: RetryAfterSpec): void {
    const now = this.#clock.now();
    this.#spec = spec;
    this.#limits.reconfigure(spec.exempt ? {} : spec, now);
    this.#congestion.reconfigure(retryAfter, now);
    for (const [key, flow] of this.#flows) {
      if (spec.perFlow && flow.limits) flow.limits.reconfigure(spec.perFlow, now);
      else if (!!spec.perFlow !== !!flow.limits && flow.queue.length === 0 && (!flow.limits || flow.limits.idle(now))) this.#flows.delete(key);
    }
    this.#dispatch();
  }

  acquire(flowKey: string, cost: Cost, longRunning: boolean): LevelResult | Promise<LevelResult> {
    const flow = this.#flow(flowKey);
    const now = this.#clock.now();
    if (this.#spec.exempt) return this.#grant(flow, flowKey, cost, longRunning, now, false);
    // Arrivals do not overtake their flow's queue, nor a level queue that is waiting for capacity.
    if (flow.queue.length === 0 && this.#queued === 0) {
      const b = this.#blocked(flow, cost, longRunning, now);
      if (b === 0) return this.#grant(flow, flowKey, cost, longRunning, now, false);
      if (b === 'watches') return this.#refuse('watches', false, now);
    } else if (longRunning && this.#blocked(flow, cost, longRunning, now) === 'watches') {
      return this.#refuse('watches', false, now);
    }
    const q = this.#spec.queue;
    if (q.maxWaitSeconds <= 0 || this.#queued >= q.length || flow.queue.length >= q.lengthPerFlow) return this.#refuse('queue_full', false, now);
    return new Promise<LevelResult>((resolve) => {
      const w: Waiter = { flow: flowKey, cost, longRunning, resolve, cancel: () => {} };
      w.cancel = this.#clock.schedule(q.maxWaitSeconds * 1000, () => {
        const i = flow.queue.indexOf(w);
        if (i < 0) return;
        flow.queue.splice(i, 1);
        this.#queued--;
        if (flow.queue.length === 0) this.#waiting.delete(flowKey);
        this.#forgetIfIdle(flowKey, flow, this.#clock.now());
        resolve(this.#refuse('queue_timeout', true, this.#clock.now()));
      });
      flow.queue.push(w);
      this.#queued++;
      if (!this.#waiting.has(flowKey)) this.#waiting.set(flowKey, flow);
      this.#dispatch();
    });
  }

  /** Gives back what the grant holds; with `refund`, its tokens too. */
  release(g: LevelGrant, o: { readonly refund: boolean }): void {
    const now = this.#clock.now();
    this.#limits.release(g, o, now);
    const flow = this.#flows.get(g.flow);
    if (flow) {
      flow.limits?.release(g, o, now);
      this.#forgetIfIdle(g.flow, flow, now);
    }
    if (this.#queued > 0) this.#dispatch();
  }

  stats(): { inflight: number; watches: number; queued: number; flows: number; tokens: number | undefined; congestionTokens: number } {
    const now = this.#clock.now();
    return {
      inflight: this.#limits.inflight, watches: this.#limits.watches, queued: this.#queued, flows: this.#flows.size,
      tokens: this.#limits.tokens(now), congestionTokens: this.#congestion.available(now),
    };
  }

  #flow(key: string): Flow {
    let flow = this.#flows.get(key);
    if (!flow) {
      const perFlow = this.#spec.exempt ? undefined : this.#spec.perFlow;
      if (this.#flows.size >= this.#sweepAt) this.#sweep();
      flow = new Flow(perFlow ? new Limits(perFlow, this.#clock.now()) : undefined);
      this.#flows.set(key, flow);
    }
    return flow;
  }

  #blocked(flow: Flow, cost: Cost, longRunning: boolean, now: number): Blocked {
    const f = flow.limits ? flow.limits.blocked(cost, longRunning, now) : 0;
    if (f === 'seats' || f === 'watches') return f;
    const l = this.#limits.blocked(cost, longRunning, now);
    if (l === 'seats' || l === 'watches') return l;
    return Math.max(f, l);
  }

  #grant(flow: Flow, key: string, cost: Cost, longRunning: boolean, now: number, queued: boolean): LevelResult {
    flow.limits?.take(cost, longRunning, now);
    this.#limits.take(cost, longRunning, now);
    return { ok: true, grant: { level: this, flow: key, cost, longRunning }, queued };
  }

  #refuse(reason: RefusalReason, queued: boolean, now: number): LevelResult {
    return { ok: false, level: this, reason, retryAfterSeconds: this.#congestion.refuse(now), queued };
  }

  /**
   * Admits queued requests round-robin over flows while the level has capacity, in one pass: a flow
   * served goes to the back of the line (Map iteration visits it again later in the same pass); a
   * flow held back by its own limits is skipped. Schedules a wake-up for when tokens suffice.
   */
  #dispatch(): void {
    const now = this.#clock.now();
    let wait = Infinity;
    for (const [key, flow] of this.#waiting) {
      const head = flow.queue[0];
      if (!head) {
        this.#waiting.delete(key);
        continue;
      }
      const l = this.#limits.blocked(head.cost, head.longRunning, now);
      if (l === 'seats') {
        // The level is full: nothing passes until a release, which dispatches again.
        wait = Infinity;
        break;
      }
      if (l !== 0) {
        if (typeof l === 'number') {
          wait = Math.min(wait, l);
          break;
        }
        continue;
      }
      const f = flow.limits ? flow.limits.blocked(head.cost, head.longRunning, now) : 0;
      if (f !== 0) {
        if (typeof f === 'number') wait = Math.min(wait, f);
        continue;
      }
      flow.queue.shift();
      this.#queued--;
      head.cancel();
      this.#waiting.delete(key);
      if (flow.queue.length > 0) this.#waiting.set(key, flow);
      head.resolve(this.#grant(flow, key, head.cost, head.longRunning, now, true));
    }
    this.#scheduleWake(wait, now);
  }

  #scheduleWake(wait: number, now: number): void {
    if (!Number.isFinite(wait)) return;
    const at = now + Math.max(1, wait);
    if (this.#wake && this.#wakeAt <= at) return;
    this.#wake?.();
    this.#wakeAt = at;
    this.#wake = this.#clock.schedule(at - now, () => {
      this.#wake = undefined;
      this.#wakeAt = Infinity;
      this.#dispatch();
    });
  }

  #forgetIfIdle(key: string, flow: Flow, now: number): void {
    if (flow.queue.length === 0 && (!flow.limits || flow.limits.idle(now))) this.#flows.delete(key);
  }

  /** Forgets idle flows (their buckets refilled since) when the map has grown. */
  #sweep(): void {
    const now = this.#clock.now();
    for (const [key, flow] of this.#flows) this.#forgetIfIdle(key, flow, now);
    this.#sweepAt = Math.max(FLOW_SWEEP_MIN, this.#flows.size * 2);
  }
}
