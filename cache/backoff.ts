// How a Reflector waits after a failed LIST or WATCH: capped exponential backoff with jitter, started
// over after a watch that was healthy, and a sleep that a stop cuts short.

/**
 * A main watch open this long was healthy, even on a quiet resource that delivered nothing; one
 * that fails sooner (an apiserver accepting and dropping watches) keeps backing off.
 */
const HEALTHY_WATCH_MS = 1_000;

/**
 * Whether a watch that just failed was healthy: it delivered events or bookmarks, or stayed open a
 * while (`openedAt`: when it was answered with 200, 0 if it never was). Its failure then starts the
 * backoff over (else failures from an earlier outage would delay the reconnect by up to 15 s, while
 * every consistent read waits out its budget).
 */
export function watchWasHealthy(delivered: boolean, openedAt: number): boolean {
  return delivered || (openedAt > 0 && Date.now() - openedAt >= HEALTHY_WATCH_MS);
}

/** The wait after the `failures`-th failure in a row (from 1): 250 ms doubling up to 10 s, ×[0.5, 1.5). */
export function backoffDelayMs(failures: number): number {
  return Math.min(10_000, 250 * 2 ** Math.min(failures - 1, 6)) * (0.5 + Math.random());
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
export const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
