// Port of kube-apiserver's RequestInfoFactory.NewRequestInfo
// (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) with the default prefixes: "api" without
// a group, "apis" with one. The parts of Go's url.ParseRequestURI, url.ParseQuery, fields.ParseSelector
// and the ListOptions query decoding that change the result are ported too. Not ported: labels.Parse
// (an invalid labelSelector makes upstream drop the metadata.name name; here it is kept) and the
// validation of an absolute-form target's authority. Where upstream fails (Go answers 400, or
// NewRequestInfo errors on /api/v1/watch), a non-resource info is returned instead.

export interface RequestInfo {
  readonly isResourceRequest: boolean;
  /** Percent-decoded path, as Go's req.URL.Path. */
  readonly path: string;
  /** Kube verb (get, list, watch, create, ...) for resource requests; lowercase method otherwise. */
  readonly verb: string;
  readonly apiPrefix: string;
  readonly apiGroup: string;
  readonly apiVersion: string;
  readonly namespace: string;
  readonly resource: string;
  readonly subresource: string;
  readonly name: string;
  /** Path parts from the resource on: resource/name/subresource/... */
  readonly parts: string[];
  /** Raw selectors, only for list, watch and deletecollection not addressed via /watch/ or /proxy/. */
  readonly fieldSelector: string;
  readonly labelSelector: string;
  /** The query as Go's url.ParseQuery reads it (every value per key, in order). */
  readonly query: Query;
  /** The raw query had pairs Go's parser drops (';', bad escapes): answer nothing from it but the apiserver. */
  readonly queryLossy: boolean;
}

const API_PREFIXES = new Set(['api', 'apis']);
const GROUPLESS_API_PREFIXES = new Set(['api']);
const SPECIAL_VERBS = new Set(['proxy', 'watch']);
const SPECIAL_VERBS_NO_SUBRESOURCES = new Set(['proxy']);
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
const VERBS_WITH_SELECTORS = new Set(['list', 'watch', 'deletecollection']);
const METHOD_VERBS: ReadonlyMap<string, string> = new Map([
  ['POST', 'create'], ['GET', 'get'], ['HEAD', 'get'], ['PUT', 'update'], ['PATCH', 'patch'], ['DELETE', 'delete'],
]);
/** Go's url.ParseQuery default limit (GODEBUG urlmaxqueryparams): past it the whole query is ignored. */
const MAX_QUERY_PARAMS = 10000;

/** Resolves the request info for a method and a raw request-target (path and query). Never throws. */
export function resolveRequestInfo(method: string, url: string): RequestInfo {
  const target = parseRequestTarget(url);
  // Go's server answers 400 before any handler runs when the target doesn't parse.
  if (target === undefined) return nonResource(method, url.split('?', 1)[0] ?? '');
  const nonResourceInfo = nonResource(method, target.path);

  let parts = splitPath(target.path);
  if (parts.length < 3 || !API_PREFIXES.has(at(parts, 0))) return nonResourceInfo;
  const apiPrefix = at(parts, 0);
  parts = parts.slice(1);
  let apiGroup = '';
  if (!GROUPLESS_API_PREFIXES.has(apiPrefix)) {
    if (parts.length < 3) return nonResourceInfo; // the prefix is consumed: "do we have four parts?"
    apiGroup = at(parts, 0);
    parts = parts.slice(1);
  }
  const apiVersion = at(parts, 0);
  parts = parts.slice(1);

  let verb: string;
  const verbViaPathPrefix = SPECIAL_VERBS.has(at(parts, 0));
  if (verbViaPathPrefix) {
    // Upstream returns an error here ("unable to determine kind and namespace"), answered with a 500.
    if (parts.length < 2) return nonResourceInfo;
    verb = at(parts, 0);
    parts = parts.slice(1);
  } else {
    verb = METHOD_VERBS.get(method) ?? '';
  }

  let namespace = '';
  if (at(parts, 0) === 'namespaces' && parts.length > 1) {
    namespace = at(parts, 1);
    // Anything after the namespace name that isn't a namespace subresource is a resource of its own.
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(at(parts, 2))) parts = parts.slice(2);
  }

  const resource = at(parts, 0);
  let name = at(parts, 1);
  const subresource = parts.length >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.has(verb) ? at(parts, 2) : '';

  const query = parseQuery(target.rawQuery);
  if (name === '' && verb === 'get') {
    const opts = decodeListOptions(query);
    if (opts === undefined) {
      // A decoding error defaults to list without a name, though a watch parameter is still honoured.
      const watch = first(query, 'watch')?.toLowerCase();
      verb = watch !== undefined && watch !== 'false' && watch !== '0' ? 'watch' : 'list';
    } else {
      verb = opts.watch ? 'watch' : 'list';
      const exact = opts.fieldSelector.find((t) => t.equals && t.field === 'metadata.name');
      if (exact !== undefined && isValidPathSegmentName(exact.value)) name = exact.value;
    }
  }
  if (name === '' && verb === 'delete') verb = 'deletecollection';

  // The AuthorizeWithSelectors feature gate (on by default since 1.32) is taken as enabled.
  const withSelectors = !verbViaPathPrefix && VERBS_WITH_SELECTORS.has(verb);
  return {
    isResourceRequest: true, path: target.path, verb, apiPrefix, apiGroup, apiVersion, namespace,
    resource, subresource, name, parts,
    fieldSelector: withSelectors ? first(query, 'fieldSelector') ?? '' : '',
    labelSelector: withSelectors ? first(query, 'labelSelector') ?? '' : '',
    query, queryLossy: isLossy(target.rawQuery, query),
  };
}

function nonResource(method: string, path: string): RequestInfo {
  return {
    isResourceRequest: false, path, verb: method.toLowerCase(), apiPrefix: '', apiGroup: '', apiVersion: '',
    namespace: '', resource: '', subresource: '', name: '', parts: [], fieldSelector: '', labelSelector: '',
    query: EMPTY_QUERY, queryLossy: false,
  };
}

function at(parts: readonly string[], i: number): string {
  return parts[i] ?? '';
}

function splitPath(path: string): string[] {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? [] : trimmed.split('/');
}

/** Go's url.ParseRequestURI, as far as Path and RawQuery go; undefined where it fails. */
function parseRequestTarget(target: string): { path: string; rawQuery: string } | undefined {
  if (target === '' || /[\x00-\x1f\x7f]/.test(target)) return undefined;
  if (target === '*') return { path: '*', rawQuery: '' };
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(target)?.[0] ?? '';
  let rest = target.slice(scheme.length);
  const q = rest.indexOf('?');
  const rawQuery = q < 0 ? '' : rest.slice(q + 1);
  if (q >= 0) rest = rest.slice(0, q);
  if (!rest.startsWith('/')) return scheme === '' ? undefined : { path: '', rawQuery }; // opaque: no path
  if (scheme !== '' && rest.startsWith('//')) {
    // Absolute form: drop the authority (not validated here, unlike Go).
    const slash = rest.indexOf('/', 2);
    rest = slash < 0 ? '' : rest.slice(slash);
  }
  const path = unescape(rest, false);
  return path === undefined ? undefined : { path, rawQuery };
}

/** Go's url unescaping (path mode, or query mode where '+' is a space); undefined on a bad %-escape. */
function unescape(s: string, query: boolean): string | undefined {
  if (/%(?![0-9A-Fa-f]{2})/.test(s)) return undefined;
  const plain = query ? s.replace(/\+/g, ' ') : s;
  // Decoded bytes that aren't valid UTF-8 become U+FFFD (Go would keep the raw bytes).
  return plain.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}

export type Query = ReadonlyMap<string, readonly string[]>;
const EMPTY_QUERY: Query = new Map();

function isLossy(raw: string, query: Query): boolean {
  if (raw === '') return false;
  let kept = 0;
  for (const values of query.values()) kept += values.length;
  return kept !== raw.split('&').filter((p) => p !== '').length;
}

/** Go's url.ParseQuery, keeping what it keeps when it returns an error. */
function parseQuery(raw: string): Query {
  const out = new Map<string, string[]>();
  if (raw === '') return out;
  const pairs = raw.split('&');
  if (pairs.length > MAX_QUERY_PARAMS) return out;
  for (const pair of pairs) {
    if (pair === '' || pair.includes(';')) continue; // Go rejects ';' as a separator
    const eq = pair.indexOf('=');
    const key = unescape(eq < 0 ? pair : pair.slice(0, eq), true);
    const value = unescape(eq < 0 ? '' : pair.slice(eq + 1), true);
    if (key === undefined || value === undefined) continue;
    const values = out.get(key);
    if (values) values.push(value);
    else out.set(key, [value]);
  }
  return out;
}

function first(query: Query, key: string): string | undefined {
  return query.get(key)?.[0];
}

interface FieldTerm { readonly field: string; readonly equals: boolean; readonly value: string }

/**
 * ParameterCodec.DecodeParameters(query, meta/v1, &metainternalversion.ListOptions{}), for the
 * fields requestinfo reads; undefined where it fails. labels.Parse of labelSelector isn't ported.
 */
function decodeListOptions(query: Query): { watch: boolean; fieldSelector: FieldTerm[] } | undefined {
  for (const key of ['timeoutSeconds', 'limit']) {
    const value = first(query, key);
    if (value !== undefined && !isInt64(value)) return undefined;
  }
  const fieldSelector = parseFieldSelector(first(query, 'fieldSelector') ?? '');
  if (fieldSelector === undefined) return undefined;
  const watch = first(query, 'watch');
  // runtime.Convert_Slice_string_To_bool: only "0" and strings.EqualFold(v, "false") are false.
  // The u flag makes /i use Unicode simple case folding, as EqualFold does ("ſ" matches "s").
  return { watch: watch !== undefined && watch !== '0' && !/^false$/iu.test(watch), fieldSelector };
}

/** strconv.ParseInt(s, 10, 64) succeeds. */
function isInt64(s: string): boolean {
  if (!/^[+-]?[0-9]+$/.test(s)) return false;
  const n = BigInt(s);
  return n >= -(2n ** 63n) && n < 2n ** 63n;
}

/** fields.ParseSelector, as its terms in the order RequiresExactMatch visits them; undefined if invalid. */
function parseFieldSelector(selector: string): FieldTerm[] | undefined {
  const terms: FieldTerm[] = [];
  // Terms are split on commas not escaped by a backslash (the escapes stay), then sorted.
  for (const part of selector.split(/(?<=(?:^|[^\\])(?:\\\\)*),/).sort(compareUtf8)) {
    if (part === '') continue;
    // The first operator occurrence splits; no escaping on the left-hand side.
    const op = /!=|==|=/.exec(part);
    if (op === null) return undefined;
    const value = unescapeFieldValue(part.slice(op.index + op[0].length));
    if (value === undefined) return undefined;
    terms.push({ field: part.slice(0, op.index), equals: op[0] !== '!=', value });
  }
  return terms;
}

/** fields.UnescapeValue: only \\, \, and \= are escapes, and a bare , or = is an error. */
function unescapeFieldValue(s: string): string | undefined {
  return /^(?:[^\\,=]|\\[\\,=])*$/u.test(s) ? s.replace(/\\(.)/gu, '$1') : undefined;
}

/** Go compares strings bytewise, so sort by UTF-8 bytes rather than UTF-16 code units. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** path.IsValidPathSegmentName reports no errors. */
function isValidPathSegmentName(name: string): boolean {
  return name !== '.' && name !== '..' && !name.includes('/') && !name.includes('%');
}
