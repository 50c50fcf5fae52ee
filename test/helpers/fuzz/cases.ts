// The fuzz test's cases: case i of a seed is generated from its own PRNG stream (caseRng), so it can
// be replayed alone (KCP_FUZZ_SEED, KCP_FUZZ_CASE).
import { caseRng, type Rng } from '../prng.js';
import type { Req, Transport } from './clients.js';
import type { World } from './fixture.js';
import { authHeaders, garbageHeaders, readHeaders, readUser, type Tokens, type User } from './headers.js';
import { anyPath, readTarget, type ReadTarget } from './paths.js';
import { encodeQuery, garbageQuery, readQuery, watchQuery, type ReadQuery } from './queries.js';
import { writeCase } from './bodies.js';

export type FuzzCase =
  /** A cacheable read, compared with the apiserver's answer. */
  | { readonly kind: 'read'; readonly index: number; readonly transport: Transport; readonly user: User; readonly target: ReadTarget; readonly query: ReadQuery; readonly headers: Record<string, string> }
  /** Anything else sent whole: checked for no 5xx the apiserver would not give too. */
  | { readonly kind: 'garbage' | 'write' | 'watch'; readonly index: number; readonly transport: Transport; readonly user: User; readonly req: Req }
  /** Raw sockets: checked for the proxy staying up and giving its sockets back. */
  | { readonly kind: 'raw'; readonly index: number; readonly rng: Rng };

/**
 * How long a garbage or write case may take: a mutated query can make a valid watch without a
 * timeout, which the apiserver holds open for its request timeout (30 min and more). Cut then, and
 * counted as an exchange without a whole answer.
 */
const SENT_TIMEOUT_MS = 15_000;

export function makeCase(seed: number, index: number, w: World, tokens: Tokens): FuzzCase {
  const rng = caseRng(seed, index);
  const kind = rng.weighted<FuzzCase['kind']>([[30, 'read'], [48, 'garbage'], [12, 'write'], [5, 'watch'], [5, 'raw']]);
  if (kind === 'raw') return { kind, index, rng };
  const transport: Transport = rng.chance(0.6) ? 'h1' : 'h2';
  const user = readUser(rng);
  const auth = authHeaders(user, tokens);
  switch (kind) {
    case 'read': {
      const target = readTarget(rng, w);
      return { kind, index, transport, user, target, query: readQuery(rng, w, target.resource, target.namespace, target.name !== undefined), headers: { ...readHeaders(rng), ...auth } };
    }
    case 'garbage': {
      const method = rng.weighted([[20, 'GET'], [2, 'HEAD'], [1, 'OPTIONS'], [1, 'PROPFIND'], [1, 'TRACE']]);
      const path = anyPath(rng, w);
      const query = rng.chance(0.7) ? garbageQuery(rng, w, readTarget(rng, w).resource).replace(/#/g, '%23') : '';
      const printableQuery = [...query].map((c) => (c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) >= 0x7f ? encodeURIComponent(c.replace(/[\ud800-\udfff]/gu, '\ufffd')) : c)).join('');
      return { kind, index, transport, user, req: { method, path: `${path}${printableQuery}`, headers: { ...garbageHeaders(rng), ...auth }, timeoutMs: SENT_TIMEOUT_MS } };
    }
    case 'write': {
      const wr = writeCase(rng, w);
      const q = `?dryRun=All${rng.chance(0.5) ? '&fieldManager=fuzz' : ''}${rng.chance(0.2) ? `&fieldValidation=${rng.pick(['Strict', 'Warn', 'x'])}` : ''}`;
      const headers: Record<string, string> = { ...auth, ...(wr.contentType === undefined ? {} : { 'content-type': wr.contentType }) };
      return { kind, index, transport, user, req: { method: wr.method, path: `${wr.path}${q}`, headers, body: wr.body, timeoutMs: SENT_TIMEOUT_MS } };
    }
    case 'watch': {
      const target = readTarget(rng, w);
      const base = target.name === undefined ? target.path : target.path.slice(0, target.path.lastIndexOf('/'));
      return {
        kind, index, transport, user,
        req: { method: 'GET', path: `${base}${watchQuery(rng, w)}`, headers: { ...auth, ...(rng.chance(0.2) ? { accept: rng.pick(['application/json;stream=watch', 'application/vnd.kubernetes.protobuf;stream=watch', 'text/plain']) } : {}) },
          timeoutMs: 4000, ...(rng.chance(0.5) ? { abortAfterMs: rng.between(0, 1500) } : {}) },
      };
    }
  }
}

/** The request of a read case (its first page, or the page after `continueToken`). */
export function readReq(c: Extract<FuzzCase, { kind: 'read' }>, continueToken?: string): Req {
  return { method: 'GET', path: `${c.target.path}${encodeQuery(c.query, continueToken)}`, headers: c.headers, timeoutMs: 60_000 };
}

export function describe(seed: number, c: FuzzCase): string {
  const replay = `KCP_FUZZ_SEED=${seed} KCP_FUZZ_CASE=${c.index}`;
  if (c.kind === 'raw') return `${replay} raw`;
  const req = c.kind === 'read' ? readReq(c) : c.req;
  const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== 'authorization').map(([k, v]) => [k, v.length > 200 ? `${v.slice(0, 200)}…(${v.length})` : v]));
  const body = req.body === undefined ? '' : ` body ${JSON.stringify(req.body.toString().slice(0, 200))}${req.body.length > 200 ? `…(${req.body.length})` : ''}`;
  const path = req.path.length > 400 ? `${req.path.slice(0, 400)}…(${req.path.length})` : req.path;
  return `${replay} [${c.kind} ${c.transport} ${c.user}] ${req.method} ${path} ${JSON.stringify(headers)}${body}`;
}
