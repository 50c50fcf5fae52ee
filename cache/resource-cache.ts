// The cache: one Reflector per configured resource, discovery of their kind and scope, readiness,
// and the LIST/GET answers built from the stores.
//
// A configured resource the apiservers do not serve (a CRD not created yet, an aggregated API whose
// discovery fails) cannot be cached: its reads are forwarded, it is reported (log, metric, the
// verbose /readyz) but does not keep the proxy unready, and discovery is retried in the background,
// so that it is cached once it exists. Only a resource discovery could not even ask about (no
// apiserver answered) keeps the proxy unready, as one whose first LIST has not completed does.
import type { Logger } from 'pino';
import { Reflector } from './reflector.js';
import { readBody, UpstreamStatusError, type CacheUpstream } from './upstream.js';
import { sleep } from './backoff.js';
import { apiVersionOf, collectionPath, resourceName, type ResourceType } from './resource-type.js';
import { SnapshotStore } from './snapshots.js';
import { WatchCache } from './watch-cache.js';
import { FreshnessProofs } from './freshness-proof.js';
import { ResourceActivity } from './quiet-resources.js';
import { topLevelMember } from './json-scan.js';
import { parseResourceVersion } from './resource-version.js';
import { fieldSetFor } from '../indexes/selectable-fields.js';
import type { BodyType } from './list-body.js';
import type { CacheConfig, CachedResourceConfig } from './config.js';
import type { CacheMetrics, WatchMetrics } from './metrics.js';

export interface CachedResource {
  readonly name: string;
  readonly reflector: Reflector;
  readonly body: BodyType;
  /** Client watches served from this resource's cache. */
  readonly watch: WatchCache;
  /** Shared proofs of the apiserver's current resourceVersion for consistent reads (cache/freshness-proof.ts). */
  readonly freshness: FreshnessProofs;
  /** When the resource last changed: whether a read behind is worth waiting for (cache/quiet-resources.ts). */
  readonly activity: ResourceActivity;
}

/** One line of the verbose readiness report: a resource, and why it fails readiness if it does. */
export interface ResourceReadiness {
  readonly name: string;
  /** Why the proxy must not be ready because of this resource; undefined when it is fine. */
  readonly failed: string | undefined;
  /** A remark on a resource that does not fail readiness (not cached, syncing). */
  readonly note: string | undefined;
}

/** Discovery found the resource cannot be cached as configured: not a reason to retry fast. */
class NotCacheableError extends Error {
  override readonly name = 'NotCacheableError';
}

/**
 * An apiserver answered that the resource cannot be cached (no such resource, group or version, or
 * a discovery error of its own). No answer at all, or 429, says nothing about the resource.
 */
function answeredNo(err: unknown): boolean {
  return err instanceof NotCacheableError || (err instanceof UpstreamStatusError && err.statusCode !== 429);
}

function why(err: unknown): string {
  return err instanceof UpstreamStatusError ? `discovery answered ${err.statusCode}: ${err.message}` : err instanceof Error ? err.message : String(err);
}

function record(v: unknown): Readonly<Record<string, unknown>> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

export class ResourceCache {
  readonly config: CacheConfig;
  readonly snapshots: SnapshotStore;
  readonly metrics: CacheMetrics & WatchMetrics;
  readonly #upstream: CacheUpstream;
  readonly #log: Logger;
  readonly #byPath = new Map<string, CachedResource>();
  /** Configured resources whose discovery has not answered yet: they keep the proxy unready. */
  readonly #pending = new Set<string>();
  /** Resources that cannot be cached, and why (their reads are forwarded). */
  readonly #notCached = new Map<string, string>();
  /** Resources found only after they had been reported not cached: they sync without gating readiness. */
  readonly #late = new Set<string>();
  /** Resources whose reflector got 404 and whose discovery is being asked whether they still exist. */
  readonly #checking = new Set<string>();
  readonly #stop = new AbortController();
  #stopped = false;

  constructor(o: { upstream: CacheUpstream; config: CacheConfig; log: Logger; metrics: CacheMetrics & WatchMetrics }) {
    this.config = o.config;
    this.#upstream = o.upstream;
    this.#log = o.log;
    this.metrics = o.metrics;
    this.snapshots = new SnapshotStore(o.config.snapshots);
    for (const r of o.config.resources) {
      this.#pending.add(resourceName(r));
      this.metrics.synced(resourceName(r), false);
      this.metrics.notCached(resourceName(r), false);
      this.metrics.stale(resourceName(r), false);
    }
  }

  /** Starts discovery and the reflectors in the background; readiness reports progress. */
  start(): void {
    for (const r of this.config.resources) void this.#startResource(r);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stop.abort();
    for (const c of this.#byPath.values()) {
      c.watch.stop();
      c.freshness.stop();
    }
    await Promise.all([...this.#byPath.values()].map((c) => c.reflector.stop()));
  }

  /** The cached resource for group/version/resource, if it is configured (synced or not). */
  lookup(group: string, version: string, resource: string): CachedResource | undefined {
    return this.#byPath.get(`${group}/${version}/${resource}`);
  }

  /** Configured resources whose cache is not synced yet (and that keep the proxy unready until it is). */
  notSynced(): string[] {
    const out = [...this.#pending];
    for (const c of this.#byPath.values()) if (!c.reflector.synced && !this.#late.has(c.name)) out.push(c.name);
    return out.sort();
  }

  /** Resources out of touch with the apiservers, which do not serve reads of any state. */
  stale(): string[] {
    return [...this.#byPath.values()].filter((c) => c.reflector.stale).map((c) => c.name).sort();
  }

  /** Configured resources that cannot be cached, with why (their reads are forwarded). */
  notCached(): ReadonlyMap<string, string> {
    return this.#notCached;
  }

  /** Every configured resource, and whether it keeps the proxy unready (for /readyz?verbose). */
  readiness(): ResourceReadiness[] {
    const out: ResourceReadiness[] = [];
    for (const r of this.config.resources) {
      const name = resourceName(r);
      const c = this.#byPath.get(`${r.group}/${r.version}/${r.resource}`);
      const why = this.#notCached.get(name);
      if (why !== undefined) out.push({ name, failed: undefined, note: `not cached, reads forwarded: ${why.replace(/\s+/g, ' ').trim()}` });
      else if (!c) out.push({ name, failed: this.#pending.has(name) ? 'discovery has not answered yet' : undefined, note: undefined });
      else if (!c.reflector.synced) out.push(this.#late.has(name) ? { name, failed: undefined, note: 'syncing, reads forwarded' } : { name, failed: 'not synced', note: undefined });
      else if (c.reflector.stale) {
        const refused = c.reflector.refusedWith;
        const why = refused === undefined ? 'out of touch with the apiservers' : `the apiservers refuse the proxy's own list/watch (${refused})`;
        out.push({ name, failed: `stale: ${why} for ${(c.reflector.outOfTouchMs / 1000).toFixed(1)} s, reads of any state and new watches forwarded`, note: undefined });
      }
      else out.push({ name, failed: undefined, note: undefined });
    }
    return out;
  }

  async #startResource(r: CachedResourceConfig): Promise<void> {
    const name = resourceName(r);
    let attempt = 0;
    while (!this.#stopped) {
      try {
        const type = await this.#discover(r);
        if (this.#notCached.delete(name)) {
          this.#late.add(name);
          this.metrics.notCached(name, false);
          this.#log.info({ resource: name }, 'resource found: caching it');
        }
        const body: BodyType = { kind: type.kind, apiVersion: apiVersionOf(type), sortedKeys: await this.#isCustomResource(r) };
        const unknown = r.indexedFields.filter((f) => !this.#fieldsOk(type, f));
        if (unknown.length > 0) this.#log.warn({ resource: name, fields: unknown }, 'indexed fields not selectable for this resource: ignored');
        const reflector = new Reflector(type, this.#upstream, {
          pageSize: this.config.pageSize,
          indexedFields: r.indexedFields.filter((f) => !unknown.includes(f)),
          bookmarkIntervalSeconds: this.config.bookmarkIntervalSeconds,
          staleAfterMs: this.config.staleAfterMs,
          log: this.#log,
          metrics: this.metrics,
          onNotFound: () => void this.#checkGone(r),
        });
        const w = this.config.watch;
        const watch = new WatchCache({
          reflector, body, name, metrics: this.metrics, indexedFields: r.indexedFields.filter((f) => !unknown.includes(f)),
          history: { maxEvents: w.historyMaxEvents, maxAgeMs: w.historyMaxAgeSeconds * 1000 },
          limits: { maxQueuedLines: w.watcherMaxQueuedLines, maxQueuedBytes: w.watcherMaxQueuedBytes },
        });
        const key = `${r.group}/${r.version}/${r.resource}`;
        const freshness = new FreshnessProofs((signal) => this.#currentResourceVersion(type, signal), this.#stop.signal, {
          read: () => this.metrics.freshnessRead(name),
          probe: () => this.metrics.freshnessProbe(name),
        });
        const activity = new ResourceActivity();
        reflector.onEvent(() => activity.event());
        this.#byPath.set(key, { name, reflector, body, watch, freshness, activity });
        this.#pending.delete(name);
        reflector.start();
        while (!this.#stopped && this.#byPath.get(key)?.reflector === reflector && !(await reflector.waitFor(1n, 60_000)));
        this.metrics.synced(name, reflector.synced);
        return;
      } catch (err) {
        if (this.#stopped) return;
        attempt++;
        // An apiserver answered that it cannot be cached (no such resource, group or version, or a
        // discovery error of its own): forwarded, reported, retried slowly. No answer at all, or
        // 429: asked again soon, and the proxy stays unready meanwhile.
        const answered = answeredNo(err);
        if (answered) {
          if (!this.#notCached.has(name)) {
            this.#log.warn({ resource: name, err: String(err) }, 'resource cannot be cached: its reads are forwarded; retrying discovery in the background');
            this.metrics.notCached(name, true);
          }
          this.#notCached.set(name, why(err));
          this.#pending.delete(name);
        } else {
          this.#log.warn({ resource: name, err: String(err) }, 'discovery failed; retrying');
        }
        await sleep(Math.min(answered ? 30_000 : 10_000, 250 * 2 ** Math.min(attempt, 7)), this.#stop.signal);
      }
    }
  }

  /**
   * The resource's LIST or WATCH got 404: a CRD deleted, or an apiserver that has not registered it
   * yet. If discovery says it is gone, its cache is dropped (a resource whose watch can never come
   * back would otherwise stay stale, the proxy unready): its reads are forwarded, and discovery is
   * retried in the background as for a resource missing from the start.
   */
  async #checkGone(r: CachedResourceConfig): Promise<void> {
    const name = resourceName(r);
    if (this.#checking.has(name) || this.#stopped) return;
    this.#checking.add(name);
    try {
      await this.#discover(r);
    } catch (err) {
      const key = `${r.group}/${r.version}/${r.resource}`;
      const c = this.#byPath.get(key);
      if (!answeredNo(err) || this.#stopped || !c) return;
      this.#byPath.delete(key);
      c.watch.stop();
      c.freshness.stop();
      void c.reflector.stop();
      this.#log.warn({ resource: name, err: String(err) }, 'resource no longer served: its cache is dropped, its reads are forwarded; retrying discovery in the background');
      this.#notCached.set(name, why(err));
      this.metrics.notCached(name, true);
      this.metrics.synced(name, false);
      this.metrics.stale(name, false);
      void this.#startResource(r);
    } finally {
      this.#checking.delete(name);
    }
  }

  #fieldsOk(type: ResourceType, field: string): boolean {
    return fieldSetFor(type.group, type.resource, type.namespaced).supported.has(field);
  }

  async #getJson(path: string): Promise<unknown> {
    const res = await this.#upstream.get(path, AbortSignal.timeout(30_000));
    const body = await readBody(res.body, 32 << 20);
    if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, body);
    return JSON.parse(body.toString('utf8')) as unknown;
  }

  /**
   * The apiserver's current resourceVersion, as a consistent LIST with limit=1 (a quorum read of the
   * etcd revision; the apiserver answers it from its watch cache once that has caught up) tells it,
   * asked with the proxy's own credentials.
   */
  async #currentResourceVersion(type: ResourceType, stop: AbortSignal): Promise<bigint> {
    const signal = AbortSignal.any([stop, AbortSignal.timeout(10_000)]);
    const res = await this.#upstream.get(`${collectionPath(type)}?limit=1`, signal);
    const body = await readBody(res.body, 64 << 20);
    if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, body);
    const meta = record(JSON.parse(topLevelMember(body, 'metadata')?.toString('utf8') ?? 'null') as unknown);
    const rv = parseResourceVersion(meta?.['resourceVersion']);
    if (rv === undefined) throw new Error(`${collectionPath(type)}: the apiserver's list has no resourceVersion`);
    return rv;
  }

  async #discover(r: CachedResourceConfig): Promise<ResourceType> {
    const gv = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
    const list = record(await this.#getJson(gv));
    const resources = Array.isArray(list?.['resources']) ? list['resources'] : [];
    for (const item of resources) {
      const res = record(item);
      if (res?.['name'] !== r.resource) continue;
      const verbs = Array.isArray(res['verbs']) ? res['verbs'] : [];
      if (!verbs.includes('list') || !verbs.includes('watch')) throw new NotCacheableError(`${resourceName(r)} cannot be listed and watched`);
      return { group: r.group, version: r.version, resource: r.resource, kind: String(res['kind']), namespaced: res['namespaced'] === true };
    }
    throw new NotCacheableError(`${gv} has no resource ${r.resource}`);
  }

  async #isCustomResource(r: CachedResourceConfig): Promise<boolean> {
    if (r.group === '' || r.group.endsWith('.k8s.io') || !r.group.includes('.')) return false;
    try {
      await this.#getJson(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${r.resource}.${r.group}`);
      return true;
    } catch (err) {
      if (err instanceof UpstreamStatusError && err.statusCode === 404) return false;
      throw err;
    }
  }
}
