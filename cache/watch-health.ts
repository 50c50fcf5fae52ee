// Is a reflector's main watch alive, and is its resource in touch with the apiservers? Pure
// decisions over the times things were heard, with the clock passed in (tests drive it by hand).
//
// Stalls. An upstream connection can die silently: kept open, no bytes either way (a dead peer
// behind a NAT or load balancer, a hung apiserver). Nothing on the connection tells, so two signals
// from elsewhere do:
// - "behind": a progress watch (progress-watch.ts) delivered events the main watch has not applied.
//   The apiserver has them, and the main watch would have delivered them within milliseconds; past
//   `behindDeadlineMs` the main watch is stuck.
// - "silent": the main watch has delivered no byte for `silentDeadlineMs` while no progress watch
//   proved the store current in that time either. Apiservers send a watch bookmark about once a
//   minute, but only once the resource's watch cache has moved: a live watch of a quiet resource
//   can be silent for minutes (measured: none in 2 min). While progress watches prove the store
//   current, such a connection loses nothing, and the first event it misses shows up as "behind";
//   "silent" is the backstop when progress watches are off or failing.
//
// Staleness. A resource is in touch while its main watch is open and not stalled, or while it heard
// from an apiserver (an event, a bookmark, a progress watch's bookmark, a LIST) within
// `staleAfterMs`. Out of touch for longer, it is stale: its store may miss changes the apiservers
// have made, so it must not answer reads that take any state (resourceVersion=0) or start new
// watches. It stays stale until it has caught up: its main watch open again and a bookmark (of the
// main watch or a progress watch) received since, proving every event up to it applied; or a
// relist, which replaces the store with the apiserver's current state.
//
// Refused. An apiserver that answers the proxy's own LIST, main watch or progress watch with 401 or
// 403 (its credentials expired, its RBAC binding removed) is not keeping the store current even
// while an older main watch still delivers events: the next LIST or watch will be refused too. Two
// refusals in a row with no success between put the resource out of touch from the first one, open
// watch or not; any LIST, main watch or progress watch answered 200 ends it.

export interface WatchHealthOptions {
  readonly staleAfterMs: number;
  readonly behindDeadlineMs: number;
  readonly silentDeadlineMs: number;
}

export type StallReason = 'behind' | 'silent';

/** The deadlines for a reflector whose progress watches run every `bookmarkIntervalMs` (0: none). */
export function watchHealthOptions(staleAfterMs: number, bookmarkIntervalMs: number): WatchHealthOptions {
  return {
    staleAfterMs,
    // Two apiservers' watch caches can be a moment apart on a busy machine; several progress
    // intervals, and never less than a few seconds.
    behindDeadlineMs: Math.max(4_000, 8 * bookmarkIntervalMs),
    silentDeadlineMs: 75_000,
  };
}

interface Behind {
  readonly since: number;
  /** The progress watch's last event: once the main watch has applied it, this evidence is answered. */
  readonly until: bigint;
}

export class WatchHealth {
  readonly #o: WatchHealthOptions;
  #open = false;
  #openedAt = 0;
  #lastByte = 0;
  /** Last time anything came from an apiserver (undefined: never, before the first LIST). */
  #lastHeard: number | undefined;
  /** Last time a bookmark proved the store current. */
  #lastCurrent = Number.NEGATIVE_INFINITY;
  #currentSinceOpen = false;
  #behind: Behind[] = [];
  #stale = false;
  /** Since when the proxy's own requests are refused (401/403), and how often in a row. */
  #refused: { readonly since: number; readonly code: number; count: number } | undefined;

  constructor(o: WatchHealthOptions) {
    this.#o = o;
  }

  get options(): WatchHealthOptions {
    return this.#o;
  }

  /**
   * A LIST completed: the store is a fresh one, current as of a quorum read just now, so it has
   * caught up whatever it missed; earlier evidence is void.
   */
  listed(now: number): void {
    this.#refused = undefined;
    this.#behind = [];
    this.#stale = false;
    this.heard(now);
  }

  /** The main watch was answered 200. */
  opened(now: number): void {
    this.#refused = undefined;
    this.#open = true;
    this.#openedAt = now;
    this.#lastByte = now;
    this.#currentSinceOpen = false;
    this.heard(now);
  }

  /** The main watch delivered bytes. */
  bytes(now: number): void {
    this.#lastByte = now;
  }

  /** The main watch ended (cleanly or not): in touch until now, unless it had stalled. */
  closed(now: number): void {
    if (this.#open && this.stall(now) === undefined) this.heard(now);
    this.#open = false;
  }

  /** Something arrived from an apiserver: an event, a bookmark, a progress watch's bookmark. */
  heard(now: number): void {
    if (this.#lastHeard === undefined || now > this.#lastHeard) this.#lastHeard = now;
  }

  /** A LIST, main watch or progress watch was answered 401 or 403. */
  refused(now: number, code: number): void {
    if (this.#refused) this.#refused.count++;
    else this.#refused = { since: now, code, count: 1 };
    // Catching up afterwards takes a bookmark received after the refusals ended.
    this.#currentSinceOpen = false;
  }

  /** A progress watch was answered 200: the proxy's credentials are accepted again. */
  accepted(now: number): void {
    this.#refused = undefined;
    this.heard(now);
  }

  /** The status code of repeated refusals (401 or 403) while they last; undefined otherwise. */
  get refusedWith(): number | undefined {
    return this.#refused && this.#refused.count >= 2 ? this.#refused.code : undefined;
  }

  /** A bookmark proved every event up to it applied (the main watch's, or a progress watch's whose events were all applied). */
  current(now: number): void {
    this.heard(now);
    this.#lastCurrent = now;
    if (this.#open) this.#currentSinceOpen = true;
  }

  /** A progress watch delivered events up to `until` that the main watch has not applied. */
  behind(now: number, until: bigint): void {
    this.heard(now);
    this.#behind.push({ since: now, until });
  }

  /** The main watch applied every event up to `rv`. */
  applied(rv: bigint): void {
    if (this.#behind.length > 0) this.#behind = this.#behind.filter((b) => b.until > rv);
  }

  /** Whether the open main watch is stuck, and by which signal. */
  stall(now: number): StallReason | undefined {
    if (!this.#open) return undefined;
    for (const b of this.#behind) {
      // Evidence from before this watch opened counts from its opening: it gets its own deadline.
      if (now - Math.max(b.since, this.#openedAt) > this.#o.behindDeadlineMs) return 'behind';
    }
    const d = this.#o.silentDeadlineMs;
    if (now - this.#lastByte > d && now - this.#lastCurrent > d) return 'silent';
    return undefined;
  }

  /** How long the resource has been out of touch (0 while in touch). */
  outOfTouchMs(now: number): number {
    if (this.#refused && this.refusedWith !== undefined) return Math.max(0, now - this.#refused.since);
    if (this.#open && this.stall(now) === undefined) return 0;
    if (this.#lastHeard === undefined) return 0;
    return Math.max(0, now - this.#lastHeard);
  }

  /** Stale: out of touch longer than staleAfterMs, and not caught up since. Call it as time passes. */
  stale(now: number): boolean {
    if (!this.#stale) {
      if (this.outOfTouchMs(now) > this.#o.staleAfterMs) this.#stale = true;
    } else if (this.#refused === undefined && this.#open && this.#currentSinceOpen && this.#behind.length === 0 && this.stall(now) === undefined) {
      this.#stale = false;
    }
    return this.#stale;
  }
}
