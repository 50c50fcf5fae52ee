// The restart-storm benchmark's kubelets, in child processes of their own (forked by bench/storm.ts,
// `--workers` of them), so that thousands of TLS connections and watch streams do not delay the
// parent's sampling and their CPU is counted apart. Each kubelet behaves like a kubelet's pod
// reflector: one undici Client (one HTTP/1.1 keep-alive TLS connection), its own bearer token
// (user system:node:<node>), a consistent LIST of its node's pods
// (`fieldSelector=spec.nodeName=<node>`, resourceVersion unset), then a WATCH from the list's
// resourceVersion with bookmarks. 429: sleep Retry-After seconds (1 if absent), retry the same
// request. Other failures: sleep 1 s, then re-LIST. A watch that ends cleanly is re-opened from the
// last resourceVersion seen; one that ends with an ERROR event (410 Expired or other) or a broken
// stream re-LISTs (after 1 s for errors other than 410). A kubelet is "synced" from the moment its
// watch answered 200 until that watch ends.
import { answerParent } from './ipc-child.js';
import { gunzipSync } from 'node:zlib';
import { Client } from 'undici';
import { LineSplitter } from '../cache/line-splitter.js';

export const KUBELET_USER_AGENT = 'kubelet/v1.37.2 (linux/amd64) kubernetes/bench';

export const clock = (): number => performance.timeOrigin + performance.now();

export interface KubeletSpec {
  readonly id: number;
  readonly node: string;
  readonly token: string;
}

export type StormRequest =
  | { readonly op: 'start'; readonly origin: string; readonly ca: string; readonly epoch: number; readonly startAt: number; readonly kubelets: readonly KubeletSpec[] }
  | { readonly op: 'status' }
  | { readonly op: 'report' }
  | { readonly op: 'stop' };

export interface StatusReply {
  readonly synced: number;
  readonly everSynced: number;
  /** MODIFIED events received on all watches so far. */
  readonly modified: number;
}

/** Counts in one second (index = whole seconds since the run's epoch). */
export interface SecondCounts {
  list200: number;
  watch200: number;
  list429: number;
  watch429: number;
  /** Other statuses and connection errors. */
  listOther: number;
  watchOther: number;
}

export interface KubeletReport {
  readonly id: number;
  /** Wall-clock ms: sync start, sync end, sync start, …; an odd length means synced at the end. */
  readonly syncs: readonly number[];
  readonly lists: number;
  readonly watches: number;
  readonly r429: number;
  /** Requests repeated because the previous one failed (429, other status, ERROR event, connection or stream error). */
  readonly retries: number;
  /** Failures other than 429 and 410. */
  readonly errors: number;
  /** Re-LISTs after a 410 (status or ERROR event). */
  readonly expired: number;
}

export interface ReportReply {
  readonly seconds: Readonly<Record<number, SecondCounts>>;
  readonly kubelets: readonly KubeletReport[];
  /** Retry-After values received with 429s, by value. */
  readonly retryAfter: Readonly<Record<string, number>>;
  /** Statuses other than 200 and 429, and error names, by request kind. */
  readonly other: Readonly<Record<string, number>>;
  readonly firstOther?: string;
  readonly events: Readonly<Record<string, number>>;
  readonly listItems: { readonly min: number; readonly max: number };
}

interface Kubelet extends KubeletSpec {
  readonly client: Client;
  readonly listPath: string;
  readonly selector: string;
  rv: string;
  needList: boolean;
  synced: boolean;
  everSynced: boolean;
  syncs: number[];
  lists: number;
  watches: number;
  r429: number;
  retries: number;
  errors: number;
  expired: number;
}

let kubelets: Kubelet[] = [];
let stopping = false;
let epoch = 0;
let seconds: Record<number, SecondCounts> = {};
let retryAfter: Record<string, number> = {};
let other: Record<string, number> = {};
let firstOther: string | undefined;
let events: Record<string, number> = {};
let listItems = { min: Number.POSITIVE_INFINITY, max: 0 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function count(key: keyof SecondCounts): void {
  const s = Math.floor((clock() - epoch) / 1000);
  const c = (seconds[s] ??= { list200: 0, watch200: 0, list429: 0, watch429: 0, listOther: 0, watchOther: 0 });
  c[key]++;
}

function noteOther(kind: 'list' | 'watch', what: string, detail: string): void {
  count(kind === 'list' ? 'listOther' : 'watchOther');
  other[`${kind} ${what}`] = (other[`${kind} ${what}`] ?? 0) + 1;
  firstOther ??= `${kind} ${what}: ${detail.slice(0, 300)}`;
}

function headers(k: Kubelet): Record<string, string> {
  return { authorization: `Bearer ${k.token}`, accept: 'application/json', 'accept-encoding': 'gzip', 'user-agent': KUBELET_USER_AGENT };
}

function retryAfterSeconds(h: Record<string, string | string[] | undefined>): number {
  const v = Number(h['retry-after']);
  const s = Number.isFinite(v) && v > 0 ? v : 1;
  retryAfter[String(s)] = (retryAfter[String(s)] ?? 0) + 1;
  return s;
}

function markSynced(k: Kubelet): void {
  k.synced = true;
  k.everSynced = true;
  k.syncs.push(clock());
}

function markLost(k: Kubelet): void {
  if (!k.synced) return;
  k.synced = false;
  k.syncs.push(clock());
}

/** One LIST attempt; on failure it sleeps as the answer asks before returning. */
async function list(k: Kubelet): Promise<void> {
  k.lists++;
  try {
    const res = await k.client.request({ method: 'GET', path: k.listPath, headers: headers(k) });
    if (res.statusCode === 200) {
      const chunks: Buffer[] = [];
      for await (const c of res.body as AsyncIterable<Buffer>) chunks.push(c);
      const raw = Buffer.concat(chunks);
      const body = res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      const v = JSON.parse(body.toString('utf8')) as { metadata?: { resourceVersion?: string }; items?: unknown[] };
      const n = v.items?.length ?? 0;
      listItems = { min: Math.min(listItems.min, n), max: Math.max(listItems.max, n) };
      k.rv = v.metadata?.resourceVersion ?? '';
      k.needList = false;
      count('list200');
      return;
    }
    const text = await res.body.text().catch(() => '');
    k.retries++;
    if (res.statusCode === 429) {
      k.r429++;
      count('list429');
      await sleep(retryAfterSeconds(res.headers) * 1000);
      return;
    }
    k.errors++;
    noteOther('list', String(res.statusCode), text);
  } catch (err) {
    if (stopping) return;
    k.retries++;
    k.errors++;
    noteOther('list', err instanceof Error ? (('code' in err && typeof err.code === 'string') ? err.code : err.name) : 'error', String(err));
  }
  await sleep(1000);
}

/** One WATCH: until it ends, then decides what comes next (re-watch, re-LIST, after a pause or not). */
async function watch(k: Kubelet): Promise<void> {
  k.watches++;
  const timeout = 300 + Math.floor(Math.random() * 300);
  const path = `/api/v1/pods?allowWatchBookmarks=true&fieldSelector=${k.selector}&resourceVersion=${k.rv}&timeoutSeconds=${timeout}&watch=1`;
  let streaming = false;
  try {
    const res = await k.client.request({ method: 'GET', path, headers: headers(k) });
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      k.retries++;
      if (res.statusCode === 429) {
        k.r429++;
        count('watch429');
        await sleep(retryAfterSeconds(res.headers) * 1000);
        return;
      }
      k.needList = true;
      if (res.statusCode === 410) {
        k.expired++;
        noteOther('watch', '410', text);
        return;
      }
      k.errors++;
      noteOther('watch', String(res.statusCode), text);
      await sleep(1000);
      return;
    }
    count('watch200');
    markSynced(k);
    streaming = true;
    const lines = new LineSplitter();
    let error: { code: number; text: string } | undefined;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      for (const line of lines.push(chunk)) {
        const e = JSON.parse(line.toString('utf8')) as { type?: string; object?: { code?: number; metadata?: { resourceVersion?: string } } };
        const type = e.type ?? '?';
        events[type] = (events[type] ?? 0) + 1;
        if (type === 'ERROR') error = { code: e.object?.code ?? 0, text: line.toString('utf8') };
        else if (e.object?.metadata?.resourceVersion) k.rv = e.object.metadata.resourceVersion;
      }
    }
    markLost(k);
    if (error) {
      k.needList = true;
      k.retries++;
      if (error.code === 410) {
        k.expired++;
        noteOther('watch', 'ERROR 410', error.text);
        return;
      }
      k.errors++;
      noteOther('watch', `ERROR ${error.code}`, error.text);
      await sleep(1000);
    }
    // A clean end: re-watch from k.rv at once, like a reflector.
  } catch (err) {
    markLost(k);
    if (stopping) return;
    k.retries++;
    k.errors++;
    k.needList = true;
    const name = err instanceof Error ? (('code' in err && typeof err.code === 'string') ? err.code : err.name) : 'error';
    noteOther('watch', `${streaming ? 'stream ' : ''}${name}`, String(err));
    await sleep(1000);
  }
}

async function runKubelet(k: Kubelet): Promise<void> {
  while (!stopping) {
    if (k.needList) await list(k);
    else await watch(k);
  }
}

function start(req: Extract<StormRequest, { op: 'start' }>): void {
  stopping = false;
  epoch = req.epoch;
  seconds = {};
  retryAfter = {};
  other = {};
  firstOther = undefined;
  events = {};
  listItems = { min: Number.POSITIVE_INFINITY, max: 0 };
  kubelets = req.kubelets.map((s) => {
    const selector = encodeURIComponent(`spec.nodeName=${s.node}`);
    return {
      ...s,
      client: new Client(req.origin, {
        pipelining: 1,
        allowH2: false,
        // client-go dials with a 30 s timeout (then a 10 s TLS handshake timeout); undici's one
        // connect timeout covers both.
        connect: { ca: req.ca, timeout: 30_000 },
        headersTimeout: 120_000,
        bodyTimeout: 0,
        keepAliveTimeout: 600_000,
        keepAliveMaxTimeout: 600_000,
      }),
      listPath: `/api/v1/pods?fieldSelector=${selector}`,
      selector,
      rv: '',
      needList: true,
      synced: false,
      everSynced: false,
      syncs: [],
      lists: 0,
      watches: 0,
      r429: 0,
      retries: 0,
      errors: 0,
      expired: 0,
    };
  });
  // Every kubelet starts at the same instant.
  setTimeout(() => {
    for (const k of kubelets) void runKubelet(k);
  }, Math.max(0, req.startAt - clock()));
}

function report(): ReportReply {
  const r: ReportReply = {
    seconds,
    kubelets: kubelets.map((k) => ({ id: k.id, syncs: k.syncs, lists: k.lists, watches: k.watches, r429: k.r429, retries: k.retries, errors: k.errors, expired: k.expired })),
    retryAfter,
    other,
    events,
    listItems: { min: Number.isFinite(listItems.min) ? listItems.min : 0, max: listItems.max },
  };
  return firstOther ? { ...r, firstOther } : r;
}

async function stop(): Promise<void> {
  stopping = true;
  await Promise.allSettled(kubelets.map((k) => k.client.destroy()));
}

async function handle(req: StormRequest): Promise<unknown> {
  switch (req.op) {
    case 'start':
      start(req);
      return {};
    case 'status': {
      let synced = 0;
      let everSynced = 0;
      for (const k of kubelets) {
        if (k.synced) synced++;
        if (k.everSynced) everSynced++;
      }
      return { synced, everSynced, modified: events['MODIFIED'] ?? 0 } satisfies StatusReply;
    }
    case 'report':
      return report();
    case 'stop':
      await stop();
      return {};
  }
}

answerParent<StormRequest>(handle, stop);
