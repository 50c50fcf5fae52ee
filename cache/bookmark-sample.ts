// A bookmark of the resource's type, as the apiserver writes it, asked for right away: watches
// served from the cache send bookmarks in the apiserver's exact shape, which depends on the type
// (its zero-valued fields), so the cache learns it from the apiserver.
import type { Logger } from 'pino';
import type { CacheUpstream } from './upstream.js';
import { LineSplitter } from './line-splitter.js';
import { watchEventObject } from './json-scan.js';
import { eventResourceVersion } from './watch-event-line.js';

/**
 * Asks the apiserver for one bookmark: a watch-list whose label selector matches nothing ends its
 * (empty) initial events with a bookmark. `onSample` gets its object, without the
 * initial-events-end annotation. Failures are only logged: the main watch's bookmarks are samples
 * too.
 */
export async function fetchBookmarkSample(upstream: CacheUpstream, path: string, rv: bigint, signal: AbortSignal, log: Logger, resource: string, onSample: (object: Buffer) => void): Promise<void> {
  const abort = new AbortController();
  const onStop = () => abort.abort();
  signal.addEventListener('abort', onStop, { once: true });
  try {
    const q = `watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=${rv}` +
      `&labelSelector=${encodeURIComponent('kube-cache-proxy.invalid/none=none')}&timeoutSeconds=10`;
    const res = await upstream.get(`${path}?${q}`, abort.signal, { longRunning: true });
    if (res.statusCode !== 200) return;
    const lines = new LineSplitter();
    for await (const chunk of res.body) {
      for (const line of lines.push(chunk as Buffer)) {
        if (eventResourceVersion(line).type !== 'BOOKMARK') continue;
        const obj = watchEventObject(line).toString('utf8').replace(',"annotations":{"k8s.io/initial-events-end":"true"}', '');
        onSample(Buffer.from(obj));
        return;
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) log.debug({ resource, err: String(err) }, 'bookmark sample failed');
  } finally {
    signal.removeEventListener('abort', onStop);
    abort.abort();
  }
}
