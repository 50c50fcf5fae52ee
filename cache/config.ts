// Which resources the cache holds, how, and how long reads may wait for it.
import type { QuietPolicy } from './quiet-resources.js';

export interface CachedResourceConfig {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  /** Fields with an index of their own (equality lookups); other supported fields are still matched. */
  readonly indexedFields: readonly string[];
}

export interface CacheConfig {
  readonly resources: readonly CachedResourceConfig[];
  /** Page size of the reflectors' LISTs. */
  readonly pageSize: number;
  /** How often a quiet resource gets a bookmark (by rotating its upstream watch). */
  readonly bookmarkIntervalSeconds: number;
  /**
   * How long a watch may wait for the cache to reach the resourceVersion it needs; then it is
   * forwarded. (LISTs: readFreshness.)
   */
  readonly freshnessBudgetMs: number;
  /**
   * LISTs that need a resourceVersion (consistent, or not older than the client's): how long they
   * may wait for the cache to reach it, and after how long without an event a resource behind it is
   * predicted quiet and its reads forwarded at once (cache/quiet-resources.ts).
   */
  readonly readFreshness: QuietPolicy;
  /**
   * A resource whose watch cannot be re-established stops answering resourceVersion=0 reads and
   * new watches from its store once it has been out of touch with the apiservers this long.
   */
  readonly staleAfterMs: number;
  readonly snapshots: { readonly maxSnapshots: number; readonly maxBytes: number; readonly ttlSeconds: number };
  /**
   * How long an "allowed" answer to a probe may stand in for the next probe of a resourceVersion=0
   * read with the same credentials and attributes (0: every read is probed).
   */
  readonly authorizationTtlSeconds: number;
  /** Who decides whether the cache may answer a client (proxy/local-access.ts). */
  readonly authorization: AuthorizationConfig;
  /** Watches served from the cache: the event history kept for resuming, and each watcher's queue. */
  readonly watch: {
    readonly historyMaxEvents: number;
    readonly historyMaxAgeSeconds: number;
    readonly watcherMaxQueuedLines: number;
    readonly watcherMaxQueuedBytes: number;
  };
}

/**
 * `probe`: every cache-served read is first sent upstream (as a cheap probe) with the client's own
 * credentials, and the apiserver's answer decides. `local`: the proxy asks the apiserver itself
 * (TokenReview, SubjectAccessReview) and remembers the answers: allowed ones for
 * `allowedTtlSeconds`, refusals for `deniedTtlSeconds` — the longest a revoked token or permission
 * may still be honoured, or a new one still refused.
 */
export const AUTHORIZATION_MODES = ['probe', 'local'] as const;
export type AuthorizationMode = (typeof AUTHORIZATION_MODES)[number];

export interface AuthorizationConfig {
  readonly mode: AuthorizationMode;
  readonly allowedTtlSeconds: number;
  readonly deniedTtlSeconds: number;
}

export const DEFAULT_AUTHORIZATION_CONFIG: AuthorizationConfig = { mode: 'probe', allowedTtlSeconds: 10, deniedTtlSeconds: 2 };

export const DEFAULT_CACHED_RESOURCES: readonly CachedResourceConfig[] = [
  { group: '', version: 'v1', resource: 'pods', indexedFields: ['spec.nodeName'] },
  { group: '', version: 'v1', resource: 'nodes', indexedFields: [] },
  { group: '', version: 'v1', resource: 'namespaces', indexedFields: [] },
  { group: '', version: 'v1', resource: 'services', indexedFields: [] },
  { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', indexedFields: [] },
  { group: '', version: 'v1', resource: 'configmaps', indexedFields: [] },
];

export const DEFAULT_CACHE_CONFIG: CacheConfig = {
  resources: DEFAULT_CACHED_RESOURCES,
  pageSize: 500,
  bookmarkIntervalSeconds: 0.5,
  freshnessBudgetMs: 3000,
  readFreshness: { budgetMs: 100, quietAfterMs: 1000 },
  staleAfterMs: 5000,
  snapshots: { maxSnapshots: 1000, maxBytes: 512 * 1024 * 1024, ttlSeconds: 300 },
  authorizationTtlSeconds: 0,
  authorization: DEFAULT_AUTHORIZATION_CONFIG,
  watch: { historyMaxEvents: 10_000, historyMaxAgeSeconds: 300, watcherMaxQueuedLines: 10_000, watcherMaxQueuedBytes: 32 * 1024 * 1024 },
};

/**
 * Parses `resource[.group][/version]` (pods, endpointslices.discovery.k8s.io/v1, deployments.apps).
 * Core resources have no group; the version defaults to v1 for those listed in DEFAULT_CACHED_RESOURCES'
 * groups and must otherwise be given.
 */
export function parseResourceSpec(spec: string): { group: string; version: string; resource: string } | string {
  const m = /^([a-z0-9-]+)(?:\.([a-z0-9.-]+))?(?:\/([a-z0-9]+))?$/.exec(spec.trim());
  if (!m) return `not a resource[.group][/version]: "${spec}"`;
  const resource = m[1] as string;
  const group = m[2] ?? '';
  const version = m[3] ?? (group === '' || group === 'discovery.k8s.io' || group === 'apps' || group === 'batch' ? 'v1' : '');
  if (!version) return `"${spec}": give the version, e.g. ${resource}.${group}/v1`;
  return { group, version, resource };
}
