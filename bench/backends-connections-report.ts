// Part (B)'s table for bench/README.md.
import type { ConnectionsResult } from './backends-connections.js';
import { bytesText, fmt } from './stats.js';

export function connectionsMarkdown(c: ConnectionsResult): string[] {
  const lines: string[] = [];
  const first = c.protocols.find((p) => !p.skipped);
  lines.push(`#### Client connections: ${first?.clients ?? '?'} client-go-like clients × ${first && first.clients ? (first.watches ?? 0) / first.clients : '?'} watches`, '');
  lines.push('Each client watches configmaps in as many namespaces (served by the cache, from a resourceVersion LISTed once). ' +
    'HTTP/2: one connection per client, its watches streams on it; HTTP/1.1: one connection per watch. A fresh proxy per protocol; "idle" is before the clients connect. ' +
    'Delivery: a write (a merge patch) to one namespace\'s configmap, timed from just before the PATCH was sent to the event at every client watching that namespace.', '');
  lines.push('| protocol | watches open | TCP connections to the proxy | proxy RSS idle → loaded | heap used idle → loaded | all watches established in | delivery p50 / p99 / max | delivered | failures |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const p of c.protocols) {
    if (p.skipped) {
      lines.push(`| ${p.protocol} | not measured: ${p.skipped} | | | | | | | |`);
      continue;
    }
    const delivered = (p.writes ?? []).reduce((a, w) => a + w.received, 0);
    const expected = (p.writes ?? []).reduce((a, w) => a + w.expected, 0);
    const l = p.latency;
    const failures = Object.entries(p.failures ?? {}).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
    const ended = Object.entries(p.streamsEnded ?? {}).map(([k, v]) => `${k}: ${v}`).join(', ');
    lines.push(`| ${p.protocol === 'h2' ? `HTTP/2 (${p.h2Sessions} h2 sessions)` : 'HTTP/1.1'} | ${p.opened} of ${p.watches} (cache: ${p.loaded?.cacheWatchers ?? '–'}) | ${p.idle?.connections ?? '–'} → ${p.loaded?.connections ?? '–'} | ` +
      `${bytesText(p.idle?.rssBytes ?? NaN)} → ${bytesText(p.loaded?.rssBytes ?? NaN)} | ${bytesText(p.idle?.heapUsedBytes ?? NaN)} → ${bytesText(p.loaded?.heapUsedBytes ?? NaN)} | ` +
      `${fmt(p.establishSeconds, 1)} s | ${l ? `${fmt(l.p50Ms, 0)} / ${fmt(l.p99Ms, 0)} / ${fmt(l.maxMs, 0)} ms` : '–'} | ${delivered} of ${expected} | ${failures}${ended ? `; streams ended: ${ended}` : ''} |`);
  }
  lines.push('');
  return lines;
}
