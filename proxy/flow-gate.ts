// Flow control on the request path: the request's attributes as flow control reads them, and the
// 429 a refusal is answered with (the apiserver's Status, `reason: TooManyRequests`, with
// `details.retryAfterSeconds` and a `Retry-After` header chosen by the refusing level).
import { createHash } from 'node:crypto';
import type { ClientRequest } from './client-http.js';
import type { RequestAttributes, Source } from '../flowcontrol/attributes.js';
import type { Admission, FlowControl } from '../flowcontrol/flow-control.js';
import type { CachedResource } from '../cache/resource-cache.js';
import type { Forwarding } from './client-identity.js';
import type { RequestInfo } from './request-info.js';

export const TOO_MANY_REQUESTS = 'Too many requests, please try again later.';

const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);
const READ_ONLY_VERBS = new Set(['get', 'list', 'watch']);

/** The client when the proxy does not know its user: a hash of its credential (never the credential itself). */
function credentialKey(req: ClientRequest): string {
  const auth = req.headers.authorization;
  if (!auth) return 'anonymous';
  return `credential:${createHash('sha256').update(auth).digest('base64url').slice(0, 22)}`;
}

/** How many objects a LIST of a cached resource will return, as far as the cache can tell cheaply. */
function estimateObjects(cr: CachedResource | undefined, info: RequestInfo): number | undefined {
  const store = cr?.reflector.store;
  if (!store || (info.verb !== 'list' && info.verb !== 'watch')) return undefined;
  const n = info.namespace ? store.byNamespace(info.namespace)?.size ?? 0 : store.size;
  const limit = Number(info.query.get('limit')?.[0] ?? '0');
  return info.verb === 'list' && Number.isInteger(limit) && limit > 0 ? Math.min(limit, n) : n;
}

export function flowAttributes(req: ClientRequest, info: RequestInfo, f: Forwarding, longRunning: boolean, source: Source, cr: CachedResource | undefined): RequestAttributes {
  const verb = info.isResourceRequest && CONNECT_SUBRESOURCES.has(info.subresource) ? 'connect' : info.verb;
  const known = f.kind === 'impersonate';
  return {
    isResourceRequest: info.isResourceRequest, verb, apiGroup: info.apiGroup, resource: info.resource,
    subresource: info.subresource, namespace: info.namespace, name: info.name, path: info.path,
    readOnly: READ_ONLY_VERBS.has(verb), longRunning, userAgent: req.headers['user-agent'] ?? '',
    user: known ? f.user : undefined, groups: known ? f.groups : [], credential: known ? f.user : credentialKey(req),
    source, objects: source === 'apiserver' ? estimateObjects(cr, info) : undefined,
  };
}

/** Admits through flow control when it is on; `undefined` when it is off. */
export function admit(fc: FlowControl | undefined, attrs: () => RequestAttributes): Admission | Promise<Admission> | undefined {
  return fc?.config.enabled ? fc.admit(attrs()) : undefined;
}
