// Request headers for the fuzz test: the users (tokens good and bad, impersonation), Accept and
// Accept-Encoding as clients send them, and made-up or mutated headers.
import type { Rng } from '../prng.js';
import { headerSafe, mutate } from './mutate.js';

export type User = 'admin' | 'viewer' | 'nobody' | 'anonymous' | 'badtoken';

export interface Tokens { readonly admin: string; readonly viewer: string; readonly nobody: string }

/** Accept values a cacheable read may carry and be answered from the cache (JSON). */
export const JSON_ACCEPTS: ReadonlyArray<string | undefined> = [undefined, 'application/json', '*/*', 'application/vnd.kubernetes.protobuf,application/json', 'application/json, */*'];
const OTHER_ACCEPTS = ['application/json;as=Table;v=v1;g=meta.k8s.io,application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf', 'application/json;pretty=1',
  'text/plain', 'application/json;stream=watch', 'application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io', 'application/*', '', ';;', 'application/json;q=0'];

export function readUser(rng: Rng): User {
  return rng.weighted<User>([[80, 'admin'], [8, 'viewer'], [5, 'nobody'], [4, 'anonymous'], [3, 'badtoken']]);
}

export function authHeaders(user: User, tokens: Tokens): Record<string, string> {
  switch (user) {
    case 'anonymous': return {};
    case 'badtoken': return { authorization: 'Bearer not-a-token' };
    default: return { authorization: `Bearer ${tokens[user]}` };
  }
}

/** Headers of a cacheable read: an Accept the cache answers, maybe gzip. */
export function readHeaders(rng: Rng): Record<string, string> {
  const h: Record<string, string> = {};
  const accept = rng.pick(JSON_ACCEPTS);
  if (accept !== undefined) h['accept'] = accept;
  if (rng.chance(0.1)) h['accept-encoding'] = rng.pick(['gzip', 'identity', 'gzip, deflate', 'br']);
  if (rng.chance(0.1)) h['user-agent'] = rng.pick(['kubectl/v1.37.2 (linux/amd64)', 'fuzz', '']);
  return h;
}

/** Any headers: odd Accepts, content types, impersonation, long and mutated values. */
export function garbageHeaders(rng: Rng): Record<string, string> {
  const h: Record<string, string> = {};
  if (rng.chance(0.6)) h['accept'] = rng.chance(0.7) ? rng.pick([...OTHER_ACCEPTS, 'application/json']) : headerSafe(mutate(rng, rng.pick(OTHER_ACCEPTS)));
  if (rng.chance(0.2)) h['accept-encoding'] = headerSafe(mutate(rng, 'gzip, deflate'));
  if (rng.chance(0.1)) h['impersonate-user'] = rng.pick(['system:anonymous', 'viewer', 'nobody', '', 'system:node:node-1', 'x'.repeat(300)]);
  if (rng.chance(0.05)) h['impersonate-group'] = rng.pick(['system:masters', 'system:authenticated', '']);
  if (rng.chance(0.03)) h['impersonate-uid'] = 'u-1';
  if (rng.chance(0.05)) h['impersonate-extra-scopes'] = 'a';
  if (rng.chance(0.1)) h[rng.pick(['x-fuzz', 'x-forwarded-for', 'x-remote-user', 'x-remote-group', 'audit-id', 'if-none-match', 'range', 'cache-control', 'origin', 'te'])] = headerSafe(mutate(rng, 'abc 123'));
  if (rng.chance(0.03)) h['x-big'] = 'y'.repeat(rng.pick([1000, 8000, 20000]));
  if (rng.chance(0.05)) h['connection'] = rng.pick(['keep-alive', 'upgrade', 'foo']);
  return h;
}
