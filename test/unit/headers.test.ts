// Header rewriting between client and apiserver (proxy/headers.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientResponseHeaders, hasImpersonationHeaders, upstreamRequestHeaders, type RequestHeaderEdits } from '../../proxy/headers.js';

/** [name, value] pairs to Node's flat rawHeaders form and back. */
const flat = (pairs: Array<[string, string]>): string[] => pairs.flat();
function pairs(raw: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] ?? '', raw[i + 1] ?? '']);
  return out;
}

interface RequestCase {
  readonly name: string;
  readonly in: Array<[string, string]>;
  readonly edits?: RequestHeaderEdits;
  readonly want: Array<[string, string]>;
}

const requestCases: RequestCase[] = [
  {
    name: 'end-to-end headers pass unchanged, in order, names as sent',
    in: [['Accept', 'application/json'], ['User-Agent', 'kubectl/v1'], ['authorization', 'Bearer t'], ['Content-Type', 'application/json'], ['X-Custom', 'a']],
    want: [['Accept', 'application/json'], ['User-Agent', 'kubectl/v1'], ['authorization', 'Bearer t'], ['Content-Type', 'application/json'], ['X-Custom', 'a']],
  },
  {
    name: 'every fixed hop-by-hop header is stripped, in any case; Host is left to the upstream connection',
    in: [
      ['Host', 'proxy:8443'], ['Connection', 'keep-alive'], ['Keep-Alive', 'timeout=5'], ['Proxy-Connection', 'keep-alive'],
      ['Proxy-Authenticate', 'Basic'], ['Proxy-Authorization', 'Basic eDp5'], ['TE', 'trailers'], ['Trailer', 'X-T'],
      ['Transfer-Encoding', 'chunked'], ['Upgrade', 'websocket'], ['HTTP2-Settings', 'AAMAAABkAAQAAP__'],
      ['ACCEPT', '*/*'], ['CONNECTION', 'close'], ['keep-alive', 'max=1'],
    ],
    want: [['ACCEPT', '*/*']],
  },
  {
    name: 'headers named in Connection are hop-by-hop too (any case, several Connection headers, spaces, empty tokens)',
    in: [
      ['Connection', 'X-Hop-A, x-hop-b'], ['Connection', ' ,X-HOP-C ,, '], ['X-Hop-A', '1'], ['x-hop-b', '2'], ['X-Hop-C', '3'],
      ['X-Hop-A', 'again'], ['X-End', 'kept'],
    ],
    want: [['X-End', 'kept']],
  },
  {
    name: 'a Connection-listed end-to-end name (Authorization) is dropped as RFC 9110 says',
    in: [['Connection', 'Authorization'], ['Authorization', 'Bearer t'], ['Accept', 'a']],
    want: [['Accept', 'a']],
  },
  {
    name: 'duplicates are preserved as separate entries, in order',
    in: [
      ['Impersonate-Group', 'g1'], ['Accept', 'a'], ['Impersonate-Group', 'g2'], ['impersonate-group', 'g3'],
      ['Warning', '299 - "one"'], ['Warning', '299 - "two"'],
    ],
    want: [
      ['Impersonate-Group', 'g1'], ['Accept', 'a'], ['Impersonate-Group', 'g2'], ['impersonate-group', 'g3'],
      ['Warning', '299 - "one"'], ['Warning', '299 - "two"'],
    ],
  },
  {
    name: 'values are not split, joined or trimmed',
    in: [['Accept', 'application/json, */*;q=0.8'], ['X-Empty', ''], ['X-Spaces', ' a , b ']],
    want: [['Accept', 'application/json, */*;q=0.8'], ['X-Empty', ''], ['X-Spaces', ' a , b ']],
  },
  {
    name: 'drop removes the named headers (all duplicates, any case); add appends after the rest',
    in: [['Authorization', 'Bearer client'], ['X-Forwarded-For', '1.2.3.4'], ['x-forwarded-for', '5.6.7.8'], ['Accept', 'a']],
    edits: {
      drop: new Set(['authorization', 'x-forwarded-for']),
      add: [['Authorization', 'Bearer proxy'], ['Impersonate-User', 'u'], ['Impersonate-Group', 'g1'], ['Impersonate-Group', 'g2']],
    },
    want: [['Accept', 'a'], ['Authorization', 'Bearer proxy'], ['Impersonate-User', 'u'], ['Impersonate-Group', 'g1'], ['Impersonate-Group', 'g2']],
  },
  {
    name: 'added headers are not filtered (the caller owns them)',
    in: [['Connection', 'X-Added']],
    edits: { add: [['X-Added', 'v']] },
    want: [['X-Added', 'v']],
  },
  {
    name: 'keepUpgrade: one Connection: Upgrade and the client\'s Upgrade, other Connection tokens still stripped',
    in: [['Connection', 'Upgrade, X-Hop'], ['Upgrade', 'SPDY/3.1'], ['X-Hop', 'h'], ['X-Stream-Protocol-Version', 'v4.channel.k8s.io'], ['Host', 'p']],
    edits: { keepUpgrade: true },
    want: [['X-Stream-Protocol-Version', 'v4.channel.k8s.io'], ['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1']],
  },
  {
    name: 'keepUpgrade: WebSocket handshake headers pass, Upgrade value as sent',
    in: [
      ['connection', 'upgrade'], ['upgrade', 'websocket'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
      ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Protocol', 'v5.channel.k8s.io'], ['Sec-WebSocket-Protocol', 'v4.channel.k8s.io'],
    ],
    edits: { keepUpgrade: true, drop: new Set(['authorization']), add: [['Impersonate-User', 'u']] },
    want: [
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Protocol', 'v5.channel.k8s.io'],
      ['Sec-WebSocket-Protocol', 'v4.channel.k8s.io'], ['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Impersonate-User', 'u'],
    ],
  },
  {
    name: 'keepUpgrade without an Upgrade header adds nothing',
    in: [['Connection', 'keep-alive'], ['Accept', 'a']],
    edits: { keepUpgrade: true },
    want: [['Accept', 'a']],
  },
  {
    name: 'without keepUpgrade an upgrade request loses Connection and Upgrade',
    in: [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Accept', 'a']],
    want: [['Accept', 'a']],
  },
  {
    name: 'nothing in, nothing out',
    in: [],
    want: [],
  },
  {
    name: 'requestheader authentication headers from the client are dropped, whatever their case',
    in: [['X-Remote-User', 'admin'], ['x-remote-group', 'system:masters'], ['X-Remote-Extra-Scopes', 'a'], ['X-REMOTE-UID', '1'], ['X-Remote-Other', 'kept'], ['X-Remoteuser', 'kept']],
    want: [['X-Remote-Other', 'kept'], ['X-Remoteuser', 'kept']],
  },
];

test('upstreamRequestHeaders', async (t) => {
  for (const c of requestCases) {
    await t.test(c.name, () => {
      const input = flat(c.in);
      const copy = [...input];
      assert.deepEqual(pairs(upstreamRequestHeaders(input, c.edits)), c.want);
      assert.deepEqual(input, copy, 'the input is not modified');
    });
  }
});

interface ResponseCase {
  readonly name: string;
  readonly in: Record<string, string | string[] | undefined>;
  readonly want: Record<string, string | string[]>;
}

const responseCases: ResponseCase[] = [
  {
    name: 'end-to-end headers pass, including Content-Length, Audit-Id, Warning lists and Set-Cookie arrays',
    in: {
      'content-type': 'application/json', 'content-length': '123', 'audit-id': 'abc', 'cache-control': 'no-cache, private',
      warning: ['299 - "a"', '299 - "b"'], 'set-cookie': ['a=1', 'b=2'], 'x-kubernetes-pf-flowschema-uid': 'f',
    },
    want: {
      'content-type': 'application/json', 'content-length': '123', 'audit-id': 'abc', 'cache-control': 'no-cache, private',
      warning: ['299 - "a"', '299 - "b"'], 'set-cookie': ['a=1', 'b=2'], 'x-kubernetes-pf-flowschema-uid': 'f',
    },
  },
  {
    name: 'hop-by-hop headers are stripped (Node sets its own framing)',
    in: {
      connection: 'keep-alive', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', trailer: 'x', te: 'trailers',
      upgrade: 'h2c', 'proxy-authenticate': 'Basic', 'proxy-connection': 'close', 'http2-settings': 'x', 'content-type': 'text/plain',
    },
    want: { 'content-type': 'text/plain' },
  },
  {
    name: 'headers listed in Connection are stripped, also when Connection is an array',
    in: { connection: ['close, X-Hop-1', ' x-hop-2 '], 'x-hop-1': 'a', 'x-hop-2': 'b', 'x-end': 'c' },
    want: { 'x-end': 'c' },
  },
  {
    name: 'undefined values are skipped',
    in: { 'x-a': undefined, 'x-b': 'b' },
    want: { 'x-b': 'b' },
  },
];

test('clientResponseHeaders', async (t) => {
  for (const c of responseCases) {
    await t.test(c.name, () => {
      assert.deepEqual(clientResponseHeaders(c.in), c.want);
    });
  }
});

test('hasImpersonationHeaders', () => {
  const cases: Array<[Array<[string, string]>, boolean]> = [
    [[], false],
    [[['Accept', 'a'], ['Authorization', 'Bearer t']], false],
    [[['Impersonate-User', 'u']], true],
    [[['impersonate-group', 'g']], true],
    [[['IMPERSONATE-UID', '1']], true],
    [[['Impersonate-Extra-Scopes', 's']], true],
    [[['Accept', 'a'], ['Impersonate-Extra-authentication.kubernetes.io%2fcredential-id', 'x']], true],
    // Only names count: a value that looks like one, or a name merely containing it, does not.
    [[['X-Note', 'Impersonate-User']], false],
    [[['X-Impersonate-User', 'u']], false],
    [[['Impersonate', 'u']], false],
    [[['Impersonateuser', 'u']], false],
  ];
  for (const [headers, want] of cases) assert.equal(hasImpersonationHeaders(flat(headers)), want, JSON.stringify(headers));
});
