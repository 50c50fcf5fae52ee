// Part (B)'s clients, in child processes of their own (forked by bench/backends-connections.ts):
// client-go-like clients with several watches each. Over HTTP/2 a client is one node:http2 session
// whose watches are streams on its one connection, as client-go's transport does; over HTTP/1.1 a
// client is one keep-alive https.Agent whose every watch needs a connection of its own. Each event
// line is only scanned for the `kcp-bench/sent` annotation ("<seq>:<send time in ms>") the parent's
// write put there; delivery latency is its arrival time minus that (both wall-clock:
// performance.timeOrigin + performance.now()).
import { Agent, request as httpsRequest } from 'node:https';
import { connect, type ClientHttp2Session } from 'node:http2';
import { answerParent } from './ipc-child.js';
import { LineSplitter } from '../cache/line-splitter.js';
import { USER_AGENT } from './client.js';
import type { Protocol } from './backends-args.js';

export type ConnRequest =
  | {
    readonly op: 'open';
    readonly origin: string;
    readonly ca: string;
    readonly token: string;
    readonly protocol: Protocol;
    readonly clients: number;
    /** Every client opens these watches. */
    readonly paths: readonly string[];
    /** Clients being opened at once. */
    readonly concurrency: number;
  }
  | { readonly op: 'counts' }
  | { readonly op: 'report' }
  | { readonly op: 'close' };

export interface ConnOpenReply {
  readonly seconds: number;
  readonly opened: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly firstFailure?: string;
  /** Sessions that negotiated h2 (HTTP/2 only). */
  readonly h2Sessions: number;
}

export interface ConnCounts {
  readonly received: number;
  readonly ended: number;
}

export interface ConnReport {
  /** Delivery latencies in ms, by write sequence number. */
  readonly latencies: Readonly<Record<string, readonly number[]>>;
  readonly ended: Readonly<Record<string, number>>;
}

const KEY = Buffer.from('"kcp-bench/sent":"');
const clock = (): number => performance.timeOrigin + performance.now();

let closing = false;
let received = 0;
const latencies = new Map<number, number[]>();
const ended: Record<string, number> = {};
const sessions: ClientHttp2Session[] = [];
const agents: Agent[] = [];

function onChunk(lines: LineSplitter, chunk: Buffer): void {
  const now = clock();
  for (const line of lines.push(chunk)) {
    const k = line.indexOf(KEY);
    if (k < 0) continue;
    const from = k + KEY.length;
    const value = line.toString('latin1', from, line.indexOf(0x22, from));
    const colon = value.indexOf(':');
    const seq = Number(value.slice(0, colon));
    const sent = Number(value.slice(colon + 1));
    if (colon < 0 || !Number.isFinite(seq) || !Number.isFinite(sent)) continue;
    let l = latencies.get(seq);
    if (!l) latencies.set(seq, (l = []));
    l.push(now - sent);
    received++;
  }
}

function streamEnded(reason: string): void {
  if (closing) return;
  ended[reason] = (ended[reason] ?? 0) + 1;
}

/** Resolves with the status of the watch's response headers (the stream is then read in the background). */
function watchH2(session: ClientHttp2Session, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const st = session.request({ ':method': 'GET', ':path': path, ...headers });
    const lines = new LineSplitter();
    st.on('response', (h) => resolve(Number(h[':status'])));
    st.on('data', (chunk: Buffer) => onChunk(lines, chunk));
    st.on('end', () => streamEnded('eof'));
    st.on('error', (err) => {
      streamEnded('error');
      reject(err);
    });
  });
}

function watchH1(agent: Agent, origin: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, origin), { agent, headers }, (res) => {
      const lines = new LineSplitter();
      resolve(res.statusCode ?? 0);
      res.on('data', (chunk: Buffer) => onChunk(lines, chunk));
      res.on('end', () => streamEnded('eof'));
      res.on('error', () => streamEnded('error'));
    });
    req.on('error', (err) => {
      streamEnded('error');
      reject(err);
    });
    req.end();
  });
}

async function openClient(req: Extract<ConnRequest, { op: 'open' }>, note: (statusOrError: string, detail?: string) => void): Promise<boolean> {
  const headers = { authorization: `Bearer ${req.token}`, accept: 'application/json', 'user-agent': USER_AGENT };
  let h2 = false;
  const watch = async (open: (path: string) => Promise<number>) => {
    const statuses = await Promise.allSettled(req.paths.map(open));
    for (const s of statuses) {
      if (s.status === 'fulfilled') note(String(s.value));
      else note('error', String(s.reason));
    }
  };
  if (req.protocol === 'h2') {
    const session = connect(req.origin, { ca: req.ca });
    sessions.push(session);
    session.on('error', () => streamEnded('session-error'));
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    }).catch((err: unknown) => note('error', String(err)));
    h2 = session.alpnProtocol === 'h2';
    if (!session.destroyed) await watch((p) => watchH2(session, p, headers));
  } else {
    const agent = new Agent({ keepAlive: true, maxSockets: req.paths.length, ca: req.ca });
    agents.push(agent);
    await watch((p) => watchH1(agent, req.origin, p, headers));
  }
  return h2;
}

async function open(req: Extract<ConnRequest, { op: 'open' }>): Promise<ConnOpenReply> {
  closing = false;
  const failures: Record<string, number> = {};
  let firstFailure: string | undefined;
  let opened = 0;
  let h2Sessions = 0;
  const note = (status: string, detail?: string) => {
    if (status === '200') opened++;
    else {
      failures[status] = (failures[status] ?? 0) + 1;
      firstFailure ??= `${status} ${detail ?? ''}`.trim();
    }
  };
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < req.clients) {
      next++;
      if (await openClient(req, note)) h2Sessions++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(req.concurrency, req.clients)) }, worker));
  const reply: ConnOpenReply = { seconds: (performance.now() - started) / 1000, opened, failures, h2Sessions };
  return firstFailure ? { ...reply, firstFailure } : reply;
}

async function close(): Promise<void> {
  closing = true;
  for (const s of sessions.splice(0)) s.destroy();
  for (const a of agents.splice(0)) a.destroy();
}

async function handle(req: ConnRequest): Promise<unknown> {
  switch (req.op) {
    case 'open':
      return open(req);
    case 'counts':
      return { received, ended: Object.values(ended).reduce((a, b) => a + b, 0) } satisfies ConnCounts;
    case 'report':
      return { latencies: Object.fromEntries(latencies), ended } satisfies ConnReport;
    case 'close':
      await close();
      return {};
  }
}

answerParent<ConnRequest>(handle, close);
