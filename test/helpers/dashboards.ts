// The Grafana dashboards (charts/kube-cache-proxy/dashboards/, copied to dashboards/): their panel
// queries, the variables substituted as Grafana would, the metric names a query selects, and the
// README's table of metrics they must come from.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../cluster/paths.js';

export const CHART_DASHBOARDS = join(repoRoot(), 'charts', 'kube-cache-proxy', 'dashboards');
export const EXPORTED_DASHBOARDS = join(repoRoot(), 'dashboards');

export interface PanelQuery {
  /** `<dashboard uid>/<panel title>`. */
  readonly panel: string;
  readonly uid: string;
  readonly panelId: number;
  readonly refId: string;
  readonly expr: string;
}

export interface Dashboard {
  readonly file: string;
  readonly uid: string;
  readonly queries: readonly PanelQuery[];
  readonly variables: ReadonlyMap<string, string>;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function array(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new Error(`${what}: not a non-empty string`);
  return v;
}

export function dashboardFiles(dir = CHART_DASHBOARDS): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => join(dir, f));
}

/** A dashboard's panel queries (rows' panels too) and its variables' queries (by name). */
export function loadDashboard(file: string): Dashboard {
  const doc = record(JSON.parse(readFileSync(file, 'utf8')) as unknown);
  if (!doc) throw new Error(`${file}: not an object`);
  const uid = str(doc['uid'], `${file}: uid`);
  const queries: PanelQuery[] = [];
  const walk = (panels: unknown[]): void => {
    for (const raw of panels) {
      const p = record(raw);
      if (!p) throw new Error(`${file}: a panel is not an object`);
      walk(array(p['panels']));
      if (p['type'] === 'row') continue;
      const title = str(p['title'], `${file}: panel title`);
      const id = p['id'];
      if (typeof id !== 'number') throw new Error(`${file}: panel ${title} has no id`);
      for (const t of array(p['targets'])) {
        const target = record(t);
        queries.push({ panel: `${uid}/${title}`, uid, panelId: id, refId: str(target?.['refId'], `${file}: ${title}: refId`), expr: str(target?.['expr'], `${file}: ${title}: expr`) });
      }
    }
  };
  walk(array(doc['panels']));
  const variables = new Map<string, string>();
  for (const v of array(record(doc['templating'])?.['list'])) {
    const r = record(v);
    const name = r?.['name'];
    const q = r?.['query'];
    if (typeof name === 'string' && typeof q === 'string') variables.set(name, q);
  }
  return { file, uid, queries, variables };
}

export interface Substitutions {
  readonly job: string;
  readonly instance: string;
  /** For `$__rate_interval`, `$__interval` and `$__range`: a PromQL duration such as `30s`. */
  readonly window: string;
}

/** The expression as Grafana would send it with these variable values. */
export function substitute(expr: string, s: Substitutions): string {
  const out = expr
    .replaceAll('$__rate_interval', s.window)
    .replaceAll('$__interval', s.window)
    .replaceAll('$__range', s.window)
    .replaceAll('${job}', s.job)
    .replaceAll('$job', s.job)
    .replaceAll('${instance}', s.instance)
    .replaceAll('$instance', s.instance);
  if (out.includes('$')) throw new Error(`a variable left unsubstituted in ${out}`);
  return out;
}

/**
 * A value as Grafana's Prometheus data source puts a single variable value into a `=~` matcher:
 * regex-escaped, the backslash doubled for the PromQL string (`127\\.0\\.0\\.1:9443`).
 */
export function regexEscape(v: string): string {
  return v.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&');
}

/**
 * The metric names an expression selects. Every selector of the dashboards carries braces (the
 * job/instance matchers), so names are the identifiers right before a `{`; a `kube_cache_proxy_`
 * name anywhere else is reported as `<name> (no selector braces)` so a bare selector cannot slip by.
 */
export function metricNames(expr: string): Set<string> {
  const names = new Set<string>();
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)) names.add(m[1] ?? '');
  for (const m of expr.matchAll(/\b(kube_cache_proxy_[a-zA-Z0-9_]*)\b(?!\s*\{)/g)) names.add(`${m[1] ?? ''} (no selector braces)`);
  return names;
}

/** Every selector in `expr` (a metric name and its braces) lacks none of the job/instance matchers. */
export function selectorsWithoutScope(expr: string): string[] {
  const bad: string[] = [];
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)) {
    const inside = m[2] ?? '';
    if (!inside.includes('job=~"$job"') || !inside.includes('instance=~"$instance"')) bad.push(m[0]);
  }
  return bad;
}

/** The README's "Metrics" table: metric name → type (counter, gauge, histogram). */
export function readmeMetrics(): Map<string, string> {
  const text = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const start = text.indexOf('\n## Metrics');
  const end = text.indexOf('\n## ', start + 1);
  if (start < 0) throw new Error('README.md has no "## Metrics" section');
  const out = new Map<string, string>();
  for (const line of text.slice(start, end < 0 ? undefined : end).split('\n')) {
    const m = /^\| `([a-z_:][a-z0-9_:]*)` \| (counter|gauge|histogram) \|/.exec(line);
    if (m) out.set(m[1] ?? '', m[2] ?? '');
  }
  return out;
}

/**
 * The README metric a selected name belongs to: itself, or for a histogram's `_bucket`, `_sum`
 * and `_count` series its base name. Undefined when the README does not list it (or a histogram is
 * selected without a suffix, which exports no such series).
 */
export function documentedAs(name: string, readme: ReadonlyMap<string, string>): string | undefined {
  const t = readme.get(name);
  if (t && t !== 'histogram') return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && readme.get(m[1] ?? '') === 'histogram') return m[1];
  return undefined;
}
