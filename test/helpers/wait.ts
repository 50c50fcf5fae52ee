// Polling until a condition holds, for tests that wait on another process (a proxy, the apiserver).

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `f` every `everyMs` until it returns something other than undefined; throws after
 * `timeoutMs`, naming `what`.
 */
export async function waitFor<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Polls `f` every `everyMs` until it holds; fails naming `what` after `ms`. Returns the time it took. */
export async function until(what: string, f: () => Promise<boolean> | boolean, ms: number, everyMs = 100): Promise<number> {
  const started = Date.now();
  await waitFor(what, async () => ((await f()) ? true : undefined), ms, everyMs);
  return Date.now() - started;
}
