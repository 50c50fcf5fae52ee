// The rolling-restart benchmark's client traffic, in a child process of its own (forked by
// bench/backends-restart.ts) so that its work neither delays the parent's sampling nor counts in its
// CPU. Two parts:
// - short reads at a steady rate (an open loop: a request every 1/rate s whatever the answers do):
//   GET of a podtemplate and LIST of a namespace's podtemplates (not cached: the apiserver answers),
//   a consistent GET of a configmap (cached: the proxy probes an apiserver, then answers from the
//   cache) and a LIST of configmaps at resourceVersion=0 (the cache alone);
// - watches of podtemplates (not cached: forwarded, so each is held by one apiserver), each by a
//   client-go-like reflector: LIST, then WATCH from the list's resourceVersion with bookmarks, and on
//   a clean end watch again from the last resourceVersion seen (a 410 relists).
// Every answer is counted per wall-clock second, by what it was and its status, so that the parent
// can put failures into the restart's phases.
import { Pool } from 'undici';
import { answerParent } from './ipc-child.js';
import { LineSplitter } from '../cache/line-splitter.js';
import { USER_AGENT } from './client.js';

export type LoadRequest =
  | {
    readonly op: 'start';
    readonly origin: string;
    readonly ca: string;
    readonly token: string;
    readonly rate: number;
    readonly watchers: number;
    /** The namespace of the podtemplates and configmaps, and how many of each it holds. */
    readonly namespace: string;
    readonly objects: number;
  }
  | { readonly op: 'report' }
  | { readonly op: 'stop' };

/** Short reads by kind. */
export const SHORT_KINDS = ['get', 'list', 'cached-get', 'cached-list'] as const;
export type ShortKind = (typeof SHORT_KINDS)[number];

export interface LoadSecond {
  /** Wall-clock second (ms / 1000, floored). */
  readonly s: number;
  /** `<kind> <status>` (status `error` for no answer), and `watch <status>`, `watch-end <reason>`. */
  readonly counts: Readonly<Record<string, number>>;
}

export interface LoadReport {
  readonly seconds: readonly LoadSecond[];
  /** The first few failures, verbatim. */
  readonly failures: readonly string[];
  /** Requests not sent because too many were outstanding (the open loop's cap). */
  readonly skipped: number;
}

const clock = (): number => performance.timeOrigin + performance.now();
const MAX_OUTSTANDING = 200;

let running = false;
let shortPool: Pool | undefined;
let watchPool: Pool | undefined;
let timer: NodeJS.Timeout | undefined;
const seconds = new Map<number, Record<string, number>>();
const failures: string[] = [];
let skipped = 0;
let watchLoops: Promise<void>[] = [];

function count(key: string): void {
  const s = Math.floor(clock() / 1000);
  let c = seconds.get(s);
  if (!c) seconds.set(s, (c = {}));
  c[key] = (c[key] ?? 0) + 1;
}

function failure(text: string): void {
  if (failures.length < 20) failures.push(`${new Date().toISOString().slice(11, 23)} ${text.slice(0, 300)}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function start(req: Extract<LoadRequest, { op: 'start' }>): void {
  running = true;
  const headers = { authorization: `Bearer ${req.token}`, accept: 'application/json', 'user-agent': USER_AGENT };
  const common = { pipelining: 1, allowH2: false, connect: { ca: req.ca }, keepAliveTimeout: 60_000, headersTimeout: 60_000 } as const;
  const sp = new Pool(req.origin, { ...common, connections: 32, bodyTimeout: 60_000 });
  const wp = new Pool(req.origin, { ...common, connections: req.watchers + 4, bodyTimeout: 0 });
  shortPool = sp;
  watchPool = wp;
  const ns = req.namespace;
  let i = 0;
  const pathOf = (kind: ShortKind): string => {
    const n = i++ % req.objects;
    switch (kind) {
      case 'get': return `/api/v1/namespaces/${ns}/podtemplates/pt-${n}`;
      case 'list': return `/api/v1/namespaces/${ns}/podtemplates`;
      case 'cached-get': return `/api/v1/namespaces/${ns}/configmaps/cm-${n}`;
      case 'cached-list': return `/api/v1/namespaces/${ns}/configmaps?resourceVersion=0`;
    }
  };
  // 30% GET, 30% LIST of podtemplates, 20% consistent GET and 20% rv=0 LIST of configmaps.
  const mix: readonly ShortKind[] = ['get', 'list', 'get', 'list', 'cached-get', 'get', 'list', 'cached-list', 'cached-get', 'cached-list'];
  let outstanding = 0;
  let sent = 0;
  const began = clock();
  const one = async (kind: ShortKind) => {
    outstanding++;
    try {
      const res = await sp.request({ method: 'GET', path: pathOf(kind), headers });
      const body = await res.body.text();
      count(`${kind} ${res.statusCode}`);
      if (res.statusCode >= 300) failure(`${kind} ${res.statusCode} ${body}`);
    } catch (err) {
      count(`${kind} error`);
      failure(`${kind} ${String(err)}`);
    } finally {
      outstanding--;
    }
  };
  // Catches up on the requests due since the start, so the rate holds when a tick is late.
  timer = setInterval(() => {
    const due = Math.floor(((clock() - began) / 1000) * req.rate);
    for (; sent < due; sent++) {
      if (outstanding >= MAX_OUTSTANDING) {
        skipped++;
        continue;
      }
      void one(mix[sent % mix.length] as ShortKind);
    }
  }, 20);
  watchLoops = Array.from({ length: req.watchers }, (_, k) => reflector(wp, headers, ns, k));
}

/** LIST, then WATCH from its resourceVersion, again and again until stopped. */
async function reflector(pool: Pool, headers: Record<string, string>, ns: string, k: number): Promise<void> {
  await sleep((k * 100) % 3000);
  let rv: string | undefined;
  while (running) {
    try {
      if (rv === undefined) {
        const res = await pool.request({ method: 'GET', path: `/api/v1/namespaces/${ns}/podtemplates?limit=500`, headers });
        const text = await res.body.text();
        count(`watch-list ${res.statusCode}`);
        if (res.statusCode !== 200) {
          failure(`watch-list ${res.statusCode} ${text}`);
          await sleep(1000);
          continue;
        }
        rv = resourceVersionOf(text);
      }
      const res = await pool.request({
        method: 'GET',
        path: `/api/v1/namespaces/${ns}/podtemplates?watch=1&allowWatchBookmarks=true&resourceVersion=${rv ?? ''}&timeoutSeconds=3600`,
        headers,
      });
      count(`watch ${res.statusCode}`);
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        if (res.statusCode === 410) rv = undefined;
        else failure(`watch ${res.statusCode} ${text}`);
        await sleep(res.statusCode === 410 ? 0 : 1000);
        continue;
      }
      const lines = new LineSplitter();
      let expired = false;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          for (const line of lines.push(chunk)) {
            const ev = parseEvent(line);
            if (ev.expired) expired = true;
            else if (ev.rv) rv = ev.rv;
          }
        }
        count(expired ? 'watch-end expired' : 'watch-end eof');
        if (expired) rv = undefined;
      } catch (err) {
        if (!running) return;
        count('watch-end error');
        failure(`watch stream ${String(err)}`);
        await sleep(1000);
      }
    } catch (err) {
      if (!running) return;
      count('watch error');
      failure(`watch ${String(err)}`);
      await sleep(1000);
    }
  }
}

function resourceVersionOf(listJson: string): string | undefined {
  const v: unknown = JSON.parse(listJson);
  const meta = typeof v === 'object' && v !== null ? (v as { metadata?: unknown }).metadata : undefined;
  const rv = typeof meta === 'object' && meta !== null ? (meta as { resourceVersion?: unknown }).resourceVersion : undefined;
  return typeof rv === 'string' ? rv : undefined;
}

function parseEvent(line: Buffer): { rv?: string; expired?: boolean } {
  const v: unknown = JSON.parse(line.toString('utf8'));
  if (typeof v !== 'object' || v === null) return {};
  const e = v as { type?: unknown; object?: unknown };
  const obj = typeof e.object === 'object' && e.object !== null ? (e.object as { code?: unknown; metadata?: unknown }) : undefined;
  if (e.type === 'ERROR') return { expired: obj?.code === 410 };
  const meta = typeof obj?.metadata === 'object' && obj.metadata !== null ? (obj.metadata as { resourceVersion?: unknown }) : undefined;
  return typeof meta?.resourceVersion === 'string' ? { rv: meta.resourceVersion } : {};
}

function report(): LoadReport {
  const out = [...seconds.entries()].sort((a, b) => a[0] - b[0]).map(([s, counts]) => ({ s, counts }));
  return { seconds: out, failures, skipped };
}

async function stop(): Promise<void> {
  running = false;
  if (timer) clearInterval(timer);
  timer = undefined;
  await Promise.allSettled([shortPool?.destroy(), watchPool?.destroy()]);
  await Promise.allSettled(watchLoops);
  shortPool = undefined;
  watchPool = undefined;
}

async function handle(req: LoadRequest): Promise<unknown> {
  switch (req.op) {
    case 'start':
      start(req);
      return {};
    case 'report':
      return report();
    case 'stop':
      await stop();
      return report();
  }
}

answerParent<LoadRequest>(handle, stop);
