// Whether the cache's JSON answer is what the apiserver would give this client.

/** undefined when a JSON answer fits the Accept header; otherwise the reason to forward. */
export function jsonAnswerRefusal(accept: string | undefined): string | undefined {
  if (accept === undefined || accept.trim() === '') return undefined;
  let json = false;
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    if (params.some((p) => p.startsWith('as='))) return 'table';
    if (params.some((p) => p === 'q=0' || p === 'q=0.0' || p === 'q=0.00' || p === 'q=0.000')) continue;
    if (type === 'application/json' || type === '*/*' || type === 'application/*') json = true;
  }
  return json ? undefined : 'not_json';
}

/** kube-apiserver pretty-prints for these user agents (and ?pretty=true). */
export function wantsPretty(userAgent: string | undefined): boolean {
  return userAgent !== undefined && /^(curl|Wget|Mozilla\/5\.0)/.test(userAgent);
}

/** An exact `gzip` entry in Accept-Encoding, as the apiserver's compression filter checks. */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return acceptEncoding.split(',').some((e) => e.trim().split(';')[0]?.trim().toLowerCase() === 'gzip');
}
