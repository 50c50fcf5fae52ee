// The watch benchmark's clients, in a child process of their own (forked by bench/watch-clients-process.ts), so that
// reading thousands of watch streams does not delay the patches the parent sends, and their CPU is
// counted apart. One undici Pool per phase, HTTP/1.1 over TLS, one watch per connection. Each event
// line is split off the stream and only scanned: its type, and the value of the
// `kcp-bench/sent` annotation ("<seq>:<send time in ms>") the parent's patch put there; delivery
// latency is the chunk's arrival time minus that send time (both clocks are
// performance.timeOrigin + performance.now(), i.e. wall-clock time with sub-millisecond resolution).
import { answerParent } from './ipc-child.js';
import { Pool } from 'undici';
import { LineSplitter } from '../cache/line-splitter.js';
import { latencyStats, type LatencyStats } from './stats.js';

export const SENT_ANNOTATION = 'kcp-bench/sent';

export const clock = (): number => performance.timeOrigin + performance.now();

export interface WatchSpec {
  readonly id: number;
  readonly path: string;
}

export type ClientsRequest =
  | { readonly op: 'open'; readonly origin: string; readonly ca: string; readonly token: string; readonly watches: readonly WatchSpec[]; readonly concurrency: number }
  | { readonly op: 'counts' }
  | { readonly op: 'report' }
  | { readonly op: 'close' };

export interface OpenReply {
  readonly seconds: number;
  readonly opened: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly firstFailure?: string;
  /** Per watch: time from sending the request to its response headers. */
  readonly headers: LatencyStats;
}

export interface CountsReply {
  /** Events carrying the benchmark's annotation, all watchers. */
  readonly received: number;
  readonly ended: number;
}

export interface WatcherReport {
  readonly id: number;
  /** Sequence numbers of the patches whose events arrived, in order, and each one's latency. */
  readonly seqs: readonly number[];
  readonly latenciesMs: readonly number[];
}

export interface ReportReply {
  readonly watchers: readonly WatcherReport[];
  readonly bookmarks: number;
  /** Events other than BOOKMARK and annotated MODIFIED, by type. */
  readonly otherEvents: Readonly<Record<string, number>>;
  readonly firstOther?: string;
  /** Streams that ended or failed while the phase ran, by reason. */
  readonly ended: Readonly<Record<string, number>>;
  readonly firstEnded?: string;
  readonly bytes: number;
}

interface WatchState {
  readonly id: number;
  readonly lines: LineSplitter;
  readonly seqs: number[];
  readonly latenciesMs: number[];
  ended: string | undefined;
}

const KEY = Buffer.from(`"${SENT_ANNOTATION}":"`);
const TYPE_AT = '{"type":"'.length;

let pool: Pool | undefined;
let watches: WatchState[] = [];
let closing = false;
let received = 0;
let bookmarks = 0;
let bytes = 0;
let otherEvents: Record<string, number> = {};
let firstOther: string | undefined;
let ended: Record<string, number> = {};
let firstEnded: string | undefined;

function onLine(w: WatchState, line: Buffer, now: number): void {
  const head = line.toString('latin1', TYPE_AT, TYPE_AT + 9);
  const type = head.slice(0, head.indexOf('"') >= 0 ? head.indexOf('"') : head.length);
  if (type === 'BOOKMARK') {
    bookmarks++;
    return;
  }
  const k = type === 'MODIFIED' ? line.indexOf(KEY) : -1;
  if (k < 0) {
    otherEvents[type] = (otherEvents[type] ?? 0) + 1;
    firstOther ??= line.toString('utf8', 0, Math.min(line.length, 400));
    return;
  }
  const from = k + KEY.length;
  const to = line.indexOf(0x22, from);
  const value = line.toString('latin1', from, to);
  const colon = value.indexOf(':');
  const seq = Number(value.slice(0, colon));
  const sent = Number(value.slice(colon + 1));
  if (colon < 0 || !Number.isFinite(seq) || !Number.isFinite(sent)) {
    otherEvents['unparsed'] = (otherEvents['unparsed'] ?? 0) + 1;
    return;
  }
  w.seqs.push(seq);
  w.latenciesMs.push(now - sent);
  received++;
}

function streamEnded(w: WatchState, reason: string, detail: string): void {
  if (closing || w.ended) return;
  w.ended = reason;
  ended[reason] = (ended[reason] ?? 0) + 1;
  firstEnded ??= `watcher ${w.id}: ${detail}`;
}

async function open(req: Extract<ClientsRequest, { op: 'open' }>): Promise<OpenReply> {
  closing = false;
  received = 0;
  bookmarks = 0;
  bytes = 0;
  otherEvents = {};
  firstOther = undefined;
  ended = {};
  firstEnded = undefined;
  watches = [];
  const p = new Pool(req.origin, {
    connections: req.watches.length + 4,
    pipelining: 1,
    allowH2: false,
    connect: { ca: req.ca },
    headersTimeout: 120_000,
    bodyTimeout: 0,
    keepAliveTimeout: 600_000,
    keepAliveMaxTimeout: 600_000,
  });
  pool = p;
  const headers = { authorization: `Bearer ${req.token}`, accept: 'application/json', 'user-agent': 'kube-cache-proxy-bench-watch/v0.1.0' };
  const failures: Record<string, number> = {};
  let firstFailure: string | undefined;
  const headersMs: number[] = [];
  let opened = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const spec = req.watches[next++];
      if (!spec) return;
      const t0 = performance.now();
      try {
        const res = await p.request({ method: 'GET', path: spec.path, headers });
        headersMs.push(performance.now() - t0);
        if (res.statusCode !== 200) {
          failures[String(res.statusCode)] = (failures[String(res.statusCode)] ?? 0) + 1;
          const text = await res.body.text().catch(() => '');
          firstFailure ??= `${res.statusCode} ${text.slice(0, 300)}`;
          continue;
        }
        const w: WatchState = { id: spec.id, lines: new LineSplitter(), seqs: [], latenciesMs: [], ended: undefined };
        watches.push(w);
        opened++;
        res.body.on('data', (chunk: Buffer) => {
          const now = clock();
          bytes += chunk.length;
          for (const line of w.lines.push(chunk)) onLine(w, line, now);
        });
        res.body.on('end', () => streamEnded(w, 'eof', 'the stream ended'));
        res.body.on('error', (err: Error) => streamEnded(w, 'error', String(err)));
      } catch (err) {
        const name = err instanceof Error ? err.name : 'error';
        failures[name] = (failures[name] ?? 0) + 1;
        firstFailure ??= String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(req.concurrency, req.watches.length)) }, worker));
  const reply: OpenReply = { seconds: (performance.now() - started) / 1000, opened, failures, headers: latencyStats(headersMs) };
  return firstFailure ? { ...reply, firstFailure } : reply;
}

function report(): ReportReply {
  const r: ReportReply = {
    watchers: watches.map((w) => ({ id: w.id, seqs: w.seqs, latenciesMs: w.latenciesMs })),
    bookmarks,
    otherEvents,
    ended,
    bytes,
  };
  return { ...r, ...(firstOther ? { firstOther } : {}), ...(firstEnded ? { firstEnded } : {}) };
}

async function close(): Promise<void> {
  closing = true;
  const p = pool;
  pool = undefined;
  watches = [];
  await p?.destroy();
}

async function handle(req: ClientsRequest): Promise<unknown> {
  switch (req.op) {
    case 'open':
      return open(req);
    case 'counts':
      return { received, ended: Object.values(ended).reduce((a, b) => a + b, 0) } satisfies CountsReply;
    case 'report':
      return report();
    case 'close':
      await close();
      return {};
  }
}

answerParent<ClientsRequest>(handle, close);
