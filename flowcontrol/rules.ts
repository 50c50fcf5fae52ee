// Rules → levels. The first rule (in configuration order) whose every field matches wins; no match
// means the default level. Rules are indexed by verb and by resource, so a request only looks at
// the rules that name its verb and resource (or leave them open): with many rules, each naming a
// few verbs and resources, matching does not scan the list one by one.
import { resourceKey, type RequestAttributes } from './attributes.js';
import type { RuleSpec } from './config.js';

export interface CompiledRule {
  readonly index: number;
  readonly spec: RuleSpec;
  readonly matches: (a: RequestAttributes) => boolean;
}

const ANY = '*';

function compile(spec: RuleSpec, index: number): CompiledRule {
  const checks: Array<(a: RequestAttributes) => boolean> = [];
  const set = (xs: readonly string[] | undefined) => (xs && !xs.includes(ANY) ? new Set(xs) : undefined);
  const users = set(spec.users);
  if (users) checks.push((a) => a.user !== undefined && users.has(a.user));
  const groups = set(spec.groups);
  if (groups) checks.push((a) => a.groups.some((g) => groups.has(g)));
  const namespaces = set(spec.namespaces);
  if (namespaces) checks.push((a) => namespaces.has(a.namespace));
  if (spec.source) {
    const source = spec.source;
    checks.push((a) => a.source === source);
  }
  if (spec.userAgents) {
    const prefixes = spec.userAgents.flatMap((u) => ('prefix' in u ? [u.prefix] : []));
    const regexes = spec.userAgents.flatMap((u) => ('regex' in u ? [new RegExp(u.regex)] : []));
    checks.push((a) => prefixes.some((p) => a.userAgent.startsWith(p)) || regexes.some((r) => r.test(a.userAgent)));
  }
  if (spec.resources) checks.push((a) => a.isResourceRequest);
  if (spec.nonResourceURLs) {
    const exact = new Set(spec.nonResourceURLs.filter((u) => !u.endsWith('*')));
    const prefixes = spec.nonResourceURLs.filter((u) => u.endsWith('*')).map((u) => u.slice(0, -1));
    checks.push((a) => !a.isResourceRequest && (exact.has(a.path) || prefixes.some((p) => a.path.startsWith(p))));
  }
  // Verbs and resources are checked by the index.
  return {
    index, spec,
    matches: (a) => {
      for (const c of checks) if (!c(a)) return false;
      return true;
    },
  };
}

export class RuleIndex {
  /** verb (or *) → resource key (or *) → rules in order. */
  readonly #byVerb = new Map<string, Map<string, CompiledRule[]>>();
  readonly size: number;

  constructor(rules: readonly RuleSpec[]) {
    this.size = rules.length;
    rules.forEach((spec, i) => {
      const rule = compile(spec, i);
      const verbs = spec.verbs && !spec.verbs.includes(ANY) ? spec.verbs : [ANY];
      const resources = spec.resources && !spec.resources.includes(ANY) ? spec.resources : [ANY];
      for (const v of verbs) {
        let byResource = this.#byVerb.get(v);
        if (!byResource) this.#byVerb.set(v, (byResource = new Map()));
        for (const r of resources) {
          const list = byResource.get(r);
          if (list) list.push(rule);
          else byResource.set(r, [rule]);
        }
      }
    });
  }

  /** The first matching rule, or undefined. */
  match(a: RequestAttributes): CompiledRule | undefined {
    const key = a.isResourceRequest ? resourceKey(a) : '';
    let best = this.#first(this.#byVerb.get(a.verb), key, a, undefined);
    best = this.#first(this.#byVerb.get(ANY), key, a, best);
    return best;
  }

  #first(byResource: Map<string, CompiledRule[]> | undefined, key: string, a: RequestAttributes, best: CompiledRule | undefined): CompiledRule | undefined {
    if (!byResource) return best;
    if (key !== '') best = firstIn(byResource.get(key), a, best);
    return firstIn(byResource.get(ANY), a, best);
  }
}

/** The first rule of `list` that matches and comes before `best`. */
function firstIn(list: readonly CompiledRule[] | undefined, a: RequestAttributes, best: CompiledRule | undefined): CompiledRule | undefined {
  if (!list) return best;
  for (const rule of list) {
    if (best && rule.index >= best.index) return best;
    if (rule.matches(a)) return rule;
  }
  return best;
}

export function compileRules(rules: readonly RuleSpec[]): CompiledRule[] {
  return rules.map(compile);
}

/** The same answer by scanning every rule in order: what the index is tested and measured against. */
export function matchByScan(rules: readonly CompiledRule[], a: RequestAttributes): number | undefined {
  const key = a.isResourceRequest ? resourceKey(a) : '';
  for (const { spec, index, matches } of rules) {
    if (spec.verbs && !spec.verbs.includes(ANY) && !spec.verbs.includes(a.verb)) continue;
    if (spec.resources && !spec.resources.includes(ANY) && !spec.resources.includes(key)) continue;
    if (matches(a)) return index;
  }
  return undefined;
}
