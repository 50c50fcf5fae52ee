// Whether the cache's JSON answer is what the apiserver would give this client. The Accept header
// is read as kube-apiserver reads it (github.com/munnerz/goautoneg ParseAccept, then
// negotiation.NegotiateMediaTypeOptions / acceptMediaTypeOptions): clauses split on ',', only ASCII
// spaces trimmed, types and parameter names compared case-sensitively, a parameter without a value
// or with a second '=' ignored. A q=0 clause is not a refusal there (it only sorts last); here it is
// treated as one, which only ever forwards.

/** Go's strings.TrimFunc(s, r == ' '). */
function trimSpaces(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) === 0x20) a++;
  while (b > a && s.charCodeAt(b - 1) === 0x20) b--;
  return s.slice(a, b);
}

interface Clause {
  readonly type: string;
  readonly subType: string;
  /** undefined when the q parameter is absent. */
  readonly q: string | undefined;
  readonly params: ReadonlyMap<string, string>;
}

/** goautoneg.ParseAccept without the sort (clauses in header order). */
function parseAccept(header: string): Clause[] {
  const out: Clause[] = [];
  for (const raw of header.split(',')) {
    const part = trimSpaces(raw);
    const semi = part.indexOf(';');
    const sp = semi < 0 ? part : part.slice(0, semi);
    const paramText = semi < 0 ? '' : part.slice(semi + 1);
    const slash = sp.indexOf('/');
    const type = trimSpaces(slash < 0 ? sp : sp.slice(0, slash));
    const rest = slash < 0 ? '' : sp.slice(slash + 1);
    let subType: string;
    if (rest === '') {
      if (type !== '*') continue;
      subType = '*';
    } else {
      if (rest.includes('/')) continue;
      subType = trimSpaces(rest);
    }
    let q: string | undefined;
    const params = new Map<string, string>();
    if (paramText !== '') {
      for (const p of paramText.split(';')) {
        const eq = p.indexOf('=');
        if (eq < 0 || eq === p.length - 1) continue;
        const after = p.slice(eq + 1);
        const eq2 = after.indexOf('=');
        if (eq2 >= 0 && eq2 < after.length - 1) continue;
        const value = eq2 < 0 ? after : after.slice(0, eq2);
        const key = trimSpaces(p.slice(0, eq));
        if (key === 'q') q = value;
        else params.set(key, trimSpaces(value));
      }
    }
    out.push({ type, subType, q, params });
  }
  return out;
}

/** Go's strconv.ParseFloat failing or giving 0 (then goautoneg's Q is 0). */
function qIsZero(q: string | undefined): boolean {
  if (q === undefined) return false;
  const n = Number(q);
  return q.trim() !== q || q === '' || !Number.isFinite(n) || n === 0;
}

/** What kube-apiserver's GET and LIST routes declare they produce (CBOR only behind an alpha gate). */
const ROUTE_PRODUCES: ReadonlySet<string> = new Set(['*/*', 'application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf']);

/**
 * go-restful's route selection (Route.matchesAccept), which runs before the apiserver's own
 * negotiation: some clause, cut at its first ';' and space-trimmed, must be exactly `*\/*` or a
 * type the route produces. `application/*` alone, `*`, or `Application/JSON` get a 406 there.
 */
function routeAccepts(accept: string): boolean {
  for (const raw of accept.split(',')) {
    const semi = raw.indexOf(';');
    if (ROUTE_PRODUCES.has(trimSpaces(semi < 0 ? raw : raw.slice(0, semi)))) return true;
  }
  return false;
}

/**
 * undefined when a JSON answer fits the Accept header (the first Accept header line, as Go's
 * Header.Get reads it); otherwise the reason to forward.
 */
export function jsonAnswerRefusal(accept: string | undefined): string | undefined {
  // An empty header gets the first serializer: JSON.
  if (accept === undefined || accept === '') return undefined;
  if (!routeAccepts(accept)) return 'not_acceptable';
  let json = false;
  for (const c of parseAccept(accept)) {
    const servesJson = (c.type === 'application' && (c.subType === 'json' || c.subType === '*')) || (c.type === '*' && c.subType === '*');
    // A transformation (Table, PartialObjectMetadata), asked for on any clause.
    if (c.params.has('as') || c.params.has('g') || c.params.has('v')) return 'table';
    if (!servesJson || qIsZero(c.q)) continue;
    // Clauses the apiserver refuses for JSON: another stream schema, a server version.
    const stream = c.params.get('stream');
    if ((stream !== undefined && stream !== '' && stream !== 'watch') || (c.params.get('sv') ?? '') !== '') continue;
    if (c.params.get('pretty') === '1') return 'pretty';
    json = true;
  }
  return json ? undefined : 'not_json';
}

/** kube-apiserver pretty-prints for these user agents (and ?pretty=true). */
export function wantsPretty(userAgent: string | undefined): boolean {
  return userAgent !== undefined && /^(curl|Wget|Mozilla\/5\.0)/.test(userAgent);
}

/** Go's strings.TrimSpace for the characters a header value can hold (Latin-1). */
function trimGoSpace(s: string): string {
  return s.replace(/^[\t\n\v\f\r \u0085\u00a0]+|[\t\n\v\f\r \u0085\u00a0]+$/g, '');
}

/**
 * An exact `gzip` entry in (the first) Accept-Encoding header, as the apiserver's
 * ContentEncodingSupported checks: split on ',', trimmed, compared case-sensitively, parameters
 * not allowed (`gzip;q=1` is not `gzip`).
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return acceptEncoding.split(',').some((e) => trimGoSpace(e) === 'gzip');
}
