// What flow control knows of a request: the request info the proxy resolved (as kube-apiserver's
// RequestInfo), who sent it as far as the proxy knows, and where it will be served.

export type Source = 'cache' | 'apiserver';

export interface RequestAttributes {
  readonly isResourceRequest: boolean;
  /** get, list, watch, create, update, patch, delete, deletecollection, proxy, connect (exec/attach/port-forward); lowercase method for non-resource requests. */
  readonly verb: string;
  readonly apiGroup: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
  /** Non-resource requests: the path (/healthz, /version, …). */
  readonly path: string;
  /** get, list and watch. */
  readonly readOnly: boolean;
  /** Watches, exec/attach/port-forward, logs, proxy: not counted in flight; limited by maxWatches. */
  readonly longRunning: boolean;
  readonly userAgent: string;
  /** The user when the proxy knows it (certificate clients), else undefined. */
  readonly user: string | undefined;
  readonly groups: readonly string[];
  /** Stands for the client when the user is unknown: a hash of its credential, or "anonymous". */
  readonly credential: string;
  readonly source: Source;
  /** For reads the apiserver serves: how many objects it will return, when the cache knows. */
  readonly objects?: number | undefined;
}

/** `resource[.group][/subresource]`, as rules name resources. */
export function resourceKey(a: Pick<RequestAttributes, 'resource' | 'apiGroup' | 'subresource'>): string {
  const r = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  return a.subresource ? `${r}/${a.subresource}` : r;
}
