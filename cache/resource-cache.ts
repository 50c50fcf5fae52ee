// The cache: one Reflector per configured resource, discovery of their kind and scope, readiness,
// and the LIST/GET answers built from the stores.
import type { Logger } from 'pino';
import { Reflector } from './reflector.js';
import { readBody, UpstreamStatusError, type CacheUpstream } from './upstream.js';
import { apiVersionOf, resourceName, type ResourceType } from './resource-type.js';
import { SnapshotStore } from './snapshots.js';
import { WatchCache } from './watch-cache.js';
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
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  readonly #pending = new Set<string>();
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
    }
  }

  /** Starts discovery and the reflectors in the background; readiness reports progress. */
  start(): void {
    for (const r of this.config.resources) void this.#startResource(r);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const c of this.#byPath.values()) c.watch.stop();
    await Promise.all([...this.#byPath.values()].map((c) => c.reflector.stop()));
  }

  /** The cached resource for group/version/resource, if it is configured (synced or not). */
  lookup(group: string, version: string, resource: string): CachedResource | undefined {
    return this.#byPath.get(`${group}/${version}/${resource}`);
  }

  /** Configured resources whose cache is not synced yet. */
  notSynced(): string[] {
    const out = [...this.#pending];
    for (const c of this.#byPath.values()) if (!c.reflector.synced) out.push(c.name);
    return out.sort();
  }

  async #startResource(r: CachedResourceConfig): Promise<void> {
    const name = resourceName(r);
    let attempt = 0;
    while (!this.#stopped) {
      try {
        const type = await this.#discover(r);
        const body: BodyType = { kind: type.kind, apiVersion: apiVersionOf(type), sortedKeys: await this.#isCustomResource(r) };
        const unknown = r.indexedFields.filter((f) => !this.#fieldsOk(type, f));
        if (unknown.length > 0) this.#log.warn({ resource: name, fields: unknown }, 'indexed fields not selectable for this resource: ignored');
        const reflector = new Reflector(type, this.#upstream, {
          pageSize: this.config.pageSize,
          indexedFields: r.indexedFields.filter((f) => !unknown.includes(f)),
          bookmarkIntervalSeconds: this.config.bookmarkIntervalSeconds,
          log: this.#log,
          metrics: this.metrics,
        });
        const w = this.config.watch;
        const watch = new WatchCache({
          reflector, body, name, metrics: this.metrics, indexedFields: r.indexedFields.filter((f) => !unknown.includes(f)),
          history: { maxEvents: w.historyMaxEvents, maxAgeMs: w.historyMaxAgeSeconds * 1000 },
          limits: { maxQueuedLines: w.watcherMaxQueuedLines, maxQueuedBytes: w.watcherMaxQueuedBytes },
        });
        this.#byPath.set(`${r.group}/${r.version}/${r.resource}`, { name, reflector, body, watch });
        this.#pending.delete(name);
        reflector.start();
        while (!this.#stopped && !(await reflector.waitFor(1n, 60_000)));
        this.metrics.synced(name, reflector.synced);
        return;
      } catch (err) {
        attempt++;
        this.#log.warn({ resource: name, err: String(err) }, 'discovery failed; retrying');
        await sleep(Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)));
      }
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

  async #discover(r: CachedResourceConfig): Promise<ResourceType> {
    const gv = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
    const list = record(await this.#getJson(gv));
    const resources = Array.isArray(list?.['resources']) ? list['resources'] : [];
    for (const item of resources) {
      const res = record(item);
      if (res?.['name'] !== r.resource) continue;
      const verbs = Array.isArray(res['verbs']) ? res['verbs'] : [];
      if (!verbs.includes('list') || !verbs.includes('watch')) throw new Error(`${resourceName(r)} cannot be listed and watched`);
      return { group: r.group, version: r.version, resource: r.resource, kind: String(res['kind']), namespaced: res['namespaced'] === true };
    }
    throw new Error(`${gv} has no resource ${r.resource}`);
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
