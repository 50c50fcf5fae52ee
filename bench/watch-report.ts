// The watch benchmark's Markdown summary (stdout and the "Latest watch results" section of
// bench/README.md).
import { bytesText, fmt } from './stats.js';
import type { ProxyMemory, Side, WatchBenchResult } from './watch-results.js';

function durationText(s: number): string {
  if (s < 90) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const row = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
const kib = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : `${(n / 1024).toFixed(1)} KiB`);
const cpu = (r: Readonly<Record<string, number>>, k: string) => fmt(r[k], 2);
const via = (s: Side) => (s === 'direct' ? 'direct' : 'proxy');
const recordText = (r: Readonly<Record<string, number>>) => (Object.keys(r).length ? Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ') : '–');

export function markdown(r: WatchBenchResult): string {
  const o = r.options;
  const L: string[] = [];
  L.push(`### ${o.nodes} nodes, ${o.pods} pods, ${o.watchers.join(' and ')} watchers — ${r.date}`, '');
  L.push('```sh', r.command, '```', '');
  L.push(`Proxy flags: ${o.proxyArgs.length ? o.proxyArgs.join(' ') : 'defaults (cache on)'}.`);
  L.push(`Proxy source: commit ${r.source.commit}${r.source.modified.length ? ` plus uncommitted changes in ${r.source.modified.length} file(s) of proxy/, cache/, indexes/ (${r.source.modified.map((m) => m.replace(/^\S+\s+/, '')).join(', ')})` : ''}.`);
  L.push(`Machine: ${r.machine.cores} × ${r.machine.cpuModel}, ${bytesText(r.machine.memoryBytes)} RAM, ${r.machine.os}; Node ${r.machine.node}; Kubernetes ${r.machine.kubernetes} ` +
    `(etcd, the apiserver, the proxy, the watch clients and the patcher share these cores; load average at start ${r.machine.loadAverageAtStart.join(' ')}).`);
  L.push(`Run time ${durationText(r.runSeconds)}. Population: ${o.pods} pods over ${o.nodes} nodes and ${o.namespaces} namespaces in ${r.population.seconds} s. ` +
    `Each watch: \`GET /api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName=<node>&resourceVersion=<RV of a LIST>&timeoutSeconds=${o.watchTimeoutSeconds}&watch=true\`, ` +
    `one per HTTP/1.1 TLS connection, ${o.openConcurrency} opened at a time; watcher i watches node i mod ${o.nodes}. ` +
    `Churn: ${o.updatesPerSecond} annotation patches/s for ${o.churnSeconds} s direct to the apiserver, on pods of watched nodes (the same sequence for both sides of a watcher count). ` +
    `Phase order: ${r.phases.map((p) => `${p.watchers} ${via(p.side)}`).join(', ')}; one proxy process serves all proxy phases` +
    (r.proxy ? ` (ready ${r.proxy.readySeconds} s after start).` : '.'), '');

  L.push('#### Delivery, cost and memory', '');
  const sampling = r.phases.find((p) => p.proxy)?.proxy?.memorySampling ?? 'lowest of once-a-second samples over the settle window';
  L.push('Latency: arrival at the watch client − the patch\'s send time (in its annotation; it includes the patch\'s own write latency), every expected event. ' +
    'Missed: expected events (every watcher of a patched pod\'s node, for every patch that succeeded) that did not arrive by the end of the drain. ' +
    'CPU: utime+stime from /proc over the churn window (churn start until every expected event arrived); "above baseline" subtracts the same churn with no watcher open, scaled to the window. ' +
    `Memory per watcher: the proxy's /metrics (${sampling}) after opening − before, ÷ watchers.`, '');
  const b = r.baseline;
  const baselineRate = b ? (b.cpuSeconds['apiserver'] ?? Number.NaN) / b.seconds : Number.NaN;
  L.push(row(['watchers', 'via', 'open all (s)', 'opens/s', 'open p99 ms', 'failed opens', 'events expected', 'received', 'missed', 'latency p50 ms', 'p99 ms', 'max ms', 'apiserver CPU s (churn)', 'above baseline', 'proxy CPU s (churn)', 'proxy RSS / watcher', 'proxy heap / watcher']));
  L.push(row(['---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  if (b) L.push(row(['0', 'none (baseline)', '', '', '', '', '', '', '', '', '', '', `${cpu(b.cpuSeconds, 'apiserver')} / ${b.seconds} s`, '', '', '', '']));
  for (const p of r.phases) {
    const failed = p.watchers - p.open.opened;
    L.push(row([String(p.watchers), via(p.side), fmt(p.open.seconds, 2), fmt(p.open.opened / p.open.seconds, 0), fmt(p.open.headers.p99Ms), failed ? `**${failed}**` : '0',
      String(p.events.expected), String(p.events.received), p.events.missed ? `**${p.events.missed}**` : '0',
      fmt(p.delivery.p50Ms), fmt(p.delivery.p99Ms), fmt(p.delivery.maxMs),
      `${cpu(p.churn.cpuSeconds, 'apiserver')} / ${p.churn.windowSeconds} s`, fmt((p.churn.cpuSeconds['apiserver'] ?? Number.NaN) - baselineRate * p.churn.windowSeconds, 2),
      p.side === 'proxy' ? cpu(p.churn.cpuSeconds, 'proxy') : '–',
      p.proxy ? kib(p.proxy.rssPerWatcherBytes) : '–', p.proxy ? kib(p.proxy.heapPerWatcherBytes) : '–']));
  }
  L.push('');
  L.push('#### Opening, idle and the patches', '');
  L.push('CPU seconds while the watchers opened; idle CPU per second over the settle window before opening (with the proxy running in proxy phases, its cache\'s own watches and bookmark probes included); the patches as sent and answered.', '');
  L.push(row(['watchers', 'via', 'apiserver CPU s (open)', 'proxy CPU s (open)', 'clients CPU s (open)', 'open p50 ms', 'apiserver idle CPU s/s', 'proxy idle CPU s/s', 'patches ok / sent', 'skipped', 'achieved /s', 'patch p50 ms', 'patch p99 ms', 'etcd CPU s (churn)', 'clients CPU s (churn)', 'drain s', 'bookmarks', 'other events', 'streams ended']));
  L.push(row(['---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---', '---']));
  if (b) L.push(row(['0', 'none (baseline)', '', '', '', '', '', '', `${b.patches - b.patchErrors} / ${b.patches}`, '', fmt(b.achievedPerSecond, 1), fmt(b.patchLatency.p50Ms), fmt(b.patchLatency.p99Ms), cpu(b.cpuSeconds, 'etcd'), '', '', '', '', '']));
  for (const p of r.phases) {
    L.push(row([String(p.watchers), via(p.side), cpu(p.open.cpuSeconds, 'apiserver'), p.side === 'proxy' ? cpu(p.open.cpuSeconds, 'proxy') : '–', cpu(p.open.cpuSeconds, 'clients'), fmt(p.open.headers.p50Ms),
      fmt(p.idleCpuPerSecond['apiserver'], 3), p.side === 'proxy' ? fmt(p.idleCpuPerSecond['proxy'], 3) : '–',
      `${p.churn.patches - p.churn.patchErrors} / ${p.churn.patches}`, String(p.churn.skipped), fmt(p.churn.achievedPerSecond, 1), fmt(p.churn.patchLatency.p50Ms), fmt(p.churn.patchLatency.p99Ms),
      cpu(p.churn.cpuSeconds, 'etcd'), cpu(p.churn.cpuSeconds, 'clients'), fmt(p.churn.drainSeconds, 2), String(p.events.bookmarks), recordText(p.events.otherEvents), recordText(p.events.streamsEnded)]));
  }
  const proxied = r.phases.filter((p) => p.proxy);
  if (proxied.length) {
    L.push('');
    L.push('#### The proxy', '');
    L.push(`Memory from its /metrics before and after opening (${sampling}) and once right after the churn. Watches served from its cache and forwarded (fallback reasons); its watchers gauge after opening; watchers it closed during the phase, by reason (e.g. slow); lines queued to watchers during the churn; after the clients closed their connections, how long until its watchers gauge read 0, and the closures by reason.`, '');
    L.push(row(['watchers', 'RSS before → after open → after churn', 'heap used', 'external', 'RSS / watcher', 'heap / watcher', 'external / watcher', 'served from cache', 'fallbacks', 'watchers after open', 'closed during the phase', 'lines queued', 'upstream watch restarts', 'gauge at 0 after close (s)', 'closed at the end']));
    L.push(row(['---:', '---', '---', '---', '---:', '---:', '---:', '---:', '---', '---:', '---', '---:', '---', '---:', '---']));
    for (const p of proxied) {
      const x = p.proxy;
      if (!x) continue;
      const tri = (f: (m: ProxyMemory) => number) => `${bytesText(f(x.memoryBefore))} → ${bytesText(f(x.memoryAfterOpen))} → ${bytesText(f(x.memoryAfterChurn))}`;
      L.push(row([String(p.watchers), tri((m) => m.rssBytes), tri((m) => m.heapUsedBytes), tri((m) => m.externalBytes), kib(x.rssPerWatcherBytes), kib(x.heapPerWatcherBytes), kib(x.externalPerWatcherBytes),
        String(x.watchesServedFromCache), recordText(x.watchFallbacks), String(x.watchersAfterOpen), recordText(x.watchersClosed), String(x.linesQueued), recordText(x.upstreamWatchRestarts),
        Number.isFinite(x.watchersGoneSeconds) ? fmt(x.watchersGoneSeconds, 2) : `**${x.watchersLeft} left after 15 s**`, recordText(x.closedAtEnd)]));
    }
  }
  const notes = r.phases.flatMap((p) => [
    p.open.firstFailure ? `- ${p.watchers} ${via(p.side)}: first failed open: ${p.open.firstFailure.replace(/\n/g, ' ')}` : '',
    p.events.firstEnded ? `- ${p.watchers} ${via(p.side)}: first stream that ended early: ${p.events.firstEnded.replace(/\n/g, ' ')}` : '',
    p.churn.firstPatchError ? `- ${p.watchers} ${via(p.side)}: first failed patch: ${p.churn.firstPatchError.replace(/\n/g, ' ')}` : '',
    p.events.duplicates || p.events.unexpected ? `- ${p.watchers} ${via(p.side)}: ${p.events.duplicates} duplicate and ${p.events.unexpected} unexpected events` : '',
  ]).filter((s) => s !== '');
  if (notes.length) L.push('', ...notes);
  return L.join('\n');
}
