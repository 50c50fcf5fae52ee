import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveRequestInfo, type RequestInfo } from '../../proxy/request-info.js';

interface Case {
  readonly method: string;
  readonly url: string;
  readonly want: Expected;
}

/** RequestInfo without the parsed query, which its own cases check. */
type Expected = Omit<RequestInfo, 'query' | 'queryLossy'>;

function withoutQuery(info: RequestInfo): Expected {
  const { query: _q, queryLossy: _l, ...rest } = info;
  return rest;
}

const pathOf = (url: string): string => url.split('?', 1)[0] ?? '';

/** A resource request, in the column order of upstream's TestGetAPIRequestInfo table. */
function res(
  method: string, url: string, verb: string, apiPrefix: string, apiGroup: string, apiVersion: string,
  namespace: string, resource: string, subresource: string, name: string, parts: string[],
  extra: Partial<Expected> = {},
): Case {
  const want: Expected = {
    isResourceRequest: true, path: pathOf(url), verb, apiPrefix, apiGroup, apiVersion, namespace, resource,
    subresource, name, parts, fieldSelector: '', labelSelector: '', ...extra,
  };
  return { method, url, want };
}

function nonres(method: string, url: string, path = pathOf(url)): Case {
  const want: Expected = {
    isResourceRequest: false, path, verb: method.toLowerCase(), apiPrefix: '', apiGroup: '', apiVersion: '',
    namespace: '', resource: '', subresource: '', name: '', parts: [], fieldSelector: '', labelSelector: '',
  };
  return { method, url, want };
}

/** GET list of /api/v1/namespaces/a/pods with a query, for the query-parsing cases. */
function podsList(query: string, verb: string, extra: Partial<Expected> = {}): Case {
  return res('GET', `/api/v1/namespaces/a/pods?${query}`, verb, 'api', '', 'v1', 'a', 'pods', '', '', ['pods'], extra);
}
const byName = (name: string, fieldSelector: string): Partial<Expected> => ({ name, fieldSelector });

// Upstream's table, apiPrefix corrected to "apis" for /apis paths (upstream never asserts apiPrefix
// or apiGroup, and lists "api" there); exact duplicate rows left out.
const upstreamAPIRequestInfo: Case[] = [
  res('GET', '/api/v1/namespaces', 'list', 'api', '', 'v1', '', 'namespaces', '', '', ['namespaces']),
  res('GET', '/api/v1/namespaces/other', 'get', 'api', '', 'v1', 'other', 'namespaces', '', 'other', ['namespaces', 'other']),
  res('GET', '/api/v1/namespaces/other/pods', 'list', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/namespaces/other/pods/foo', 'get', 'api', '', 'v1', 'other', 'pods', '', 'foo', ['pods', 'foo']),
  res('HEAD', '/api/v1/namespaces/other/pods/foo', 'get', 'api', '', 'v1', 'other', 'pods', '', 'foo', ['pods', 'foo']),
  res('GET', '/api/v1/pods', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('HEAD', '/api/v1/pods', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  // special verbs
  res('GET', '/api/v1/proxy/namespaces/other/pods/foo', 'proxy', 'api', '', 'v1', 'other', 'pods', '', 'foo', ['pods', 'foo']),
  res('GET', '/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource', 'proxy', 'api', '', 'v1', 'other', 'pods', '', 'foo',
    ['pods', 'foo', 'subpath', 'not', 'a', 'subresource']),
  res('GET', '/api/v1/watch/pods', 'watch', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/pods?watch=true', 'watch', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/pods?watch=false', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/watch/namespaces/other/pods', 'watch', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/namespaces/other/pods?watch=1', 'watch', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/namespaces/other/pods?watch=0', 'list', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']),
  // subresource identification
  res('GET', '/api/v1/namespaces/other/pods/foo/status', 'get', 'api', '', 'v1', 'other', 'pods', 'status', 'foo', ['pods', 'foo', 'status']),
  res('GET', '/api/v1/namespaces/other/pods/foo/proxy/subpath', 'get', 'api', '', 'v1', 'other', 'pods', 'proxy', 'foo',
    ['pods', 'foo', 'proxy', 'subpath']),
  res('PUT', '/api/v1/namespaces/other/finalize', 'update', 'api', '', 'v1', 'other', 'namespaces', 'finalize', 'other',
    ['namespaces', 'other', 'finalize']),
  res('PUT', '/api/v1/namespaces/other/status', 'update', 'api', '', 'v1', 'other', 'namespaces', 'status', 'other',
    ['namespaces', 'other', 'status']),
  // verb identification
  res('PATCH', '/api/v1/namespaces/other/pods/foo', 'patch', 'api', '', 'v1', 'other', 'pods', '', 'foo', ['pods', 'foo']),
  res('DELETE', '/api/v1/namespaces/other/pods/foo', 'delete', 'api', '', 'v1', 'other', 'pods', '', 'foo', ['pods', 'foo']),
  res('POST', '/api/v1/namespaces/other/pods', 'create', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']),
  // deletecollection verb identification
  res('DELETE', '/api/v1/nodes', 'deletecollection', 'api', '', 'v1', '', 'nodes', '', '', ['nodes']),
  res('DELETE', '/api/v1/namespaces', 'deletecollection', 'api', '', 'v1', '', 'namespaces', '', '', ['namespaces']),
  res('DELETE', '/api/v1/namespaces/other/pods', 'deletecollection', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']),
  res('DELETE', '/apis/extensions/v1/namespaces/other/pods', 'deletecollection', 'apis', 'extensions', 'v1', 'other', 'pods', '', '', ['pods']),
  // api group and version identification
  res('POST', '/apis/extensions/v1/namespaces/other/pods', 'create', 'apis', 'extensions', 'v1', 'other', 'pods', '', '', ['pods']),
  res('POST', '/apis/extensions/v1beta3/namespaces/other/pods', 'create', 'apis', 'extensions', 'v1beta3', 'other', 'pods', '', '', ['pods']),
  // upstream's error cases, which are non-resource requests
  nonres('GET', '/'),
  nonres('GET', '/api/version/'),
  nonres('GET', '/apis/group/version/'),
  nonres('GET', '/badprefix/version/resource'),
  nonres('GET', '/apis/version/resource'),
];

const upstreamNonAPIRequestInfo: Case[] = [
  res('GET', '/api/version/resource', 'list', 'api', '', 'version', '', 'resource', '', '', ['resource']),
  res('GET', '/apis/group/version/resource/name/subresource', 'get', 'apis', 'group', 'version', '', 'resource', 'subresource', 'name',
    ['resource', 'name', 'subresource']),
  res('GET', '/api/version/resource/name/subresource', 'get', 'api', '', 'version', '', 'resource', 'subresource', 'name',
    ['resource', 'name', 'subresource']),
  res('GET', '/apis/batch/v1/job', 'list', 'apis', 'batch', 'v1', '', 'job', '', '', ['job']),
  res('GET', '/apis/batch/v1/job/foo', 'get', 'apis', 'batch', 'v1', '', 'job', '', 'foo', ['job', 'foo']),
  res('GET', '/apis/batch/v1/job/foo/scale', 'get', 'apis', 'batch', 'v1', '', 'job', 'scale', 'foo', ['job', 'foo', 'scale']),
  nonres('GET', '/not-api/version/resource'),
  nonres('GET', '/apis/extensions/v1beta1'),
  nonres('GET', '/apis/extensions/v1beta1/'),
  nonres('GET', '/api/version'),
  nonres('GET', '/api'),
  nonres('GET', '/'),
  nonres('GET', ''),
];

/** Upstream's TestSelectorParsing, all on /apis/group/version/... */
function groupRes(method: string, query: string, verb: string, name: string, extra: Partial<RequestInfo> = {}, rest = 'resource'): Case {
  const parts = rest.split('/').filter((p) => p !== 'watch');
  return res(method, `/apis/group/version/${rest}${query}`, verb, 'apis', 'group', 'version', '', 'resource', '', name, parts, extra);
}
const upstreamSelectorParsing: Case[] = [
  groupRes('GET', '', 'list', ''),
  groupRes('GET', '?fieldSelector=metadata.name=name1', 'list', 'name1', { fieldSelector: 'metadata.name=name1' }),
  groupRes('GET', '?watch=true&fieldSelector=metadata.name=name1', 'watch', 'name1', { fieldSelector: 'metadata.name=name1' }),
  groupRes('GET', '?fieldSelector=foo=bar&labelSelector=baz=qux', 'list', '', { fieldSelector: 'foo=bar', labelSelector: 'baz=qux' }),
  groupRes('GET', '?fieldSelector=metadata.name=name1,foo', 'list', '', { fieldSelector: 'metadata.name=name1,foo' }),
  groupRes('GET', '?fieldSelector=metadata.name=name1,foo&watch=true', 'watch', '', { fieldSelector: 'metadata.name=name1,foo' }),
  groupRes('GET', '?fieldSelector=metadata.name=name1,foo&watch=false', 'list', '', { fieldSelector: 'metadata.name=name1,foo' }),
  groupRes('DELETE', '?fieldSelector=foo=bar&labelSelector=baz=qux', 'deletecollection', '', { fieldSelector: 'foo=bar', labelSelector: 'baz=qux' }),
  groupRes('GET', '?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz', 'list', 'foo',
    { fieldSelector: 'metadata.name=foo', labelSelector: 'foo=bar' }),
  groupRes('GET', '?fieldSelector=foo=bar&labelSelector=foo=bar', 'get', 'name', {}, 'resource/name'),
  groupRes('GET', '?fieldSelector=metadata.name=foo&labelSelector=foo=bar', 'watch', '', {}, 'watch/resource'),
  groupRes('GET', '?fieldSelector=metadata.name=foo&labelSelector=foo=bar', 'watch', 'name', {}, 'watch/resource/name'),
];

const requested: Case[] = [
  res('GET', '/api/v1/pods?watch=true', 'watch', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/pods?watch=0', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/pods?watch=', 'watch', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/watch/namespaces/a/pods', 'watch', 'api', '', 'v1', 'a', 'pods', '', '', ['pods']),
  res('GET', '/apis/apps/v1/namespaces/a/deployments/x/scale', 'get', 'apis', 'apps', 'v1', 'a', 'deployments', 'scale', 'x',
    ['deployments', 'x', 'scale']),
  res('PUT', '/apis/apps/v1/namespaces/a/deployments/x/scale', 'update', 'apis', 'apps', 'v1', 'a', 'deployments', 'scale', 'x',
    ['deployments', 'x', 'scale']),
  nonres('GET', '/version'),
  nonres('GET', '/openapi/v3'),
  nonres('GET', '/api'),
  nonres('GET', '/apis'),
  nonres('GET', '/healthz'),
  nonres('HEAD', '/healthz'),
  res('GET', '/api/v1/namespaces/a/pods/p/exec?command=ls', 'get', 'api', '', 'v1', 'a', 'pods', 'exec', 'p', ['pods', 'p', 'exec']),
  res('POST', '/api/v1/namespaces/a/pods/p/exec?command=ls', 'create', 'api', '', 'v1', 'a', 'pods', 'exec', 'p', ['pods', 'p', 'exec']),
  podsList('fieldSelector=metadata.name%3Dfoo', 'list', byName('foo', 'metadata.name=foo')),
];

const more: Case[] = [
  // verbs
  res('OPTIONS', '/api/v1/pods', '', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  nonres('OPTIONS', '/healthz'),
  res('DELETE', '/api/v1/proxy/nodes/n1/x', 'proxy', 'api', '', 'v1', '', 'nodes', '', 'n1', ['nodes', 'n1', 'x']),
  res('GET', '/api/v1/watch/namespaces/a', 'watch', 'api', '', 'v1', 'a', 'namespaces', '', 'a', ['namespaces', 'a']),
  res('GET', '/api/v1/namespaces/a/status', 'get', 'api', '', 'v1', 'a', 'namespaces', 'status', 'a', ['namespaces', 'a', 'status']),
  nonres('GET', '/api/v1/watch'), // upstream: error "unable to determine kind and namespace"
  nonres('GET', '/apis/g/v/proxy'),
  res('POST', '/api/v1/namespaces/a/pods?fieldSelector=a%3Db', 'create', 'api', '', 'v1', 'a', 'pods', '', '', ['pods']),
  res('DELETE', '/api/v1/namespaces/a/pods?labelSelector=app%3Dx', 'deletecollection', 'api', '', 'v1', 'a', 'pods', '', '', ['pods'],
    { labelSelector: 'app=x' }),
  res('HEAD', '/api/v1/pods?fieldSelector=metadata.name%3Dfoo', 'list', 'api', '', 'v1', '', 'pods', '', 'foo', ['pods'],
    byName('foo', 'metadata.name=foo')),
  // watch truthiness
  podsList('watch', 'watch'),
  podsList('watch=FALSE', 'list'),
  podsList('watch=false&watch=true', 'list'),
  podsList('watch=%66alse', 'list'),
  podsList('wat%63h=1', 'watch'),
  podsList('watch=+', 'watch'),
  podsList('watch=fal%C5%BFe', 'list'), // strings.EqualFold("falſe", "false")
  // a ListOptions decoding error: list without a name, though watch is honoured (strings.ToLower here)
  podsList('limit=x&watch=fal%C5%BFe', 'watch'),
  podsList('limit=x&watch=FALSE', 'list'),
  podsList('limit=x&watch=1&fieldSelector=metadata.name%3Dfoo', 'watch', { fieldSelector: 'metadata.name=foo' }),
  podsList('limit=&fieldSelector=metadata.name%3Dfoo', 'list', { fieldSelector: 'metadata.name=foo' }),
  podsList('timeoutSeconds=1.5&fieldSelector=metadata.name%3Dfoo', 'list', { fieldSelector: 'metadata.name=foo' }),
  podsList('limit=9223372036854775808&fieldSelector=metadata.name%3Dfoo', 'list', { fieldSelector: 'metadata.name=foo' }),
  podsList('limit=1_000&fieldSelector=metadata.name%3Dfoo', 'list', { fieldSelector: 'metadata.name=foo' }),
  podsList('limit=9223372036854775807&fieldSelector=metadata.name%3Dfoo', 'list', byName('foo', 'metadata.name=foo')),
  podsList('limit=-9223372036854775808&timeoutSeconds=%2B5&fieldSelector=metadata.name%3Dfoo', 'list', byName('foo', 'metadata.name=foo')),
  podsList('timeoutSeconds=+5&fieldSelector=metadata.name%3Dfoo', 'list', { fieldSelector: 'metadata.name=foo' }), // '+' is a space
  podsList('watch=1&fieldSelector=metadata.name%3Dfoo', 'watch', byName('foo', 'metadata.name=foo')),
  // Go's url.ParseQuery
  podsList('&&watch=1&', 'watch'),
  podsList('watch=true;x=1', 'list'),
  podsList('watch=%zz', 'list'),
  podsList('fieldSelector=metadata.name%3Da+b', 'list', byName('a b', 'metadata.name=a b')),
  podsList(`${'a=1&'.repeat(9999)}watch=1`, 'watch'),
  podsList(`${'a=1&'.repeat(10000)}watch=1`, 'list'),
  // fields.ParseSelector and the metadata.name rule
  podsList('fieldSelector=metadata.name%3D%3Dfoo', 'list', byName('foo', 'metadata.name==foo')),
  podsList('fieldSelector=metadata.name!%3Dfoo', 'list', byName('', 'metadata.name!=foo')),
  podsList('fieldSelector=spec.nodeName%3Dn,metadata.name%3Dfoo', 'list', byName('foo', 'spec.nodeName=n,metadata.name=foo')),
  podsList('fieldSelector=metadata.name%3Dzed,metadata.name%3Dabc', 'list', byName('abc', 'metadata.name=zed,metadata.name=abc')),
  podsList('fieldSelector=,,metadata.name%3Dfoo,', 'list', byName('foo', ',,metadata.name=foo,')),
  podsList('fieldSelector=metadata.name%3D', 'list', byName('', 'metadata.name=')),
  podsList('fieldSelector=metadata.name%3Da%5C,b', 'list', byName('a,b', 'metadata.name=a\\,b')),
  podsList('fieldSelector=metadata.name%3Da%5C%5C,metadata.name%3Db', 'list', byName('a\\', 'metadata.name=a\\\\,metadata.name=b')),
  podsList('fieldSelector=metadata.name%3Da%5C%5C%5C,b', 'list', byName('a\\,b', 'metadata.name=a\\\\\\,b')),
  podsList('fieldSelector=metadata.name%3Da%3Db', 'list', byName('', 'metadata.name=a=b')),
  podsList('fieldSelector=metadata.name%3Da%5Cx', 'list', byName('', 'metadata.name=a\\x')),
  podsList('fieldSelector=metadata.name%3Da%5C', 'list', byName('', 'metadata.name=a\\')),
  podsList('fieldSelector=metadata.name%3D..', 'list', byName('', 'metadata.name=..')),
  podsList('fieldSelector=metadata.name%3Da%2Fb', 'list', byName('', 'metadata.name=a/b')),
  podsList('fieldSelector=metadata.name%3Da%25b', 'list', byName('', 'metadata.name=a%b')),
  // Not ported: upstream's labels.Parse fails on this selector and the name is dropped.
  podsList('labelSelector=!!&fieldSelector=metadata.name%3Dfoo', 'list', { ...byName('foo', 'metadata.name=foo'), labelSelector: '!!' }),
  // paths: percent-decoded before splitting, as Go's URL.Path
  res('GET', '/api/v1/namespaces/a%2Fb/pods', 'get', 'api', '', 'v1', 'a', 'b', '', 'pods', ['b', 'pods'],
    { path: '/api/v1/namespaces/a/b/pods' }),
  res('GET', '/api/v1/namespaces/caf%C3%A9/pods', 'list', 'api', '', 'v1', 'café', 'pods', '', '', ['pods'],
    { path: '/api/v1/namespaces/café/pods' }),
  res('GET', '/api/v1/namespaces/%FF/pods', 'list', 'api', '', 'v1', '\uFFFD', 'pods', '', '', ['pods'],
    { path: '/api/v1/namespaces/\uFFFD/pods' }),
  res('GET', '/api/v1/namespaces/a+b/pods', 'list', 'api', '', 'v1', 'a+b', 'pods', '', '', ['pods']),
  res('GET', '/api/v1/pods/', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']),
  res('GET', '//api//v1/pods/', 'get', 'api', '', '', '', 'v1', '', 'pods', ['v1', 'pods']),
  res('GET', '/api/v1/pods#frag', 'list', 'api', '', 'v1', '', 'pods#frag', '', '', ['pods#frag']),
  // request-target forms
  res('GET', 'http://example.com/api/v1/pods?watch=1', 'watch', 'api', '', 'v1', '', 'pods', '', '', ['pods'], { path: '/api/v1/pods' }),
  res('GET', 'http:/api/v1/pods', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods'], { path: '/api/v1/pods' }),
  nonres('GET', 'https://example.com:6443?watch=1', ''),
  nonres('CONNECT', 'example.com:443', ''),
  nonres('OPTIONS', '*'),
  // malformed: Go's server answers 400 before any handler
  nonres('GET', '/api/v1/pods%zz'),
  nonres('GET', '/api/v1/pods%'),
  nonres('GET', '/api/v1/pods\x00'),
  nonres('GET', 'api/v1/pods'),
];

const tables: Record<string, Case[]> = {
  'upstream TestGetAPIRequestInfo': upstreamAPIRequestInfo,
  'upstream TestGetNonAPIRequestInfo': upstreamNonAPIRequestInfo,
  'upstream TestSelectorParsing': upstreamSelectorParsing,
  'requested cases': requested,
  'other branches': more,
};

for (const [title, cases] of Object.entries(tables)) {
  test(`resolveRequestInfo: ${title}`, () => {
    for (const c of cases) {
      assert.deepEqual(withoutQuery(resolveRequestInfo(c.method, c.url)), c.want, `${c.method} ${c.url.slice(0, 120)}`);
    }
  });
}

test('resolveRequestInfo never throws on arbitrary input', () => {
  const alphabet = ['/', '/', 'api', 'apis', 'v1', 'namespaces', 'watch', 'proxy', 'status', '?', '&', '=', '%', '%2', '%2F', '%zz',
    '%C3', '%FF', '+', ';', '#', '\\', ',', '!', 'metadata.name', 'fieldSelector', 'labelSelector', 'limit', 'a', '\x00', 'é', '\u{1F600}', ':'];
  let seed = 42;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 5000; i++) {
    let url = '';
    for (let j = next(16); j > 0; j--) url += alphabet[next(alphabet.length)] ?? '';
    const info = resolveRequestInfo(['GET', 'DELETE', 'POST', 'BREW'][next(4)] ?? 'GET', url);
    assert.equal(typeof info.verb, 'string');
    assert.ok(Array.isArray(info.parts));
  }
});

test('the query as Go parses it, and whether parsing dropped anything', () => {
  const a = resolveRequestInfo('GET', '/api/v1/pods?limit=5&labelSelector=a%3Db&limit=7&watch');
  assert.deepEqual([...a.query], [['limit', ['5', '7']], ['labelSelector', ['a=b']], ['watch', ['']]]);
  assert.equal(a.queryLossy, false);
  assert.equal(resolveRequestInfo('GET', '/api/v1/pods?limit=5;x=1').queryLossy, true);
  assert.equal(resolveRequestInfo('GET', '/api/v1/pods?limit=%zz').queryLossy, true);
  assert.equal(resolveRequestInfo('GET', '/api/v1/pods?&&limit=1&').queryLossy, false);
});
