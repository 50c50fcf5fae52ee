// Raw-socket cases for the fuzz test: truncated request lines and headers, bodies shorter than their
// Content-Length, stalled then abandoned connections, disconnects mid-request and mid-response, and
// HTTP/2 streams reset mid-way. They check that the proxy stays up and gives its sockets back; the
// only answer looked at is a status line, which must not be a 5xx (a client's mistake).
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as h2Connect, constants } from 'node:http2';
import type { Rng } from '../prng.js';
import type { World } from './fixture.js';

export interface RawTarget { readonly url: string; readonly ca: Buffer; readonly token: string }
export interface RawOutcome { readonly what: string; readonly status: number | undefined }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tls(t: RawTarget, alpn: string[] = ['http/1.1']): Promise<TLSSocket> {
  const u = new URL(t.url);
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca: t.ca, ALPNProtocols: alpn });
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no TLS handshake within 15 s')); }, 15_000);
    s.once('secureConnect', () => { clearTimeout(timer); resolve(s); });
    s.once('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

/** Writes `pieces` with gaps, then waits up to `waitMs` for a status line, then ends as `end` says. */
async function h1(t: RawTarget, pieces: ReadonlyArray<string | Buffer>, gapMs: number, waitMs: number, end: 'destroy' | 'half-close' | 'after-first-byte'): Promise<number | undefined> {
  const s = await tls(t);
  let buf = '';
  let status: number | undefined;
  let firstByte: () => void = () => undefined;
  const gotByte = new Promise<void>((r) => { firstByte = r; });
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    firstByte();
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
    if (m && status === undefined) status = Number(m[1]);
  });
  s.on('error', () => undefined);
  try {
    for (const p of pieces) {
      if (s.destroyed) break;
      s.write(p);
      if (gapMs > 0) await sleep(gapMs);
    }
    if (end === 'half-close') s.end();
    if (end === 'after-first-byte') await Promise.race([gotByte, sleep(waitMs)]);
    else await sleep(waitMs);
  } finally {
    s.destroy();
  }
  return status;
}

export async function rawCase(rng: Rng, w: World, t: RawTarget): Promise<RawOutcome> {
  const auth = `Authorization: Bearer ${t.token}\r\n`;
  const host = 'Host: 127.0.0.1\r\n';
  const ns = rng.pick(w.namespaces);
  const big = `/api/v1/pods?labelSelector=kcpfuzz%3D${w.prefix}${rng.chance(0.5) ? '&resourceVersion=0' : ''}`;
  const get = (path: string) => `GET ${path} HTTP/1.1\r\n${host}${auth}\r\n`;
  const post = (cl: number) => `POST /api/v1/namespaces/${ns}/configmaps?dryRun=All HTTP/1.1\r\n${host}${auth}Content-Type: application/json\r\nContent-Length: ${cl}\r\n\r\n`;
  const cm = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'raw' }, data: { k: 'v' } });
  const kind = rng.int(12);
  switch (kind) {
    case 0: {
      const line = get(big);
      return { what: 'truncated request line', status: await h1(t, [line.slice(0, rng.between(1, line.indexOf('\r\n')))], 0, rng.between(0, 300), rng.chance(0.5) ? 'half-close' : 'destroy') };
    }
    case 1: {
      const req = get(big);
      return { what: 'truncated headers, stalled', status: await h1(t, [req.slice(0, rng.between(req.indexOf('\r\n') + 2, req.length - 3))], 0, rng.between(50, 800), 'destroy') };
    }
    case 2: {
      const short = cm.slice(0, rng.int(cm.length));
      return { what: 'body shorter than Content-Length, then half-close', status: await h1(t, [post(cm.length + rng.between(1, 1000)), short], 5, rng.between(100, 600), 'half-close') };
    }
    case 3: {
      const short = cm.slice(0, rng.int(cm.length));
      return { what: 'body shorter than Content-Length, stalled then abandoned', status: await h1(t, [post(cm.length), short], 5, rng.between(50, 1200), 'destroy') };
    }
    case 4: return { what: 'disconnect mid-response (large LIST)', status: await h1(t, [get(big)], 0, 2000, 'after-first-byte') };
    case 5: return { what: 'disconnect mid-watch', status: await h1(t, [get(`/api/v1/namespaces/${ns}/configmaps?watch=1${rng.chance(0.5) ? '&resourceVersion=0' : ''}`)], 0, rng.between(20, 500), 'destroy') };
    case 6: return { what: 'pipelined requests, then gone', status: await h1(t, [get(big) + get('/version') + get(`/api/v1/namespaces/${ns}/pods`)], 0, rng.between(0, 50), 'destroy') };
    case 7: {
      // The chunked body stops mid-chunk.
      const req = `POST /api/v1/namespaces/${ns}/configmaps?dryRun=All HTTP/1.1\r\n${host}${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${(cm.length + 50).toString(16)}\r\n${cm}`;
      return { what: 'chunked body cut mid-chunk', status: await h1(t, [req], 0, rng.between(10, 500), rng.chance(0.5) ? 'half-close' : 'destroy') };
    }
    case 8: {
      // TCP without TLS, or TLS without a request.
      const u = new URL(t.url);
      if (rng.chance(0.5)) {
        const s = tcpConnect({ host: u.hostname, port: Number(u.port) });
        s.on('error', () => undefined);
        await new Promise<void>((r) => { s.once('connect', () => r()); s.once('error', () => r()); });
        if (rng.chance(0.5)) s.write(get('/version'));
        await sleep(rng.between(0, 200));
        s.destroy();
        return { what: 'plain TCP to the TLS port', status: undefined };
      }
      const s = await tls(t, rng.chance(0.5) ? ['h2'] : ['http/1.1']);
      await sleep(rng.between(0, 200));
      s.destroy();
      return { what: 'TLS handshake, then gone', status: undefined };
    }
    default: return { what: `HTTP/2 ${['RST_STREAM mid-response', 'RST_STREAM mid-request', 'session destroyed mid-stream'][kind - 9] ?? ''}`, status: await h2Case(rng, t, kind - 9, big, ns, cm) };
  }
}

async function h2Case(rng: Rng, t: RawTarget, which: number, big: string, ns: string, cm: string): Promise<number | undefined> {
  const session = h2Connect(t.url, { ca: t.ca });
  session.on('error', () => undefined);
  let status: number | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no HTTP/2 session within 15 s')), 15_000);
      session.once('connect', () => { clearTimeout(timer); resolve(); });
      session.once('error', (err) => { clearTimeout(timer); reject(err); });
    });
    const auth = { authorization: `Bearer ${t.token}` };
    if (which === 1) {
      const s = session.request({ ':method': 'POST', ':path': `/api/v1/namespaces/${ns}/configmaps?dryRun=All`, 'content-type': 'application/json', ...auth }, { endStream: false });
      s.on('error', () => undefined);
      s.on('response', (h) => { status = Number(h[':status']); });
      s.write(cm.slice(0, rng.int(cm.length)));
      await sleep(rng.between(0, 300));
      s.close(rng.chance(0.5) ? constants.NGHTTP2_CANCEL : constants.NGHTTP2_INTERNAL_ERROR);
      await sleep(20);
      return status;
    }
    const streams = Array.from({ length: rng.between(1, 8) }, () => {
      const s = session.request({ ':path': rng.chance(0.7) ? big : `/api/v1/namespaces/${ns}/pods?watch=1`, ...auth });
      s.on('error', () => undefined);
      s.on('response', (h) => { status = Number(h[':status']); });
      return s;
    });
    const first = streams[0];
    if (first) await Promise.race([new Promise((r) => first.once('data', r)), sleep(2000)]);
    await sleep(rng.between(0, 30));
    if (which === 0) for (const s of streams) s.close(constants.NGHTTP2_CANCEL);
    else session.destroy();
    await sleep(20);
    return status;
  } finally {
    session.destroy();
  }
}
