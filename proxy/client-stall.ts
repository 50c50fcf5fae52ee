// A response blocked only on its client's reading is not executing: once it has waited for 'drain'
// longer than CLIENT_STALL_MS, the hook registered for it (forward.ts: give the flow-control seat
// back) runs, once. Writers still wait for the drain (memory stays bounded by backpressure); only
// the seat is returned, so that one user's stalled readers cannot hold every seat of its level
// until the write-stall guard cuts them.

/**
 * How long a response may wait for its client to take bytes before it counts as stalled. A client
 * reading normally drains the socket buffers within milliseconds; 1 s is long enough not to return
 * the seats of merely slow readers, short enough that stalled ones hold seats for 1 s, not for the
 * write-stall timeout (60 s by default).
 */
export const CLIENT_STALL_MS = 1000;

/** Timers, injectable for tests. */
export interface StallTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
}

const realTimers: StallTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

interface Hook {
  fn: (() => void) | undefined;
  timer: unknown;
  ms: number;
  timers: StallTimers;
}

const hooks = new WeakMap<object, Hook>();

/**
 * Registers `fn`, run once when `res` has waited for 'drain' longer than `ms`. Returns the
 * unregistration (idempotent): after it, or after `fn` ran, nothing more happens for `res`.
 */
export function onClientStall(res: object, fn: () => void, ms = CLIENT_STALL_MS, timers: StallTimers = realTimers): () => void {
  const old = hooks.get(res);
  if (old?.timer !== undefined) old.timers.clearTimeout(old.timer);
  const hook: Hook = { fn, timer: undefined, ms, timers };
  hooks.set(res, hook);
  return () => {
    if (hooks.get(res) !== hook) return;
    hooks.delete(res);
    if (hook.timer !== undefined) timers.clearTimeout(hook.timer);
    hook.timer = undefined;
    hook.fn = undefined;
  };
}

/** The writer of `res` starts waiting for 'drain' (its write returned false). */
export function waitingForDrain(res: object): void {
  const hook = hooks.get(res);
  if (!hook || hook.fn === undefined || hook.timer !== undefined) return;
  hook.timer = hook.timers.setTimeout(() => {
    hook.timer = undefined;
    const fn = hook.fn;
    hook.fn = undefined;
    if (hooks.get(res) === hook) hooks.delete(res);
    fn?.();
  }, hook.ms);
}

/** The wait of the writer of `res` ended ('drain', or the response closed). */
export function drained(res: object): void {
  const hook = hooks.get(res);
  if (!hook || hook.timer === undefined) return;
  hook.timers.clearTimeout(hook.timer);
  hook.timer = undefined;
}
