// The restart-storm benchmark's flow-control files, targets, chart data and Markdown summary.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { bytesText, fmt } from './stats.js';
import type { RunKind, StormOptions } from './storm-args.js';
import type { Chart, ChartPanel } from './storm-chart.js';
import type { RunResult, StormDocument, StormResult } from './storm-results.js';

export interface FlowControlFile {
  readonly file: string;
  readonly seconds: readonly number[];
}

/**
 * The dynamic run's flow-control file (--flow-control-config, default bench/storm-flowcontrol.yaml)
 * and the static run's: the same with retryAfter.seconds all 1, written into the run's directory.
 */
export function flowControlFiles(o: StormOptions, root: string, dir: string): { dynamic: FlowControlFile; static: FlowControlFile } {
  const base = o.flowControlConfig ?? join(root, 'bench', 'storm-flowcontrol.yaml');
  if (!o.flowControl && !existsSync(base)) return { dynamic: { file: base, seconds: [] }, static: { file: base, seconds: [] } };
  const raw = yaml.load(readFileSync(base, 'utf8')) as Record<string, unknown> | null;
  const doc = (raw && typeof raw['flowControl'] === 'object' ? raw['flowControl'] : raw) as Record<string, unknown> | null;
  if (!doc || typeof doc !== 'object') throw new Error(`${base}: not a flow-control document`);
  const ra = (doc['retryAfter'] ?? {}) as Record<string, unknown>;
  const thresholds = Array.isArray(ra['thresholds']) ? ra['thresholds'].length : 3;
  const dynSeconds = Array.isArray(ra['seconds']) ? (ra['seconds'] as number[]) : [1, 2, 4, 8];
  const staticSeconds = Array.from({ length: thresholds + 1 }, () => 1);
  const staticFile = join(dir, 'storm-flowcontrol-static.yaml');
  writeFileSync(staticFile, `# ${base} with a static Retry-After: 1\n${yaml.dump({ ...doc, retryAfter: { ...ra, seconds: staticSeconds } })}`);
  return { dynamic: { file: base, seconds: dynSeconds }, static: { file: staticFile, seconds: staticSeconds } };
}

const RUN_LABEL: Record<RunKind, string> = {
  direct: 'direct',
  'proxy-static': 'proxy, static Retry-After',
  'proxy-dynamic': 'proxy, dynamic Retry-After',
};
const STORM_LABEL = { start: '(a) all start at once', restart: '(b) apiserver restart' } as const;

export function evaluateStormTargets(o: StormOptions, runs: readonly RunResult[]): StormDocument['targets'] {
  const out: { target: string; detail: string; measured: string; pass: boolean | null }[] = [];
  const direct = runs.find((r) => r.kind === 'direct');
  for (const r of runs) {
    if (r.kind === 'direct') continue;
    for (const s of r.storms) {
      const d = direct?.storms.find((x) => x.kind === s.kind)?.allSyncedSeconds;
      const p = s.allSyncedSeconds;
      const measured = `${p === null ? 'never' : `${fmt(p)} s`} vs ${d === undefined ? 'no direct run' : d === null ? 'never' : `${fmt(d)} s`} direct${p !== null && d ? ` (${fmt(p / d)}×)` : ''}`;
      const pass = d === undefined ? null : p === null ? false : d === null ? true : p <= d / 2;
      out.push({ target: 'every kubelet synced again in ≤ ½ the direct time', detail: `${RUN_LABEL[r.kind]}, ${STORM_LABEL[s.kind]}`, measured, pass });
    }
  }
  for (const r of runs) {
    for (const s of r.storms) {
      out.push({
        target: `apiserver in-flight read-only ≤ --max-requests-inflight (${o.maxRequestsInflight})`,
        detail: `${RUN_LABEL[r.kind]}, ${STORM_LABEL[s.kind]}`,
        measured: `peak ${s.apiserver.peakInflightReadOnly} (${s.apiserver.samples} samples)`,
        pass: r.kind === 'direct' ? null : s.apiserver.peakInflightReadOnly <= o.maxRequestsInflight,
      });
    }
  }
  return out;
}

export function stormChart(doc: StormDocument): Chart {
  const panel = (r: RunResult, s: StormResult): ChartPanel => {
    const off = (s.from - r.epoch) / 1000;
    const markers: { t: number; label: string }[] = [];
    if (s.apiserverStoppedSeconds !== undefined) markers.push({ t: s.apiserverStoppedSeconds, label: 'apiserver stopped' });
    if (s.apiserverReadySeconds !== undefined) markers.push({ t: s.apiserverReadySeconds, label: 'ready' });
    if (s.allSyncedSeconds !== null) markers.push({ t: s.allSyncedSeconds, label: 'all synced' });
    return {
      title: `${RUN_LABEL[r.kind]} — ${STORM_LABEL[s.kind]}: all synced ${s.allSyncedSeconds === null ? 'never' : `${fmt(s.allSyncedSeconds)} s`}`,
      seconds: Object.entries(r.seconds).map(([k, c]) => ({ t: Number(k) - off, ok: c.list200 + c.watch200, r429: c.list429 + c.watch429, other: c.listOther + c.watchOther }))
        .filter((x) => x.t > -1 && x.t <= (s.to - s.from) / 1000),
      inflight: r.inflight.map((x) => ({ t: (x.at - s.from) / 1000, v: x.readOnly })).filter((x) => x.t >= 0 && x.t <= (s.to - s.from) / 1000),
      markers,
      durationSeconds: Math.ceil((s.to - s.from) / 1000),
    };
  };
  const o = doc.options as unknown as StormOptions;
  return {
    title: `Restart storm: ${o.clients} kubelets (LIST + WATCH of their node's pods), ${doc.population.pods} pods`,
    subtitle: `${doc.date} — ${doc.command}\napiserver ${doc.apiserver.args.join(' ')}; the apiserver restarted with ${o.restartSignal}; bars: what the kubelets saw`,
    rows: doc.runs.map((r) => ['start', 'restart'].map((k) => {
      const s = r.storms.find((x) => x.kind === k);
      return s ? panel(r, s) : undefined;
    })),
    rowLabels: doc.runs.map((r) => RUN_LABEL[r.kind]),
    limit: doc.apiserver.maxRequestsInflight,
  };
}

const kv = (r: Readonly<Record<string, number>> | undefined): string => {
  const e = Object.entries(r ?? {}).filter(([, v]) => v !== 0);
  return e.length ? e.map(([k, v]) => `${k} ${v}`).join(', ') : '–';
};

export function stormMarkdown(doc: StormDocument, svgName: string): string {
  const o = doc.options as unknown as StormOptions;
  const m = doc.machine;
  const lines: string[] = [];
  lines.push(`### ${o.clients} kubelets, ${doc.population.pods} pods — ${doc.date}`, '');
  lines.push('```sh', doc.command, '```', '');
  const src = doc.source;
  lines.push(`Apiserver: \`${doc.apiserver.args.join(' ')}\` (APF on; its seat limits per priority level: ${kv(doc.apiserver.limitSeatsByLevel)}; kubelets are in \`${doc.apiserver.kubeletLevel}\`). ` +
    `Sampled every ${doc.apiserver.scrape.periodMs} ms (/metrics ${bytesText(doc.apiserver.scrape.bytes)}, ${fmt(doc.apiserver.scrape.ms)} ms; apiserver idle CPU with that sampling ${fmt(doc.apiserver.idleCpuPerSecond, 3)} s/s).`);
  lines.push(`Proxy source: commit ${src.commit}${src.modified.length ? ` plus uncommitted changes in ${src.modified.length} file(s) of proxy/, cache/, indexes/, flowcontrol/` : ''}.`);
  lines.push(`Machine: ${String(m['cores'])} × ${String(m['cpuModel'])}, ${bytesText(Number(m['memoryBytes']))} RAM; Node ${String(m['node'])}; Kubernetes ${String(m['kubernetes'])}; load average at start ${(m['loadAverageAtStart'] as number[]).join(' ')} (etcd, the apiserver, the proxy and ${o.workers} client processes share these cores).`);
  lines.push(`Population: ${doc.population.nodes} Nodes, ${doc.population.pods} pods in ${doc.population.namespaces} namespaces (${doc.population.seconds} s). Node authorization check (node 0's token): ${Object.entries(doc.authorization).map(([k, v]) => `${k} → ${v}`).join('; ')}. Run time ${fmt(doc.runSeconds / 60, 1)} min.`);
  lines.push('');
  lines.push('#### Targets', '', '| target | run, storm | measured | result |', '| --- | --- | --- | --- |');
  for (const t of doc.targets) lines.push(`| ${t.target} | ${t.detail} | ${t.measured} | ${t.pass === null ? 'info' : t.pass ? '**PASS**' : '**MISS**'} |`);
  lines.push('');
  lines.push('#### Per run and storm', '');
  lines.push(`"All synced": seconds from the storm's start (every kubelet starting / the apiserver killed with ${o.restartSignal}) until the moment after which every kubelet stayed synced (its WATCH answered 200 and had not ended) until the end of observation (every kubelet synced for ` +
    `${o.settleSeconds} s, after the apiserver was ready again). "Resynced": kubelets that (re)gained sync during the storm, with p50/max of when. 429s and other failures as the kubelets saw them; retries = both. ` +
    'Apiserver in-flight and queued: the peak of its own per-second watermarks `apiserver_current_inflight_requests` / `apiserver_current_inqueue_requests` (read-only); APF seats: highest `apiserver_flowcontrol_current_executing_seats` seen at a scrape; APF rejected: `apiserver_flowcontrol_rejected_requests_total`. CPU: utime+stime from /proc over the storm. Accept queue: the listener the kubelets connect to (the apiserver direct, else the proxy), the longest queue of connections waiting to be accepted seen at a sample (`ss -ltn` Recv-Q) and its backlog (Send-Q). Listen overflows / SYN retransmits: system-wide TCP counters (/proc/net/netstat) over the storm: connection attempts a listener\'s full accept queue dropped (the client retransmits its SYN after 1, 3, 7 s …).', '');
  lines.push('| storm | via | all synced (s) | apiserver ready (s) | resynced (p50 / max s) | LIST 200 | WATCH 200 | 429s | other failures | retries | apiserver peak in-flight (limit) | peak queued | peak APF seats | APF rejected | apiserver CPU s | proxy CPU s | clients CPU s | etcd CPU s | accept queue peak / backlog | listen overflows / SYN retransmits | load avg |');
  lines.push('| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const kind of ['start', 'restart'] as const) {
    for (const r of doc.runs) {
      const s = r.storms.find((x) => x.kind === kind);
      if (!s) continue;
      const rs = s.responses;
      const aq = (x: StormResult, name: string) => {
        const q = x.acceptQueues?.[name];
        return q ? `${q.peak} / ${q.backlog}` : '–';
      };
      const cpu = (k: string) => (s.cpuSeconds[k] === undefined ? '–' : fmt(s.cpuSeconds[k]));
      lines.push(`| ${STORM_LABEL[kind]} | ${RUN_LABEL[r.kind]} | ${s.allSyncedSeconds === null ? `never (${s.unsyncedAtEnd} not synced)` : fmt(s.allSyncedSeconds)} | ${s.apiserverReadySeconds === undefined ? '' : fmt(s.apiserverReadySeconds)} | ` +
        `${s.resynced} (${fmt(s.resyncSeconds.p50)} / ${fmt(s.resyncSeconds.max)}) | ${rs.list200} | ${rs.watch200} | ${rs.list429 + rs.watch429} | ${rs.listOther + rs.watchOther} | ${s.retries} | ` +
        `${s.apiserver.peakInflightReadOnly} (${o.maxRequestsInflight}) | ${s.apiserver.peakInqueueReadOnly} | ${s.apiserver.peakExecutingSeats} | ${kv(s.apiserver.apfRejected)} | ${cpu('apiserver')} | ${r.kind === 'direct' ? '–' : cpu('proxy')} | ${cpu('clients')} | ${cpu('etcd')} | ${aq(s, r.kind === 'direct' ? 'apiserver' : 'proxy')} | ${s.tcp['ListenOverflows'] ?? '–'} / ${s.tcp['TCPSynRetrans'] ?? '–'} | ${fmt(s.loadAverage[0], 1)} → ${fmt(s.loadAverage[1], 1)} |`);
    }
  }
  lines.push('');
  const proxied = doc.runs.filter((r) => r.kind !== 'direct');
  if (proxied.length) {
    lines.push('#### The proxy', '');
    lines.push('From its /metrics over each storm: flow-control refusals (level/reason), admissions and queued requests (level), the queue wait, the Retry-After it sent, consistent reads\' freshness wait, LIST latency, its answers (verb/code/source), upstream errors and cache watches that ended.', '');
    lines.push('| storm | via | refused | admitted | queued | queue wait p50 / p99 s | Retry-After sent: count, mean s (buckets) | freshness wait p50 / p99 s | LIST p50 / p99 s | answers | upstream errors | cache watches ended |');
    lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const kind of ['start', 'restart'] as const) {
      for (const r of proxied) {
        const p = r.storms.find((x) => x.kind === kind)?.proxy;
        if (!p) continue;
        const q = (h: { p50Seconds: number; p99Seconds: number; count: number }) => (h.count ? `${fmt(h.p50Seconds, 3)} / ${fmt(h.p99Seconds, 3)}` : '–');
        lines.push(`| ${STORM_LABEL[kind]} | ${RUN_LABEL[r.kind]} | ${kv(p.rejected)} | ${kv(p.admitted)} | ${kv(p.queued)} | ${q(p.queueWait)} | ${p.retryAfter.count}, ${fmt(p.retryAfter.meanSeconds)} (${kv(p.retryAfter.buckets)}) | ` +
          `${q(p.freshnessWait)} | ${q(p.listLatency)} | ${kv(p.requests)} | ${kv(p.upstreamErrors)} | ${kv(p.cacheWatchersClosed)} |`);
      }
    }
    lines.push('');
  }
  lines.push('', 'Per run: Retry-After values the kubelets received (seconds: count), their other failures, requests sent, pods per LIST, watch events received; then the liveness check after the last storm: a pod on each of the first nodes patched directly on the apiserver, and how many of those nodes\' kubelets got the MODIFIED event on their (surviving or new) watch within 10 s.', '');
  lines.push('| via | Retry-After received (s: count) | other failures | LISTs / WATCHes sent | pods per LIST | watch events | liveness: events / patched | flow control |', '| --- | --- | --- | ---: | --- | --- | ---: | --- |');
  for (const r of doc.runs) {
    const fc = r.flowControl ? `\`${r.flowControl.file.replace(/^.*\/(bench\/)/, '$1')}\`, Retry-After [${r.flowControl.retryAfterSeconds.join(', ')}]` : r.kind === 'direct' ? '–' : 'none (--no-flow-control)';
    lines.push(`| ${RUN_LABEL[r.kind]} | ${kv(r.clients.retryAfterValues)} | ${kv(r.clients.otherFailures)} | ${r.clients.lists} / ${r.clients.watches} | ${r.clients.listItems.min}–${r.clients.listItems.max} | ${kv(r.clients.events)} | ${r.liveness.received} / ${r.liveness.patched} | ${fc} |`);
  }
  lines.push('', `![200s and 429s per second, apiserver in-flight](results/${svgName})`);
  return lines.join('\n');
}
