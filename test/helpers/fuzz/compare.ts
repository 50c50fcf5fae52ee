// The fuzz test's comparison of a cacheable read's answers, the proxy's and the apiserver's. Equal
// by design (docs/design.md, test/integration/cache-differential.test.ts): the list's own metadata
// (resourceVersion, continue tokens; remainingItemCount), and the apiserver's trailing empty page
// with a selector (its cacher says "more" while unscanned candidates remain). Everything else must be equal: status,
// content type, the pages (items per page), the items in order, the object of a GET, a Status's code, reason and message.
import type { Reply } from './clients.js';

export type Answer = { readonly ok: true; readonly pages: ReadonlyArray<Extract<Reply, { ok: true }>> } | { readonly ok: false; readonly error: string };

function parse(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The continue token of a JSON list page, if any. */
export function continueOf(r: Extract<Reply, { ok: true }>): string | undefined {
  if (r.status !== 200 || !String(r.headers['content-type'] ?? '').startsWith('application/json')) return undefined;
  const j = parse(r.body);
  const meta = isObject(j) ? j['metadata'] : undefined;
  const c = isObject(meta) ? meta['continue'] : undefined;
  return typeof c === 'string' && c !== '' ? c : undefined;
}

function statusShape(b: Buffer): string {
  const j = parse(b);
  if (!isObject(j)) return b.toString('utf8').replace(/\d+/g, 'N');
  return JSON.stringify({ kind: j['kind'], code: j['code'], reason: j['reason'], message: String(j['message'] ?? '').replace(/\d+/g, 'N'), details: j['details'] });
}

/**
 * kube-apiserver v1.37.2's watch cache, for a cluster-wide LIST narrowed by a `metadata.namespace=`
 * field selector with a limit, issues a first continue token whose start key lacks the namespace
 * (`{"start":"/a-b6\u0000"}` for namespace fz…-b: the key is cut at the namespace prefix without its
 * slash), so its second page starts over and repeats the first page (the next token is right). The
 * cache's snapshots do not. Such a read is compared with the apiserver's repeated page taken out,
 * counted as put aside.
 */
export interface CompareOptions { readonly apiserverMayRepeatFirstPage: boolean }

/** undefined when equal, else what differs. `putAside` is called when the apiserver's known repetition was taken out. */
export function difference(d: Answer, p: Answer, o: CompareOptions = { apiserverMayRepeatFirstPage: false }, putAside: () => void = () => undefined): string | undefined {
  if (!d.ok || !p.ok) return !d.ok && !p.ok ? undefined : `direct ${d.ok ? 'answered' : d.error} / proxied ${p.ok ? 'answered' : p.error}`;
  const d0 = d.pages[0];
  const p0 = p.pages[0];
  if (!d0 || !p0) return 'no page';
  if (d0.status !== p0.status) return `status: direct ${d0.status} ${d0.body.toString('utf8', 0, 300)} / proxied ${p0.status} ${p0.body.toString('utf8', 0, 300)}`;
  const dct = String(d0.headers['content-type'] ?? '');
  const pct = String(p0.headers['content-type'] ?? '');
  if (dct !== pct) return `content-type: direct ${dct} / proxied ${pct}`;
  if (!dct.startsWith('application/json')) return undefined; // protobuf carries the list's resourceVersion: status and type suffice
  if (d0.status !== 200) {
    const a = statusShape(d0.body);
    const b = statusShape(p0.body);
    return a === b ? undefined : `error body: direct ${a} / proxied ${b}`;
  }
  const dj = d.pages.map((r) => parse(r.body));
  const pj = p.pages.map((r) => parse(r.body));
  const first = dj[0];
  if (!isObject(first) || !Array.isArray(first['items'])) {
    // One object (a GET).
    const a = JSON.stringify(first);
    const b = JSON.stringify(pj[0]);
    return a === b ? undefined : `object: direct ${a.slice(0, 400)} / proxied ${b.slice(0, 400)}`;
  }
  const items = (pages: unknown[]) => pages.flatMap((x) => (isObject(x) && Array.isArray(x['items']) ? (x['items'] as unknown[]) : ['<not a list page>']));
  const kind = (pages: unknown[]) => pages.map((x) => (isObject(x) ? `${String(x['kind'])} ${String(x['apiVersion'])}` : 'x')).filter((v, i, a) => a.indexOf(v) === i).join();
  if (kind(dj) !== kind(pj)) return `kind: direct ${kind(dj)} / proxied ${kind(pj)}`;
  const pageItems = (x: unknown) => JSON.stringify(isObject(x) && Array.isArray(x['items']) ? x['items'] : null);
  if (o.apiserverMayRepeatFirstPage && dj.length > pj.length && dj.length > 1 && pageItems(dj[0]) === pageItems(dj[1]) && pageItems(dj[0]) !== '[]') {
    dj.splice(1, 1);
    putAside();
  }
  // The same pages (item counts), but for the apiserver's trailing empty page with a selector.
  const counts = (pages: unknown[]) => pages.map((x) => (isObject(x) && Array.isArray(x['items']) ? x['items'].length : -1));
  const dc = counts(dj);
  const pc = counts(pj);
  if (dc.length === pc.length + 1 && dc[dc.length - 1] === 0) dc.pop();
  if (dc.join() !== pc.join()) return `pages (items per page): direct [${counts(dj).join()}] / proxied [${pc.join()}]`;
  return itemsDifference(items(dj), items(pj), dj.length, pj.length);
}

function itemsDifference(di: readonly unknown[], pi: readonly unknown[], dPages: number, pPages: number): string | undefined {
  for (let i = 0; i < Math.max(di.length, pi.length); i++) {
    const a = JSON.stringify(di[i]);
    const b = JSON.stringify(pi[i]);
    if (a !== b) {
      const name = (x: unknown) => (isObject(x) && isObject(x['metadata']) ? `${String(x['metadata']['namespace'] ?? '')}/${String(x['metadata']['name'])}` : String(x));
      return `items differ at ${i} (direct ${di.length} items in ${dPages} pages, proxied ${pi.length} in ${pPages}): direct ${name(di[i])} / proxied ${name(pi[i])}`;
    }
  }
  return undefined;
}
