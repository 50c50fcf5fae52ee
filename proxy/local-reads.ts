// The cache-served read paths' side of `local` authorization mode (proxy/cache-reads.ts and
// proxy/cache-watch.ts branch here when it is on): the reviews decide, and a read that needs a
// freshness target gets it from the resource's shared proof (cache/freshness-proof.ts), asked for
// now — after the read arrived, as the proof's argument requires — alongside the reviews.
import type { ClientRequest, ClientResponse } from './client-http.js';
import type { RequestInfo } from './request-info.js';
import type { Forwarding } from './client-identity.js';
import { localCredential, type LocalAccess } from './local-access.js';
import type { CacheOutcome } from './cache-reads.js';

export type LocalRead =
  /** Allowed; `rv` is the freshness target when one was asked for. */
  | { readonly kind: 'allowed'; readonly rv: bigint | undefined }
  /** Refused, the answer written. */
  | { readonly kind: 'done'; readonly outcome: CacheOutcome }
  | { readonly kind: 'forward'; readonly reason: string }
  /** Not for local judgement: the probe decides, as in probe mode. */
  | { readonly kind: 'probe'; readonly reason: string };

export interface FreshnessTarget {
  target(): Promise<bigint>;
}

/** @param freshness given when the read needs a freshness target (consistent reads and watches). */
export async function localRead(req: ClientRequest, res: ClientResponse, info: RequestInfo, f: Forwarding, access: LocalAccess, freshness: FreshnessTarget | undefined): Promise<LocalRead> {
  // Asked for only when the reviews can decide; a rejection is looked at only once allowed.
  const target = freshness && typeof localCredential(req, f) !== 'string' ? freshness.target() : undefined;
  target?.catch(() => undefined);
  const a = await access.check(req, res, info, f);
  if (a.kind === 'fallback') return { kind: 'probe', reason: a.reason };
  if (a.kind === 'refused') return { kind: 'done', outcome: { served: true, code: a.code, bytes: a.bytes } };
  if (freshness === undefined) return { kind: 'allowed', rv: undefined };
  // Never served without a freshness target: no proof, no cache.
  if (target === undefined) return { kind: 'forward', reason: 'freshness_probe_failed' };
  try {
    return { kind: 'allowed', rv: await target };
  } catch {
    return { kind: 'forward', reason: 'freshness_probe_failed' };
  }
}
