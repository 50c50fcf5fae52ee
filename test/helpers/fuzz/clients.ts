// The fuzz test's clients: a pool of keep-alive HTTP/1.1 connections (undici) and a few HTTP/2
// sessions (node:http2) to the proxy, and HTTP/1.1 straight to the apiserver for comparison. A reply
// is the status, headers and body, or the error that ended the exchange.
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { Agent, request } from 'undici';

export interface Req {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | Buffer | undefined;
  /** Cancel the exchange this many ms after the response headers (a client going away mid-response). */
  readonly abortAfterMs?: number;
  /** Give up after this long (a slow watch); the exchange is cancelled and counts as ended. */
  readonly timeoutMs?: number;
}

export type Reply =
  | { readonly ok: true; readonly status: number; readonly headers: Readonly<Record<string, string | string[] | undefined>>; readonly body: Buffer; readonly cut: boolean }
  | { readonly ok: false; readonly status: number | undefined; readonly error: string };

export type Transport = 'h1' | 'h2';

const MAX_BODY = 32 * 1024 * 1024;

// Headers HTTP/2 forbids (RFC 9113 8.2.2): node:http2 refuses to send them.
const H2_FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);

export class Clients {
  readonly #h1: Agent;
  readonly #direct: Agent;
  readonly #h2: ClientHttp2Session[] = [];
  #next = 0;

  constructor(readonly proxyUrl: string, readonly directUrl: string, readonly ca: Buffer, readonly h2Sessions: number, h1Connections: number) {
    this.#h1 = new Agent({ connect: { ca, ALPNProtocols: ['http/1.1'] }, connections: h1Connections, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 });
    this.#direct = new Agent({ connect: { ca }, connections: h1Connections, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 });
  }

  send(t: Transport | 'direct', r: Req): Promise<Reply> {
    if (t === 'h2') return this.#sendH2(r);
    return this.#sendH1(t === 'direct' ? this.directUrl : this.proxyUrl, t === 'direct' ? this.#direct : this.#h1, r);
  }

  async #sendH1(base: string, dispatcher: Agent, r: Req): Promise<Reply> {
    const ac = new AbortController();
    let status: number | undefined;
    const timer = r.timeoutMs === undefined ? undefined : setTimeout(() => ac.abort(new Error('timeout')), r.timeoutMs);
    try {
      const res = await request(`${base}${r.path}`, { method: r.method as 'GET', headers: r.headers, body: r.body, dispatcher, signal: ac.signal });
      status = res.statusCode;
      let cut = false;
      if (r.abortAfterMs !== undefined) setTimeout(() => { cut = true; ac.abort(new Error('cut')); }, r.abortAfterMs).unref();
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const c of res.body) {
          const b = c as Buffer;
          size += b.length;
          if (size <= MAX_BODY) chunks.push(b);
        }
      } catch (err) {
        if (!cut && !ac.signal.aborted) throw err;
        cut = true;
      }
      return { ok: true, status, headers: res.headers, body: Buffer.concat(chunks), cut };
    } catch (err) {
      return { ok: false, status, error: err instanceof Error ? `${err.name}: ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err) };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  #session(): ClientHttp2Session {
    const i = this.#next++ % this.h2Sessions;
    let s = this.#h2[i];
    if (!s || s.closed || s.destroyed) {
      s = connect(this.proxyUrl, { ca: this.ca });
      s.on('error', () => undefined);
      s.unref();
      this.#h2[i] = s;
    }
    return s;
  }

  #sendH2(r: Req): Promise<Reply> {
    return new Promise((resolve) => {
      const headers: Record<string, string> = { ':method': r.method, ':path': r.path };
      for (const [k, v] of Object.entries(r.headers)) if (!H2_FORBIDDEN.has(k) && !(k === 'te' && v !== 'trailers')) headers[k] = v;
      let status: number | undefined;
      let resHeaders: Record<string, string | string[] | undefined> = {};
      const chunks: Buffer[] = [];
      let size = 0;
      let cut = false;
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (reply: Reply) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        resolve(reply);
      };
      let stream;
      try {
        stream = this.#session().request(headers, { endStream: r.body === undefined });
      } catch (err) {
        finish({ ok: false, status: undefined, error: `request: ${String(err)}` });
        return;
      }
      const s = stream;
      if (r.timeoutMs !== undefined) timer = setTimeout(() => { cut = true; s.close(constants.NGHTTP2_CANCEL); }, r.timeoutMs);
      s.on('response', (h) => {
        status = Number(h[':status']);
        resHeaders = h as Record<string, string | string[] | undefined>;
        if (r.abortAfterMs !== undefined) setTimeout(() => { cut = true; s.close(constants.NGHTTP2_CANCEL); }, r.abortAfterMs).unref();
      });
      s.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY) chunks.push(c);
      });
      s.on('close', () => {
        if (status !== undefined && (s.rstCode === constants.NGHTTP2_NO_ERROR || cut)) finish({ ok: true, status, headers: resHeaders, body: Buffer.concat(chunks), cut });
        else finish({ ok: false, status, error: `stream closed, code ${s.rstCode}${cut ? ' (cancelled)' : ''}` });
      });
      s.on('error', (err: Error) => finish({ ok: false, status, error: `${err.name}: ${err.message}` }));
      if (r.body !== undefined) s.end(r.body);
    });
  }

  async close(): Promise<void> {
    for (const s of this.#h2) if (s && !s.destroyed) s.close();
    await Promise.all([this.#h1.close(), this.#direct.close()]);
  }
}
