import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listItemRanges, skipValue, stripTypeMeta, withTypeMeta, watchEventObject, topLevelMember } from '../../cache/json-scan.js';
import { LineSplitter } from '../../cache/line-splitter.js';

const B = (s: string) => Buffer.from(s);
const head = '{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":';

// Items as the apiserver writes them: compact, HTML-escaped, with strings that hold JSON punctuation.
const TRICKY_ITEMS: readonly string[] = [
  '{}',
  '{"metadata":{"name":"a","namespace":"ns"}}',
  '{"metadata":{"name":"b","annotations":{"x":"]","y":"}","z":",","w":"[{"}},"spec":{"containers":[{"args":["a]b","c}d"],"env":[]}]}}',
  String.raw`{"metadata":{"name":"c","annotations":{"q":"say \"hi\"]}","bs":"C:\\","bsq":"\\\"","html":"\u003cb\u003e \u0026 \u003e"}}}`,
  '{"metadata":{"name":"d","labels":{"n":"1"}},"status":{"replicas":3,"ok":true,"gone":null,"ratio":-1.5e3,"list":[[],[[]],{}]}}',
  '{"metadata":{"name":"é ü 日本 😀"}}',
];

test('listItemRanges: empty lists', () => {
  assert.deepEqual(listItemRanges(B(`${head}[]}`)), []);
  assert.deepEqual(listItemRanges(B(`${head}[]}\n`)), []);
  assert.deepEqual(listItemRanges(B(`${head}null}`)), []);
  assert.deepEqual(listItemRanges(B('{"items":[]}')), []);
});

test('listItemRanges: item bytes are exact, whatever the strings hold', () => {
  for (let n = 1; n <= TRICKY_ITEMS.length; n++) {
    const items = TRICKY_ITEMS.slice(0, n);
    const body = B(`${head}[${items.join(',')}]}\n`);
    const ranges = listItemRanges(body);
    assert.deepEqual(ranges.map(([s, e]) => body.toString('utf8', s, e)), items);
    for (const [s, e] of ranges) JSON.parse(body.toString('utf8', s, e)); // each range is one whole value
  }
});

test('listItemRanges: items anywhere among the members (CRD lists sort keys)', () => {
  const body = B(`{"apiVersion":"example.com/v1","items":[${TRICKY_ITEMS[2]},{"kind":"Widget","apiVersion":"example.com/v1"}],"kind":"WidgetList","metadata":{"continue":"","resourceVersion":"9"}}\n`);
  const ranges = listItemRanges(body);
  assert.equal(ranges.length, 2);
  assert.equal(body.toString('utf8', ...(ranges[1] ?? [0, 0])), '{"kind":"Widget","apiVersion":"example.com/v1"}');
  // a member named "items" inside another member is not the list's items
  const nested = B('{"metadata":{"items":[1,2]},"x":"\\"items\\":[3]","items":[{"a":1}]}');
  assert.deepEqual(listItemRanges(nested).map(([s, e]) => nested.toString('utf8', s, e)), ['{"a":1}']);
});

test('listItemRanges: errors instead of wrong answers or endless loops', () => {
  assert.throws(() => listItemRanges(B('[]')), /not a JSON object/);
  assert.throws(() => listItemRanges(B('{"kind":"PodList","metadata":{}}')), /no items/);
  for (const truncated of [`${head}[`, `${head}[{"a":1}`, `${head}[{"a":1},`, `${head}[{"a":"]`]) {
    assert.throws(() => listItemRanges(B(truncated)), Error, truncated);
  }
});

test('skipValue: scalars and containers', () => {
  const cases: Array<[string, string]> = [
    ['123,', '123'], ['-1.5e3}', '-1.5e3'], ['true]', 'true'], ['false,', 'false'], ['null}', 'null'], ['7', '7'],
    ['"a\\"b",', '"a\\"b"'], ['"\\\\",', '"\\\\"'], ['[1,[2,{"a":"]"}]],', '[1,[2,{"a":"]"}]]'], ['{"a":{"b":"}"}}}', '{"a":{"b":"}"}}'],
  ];
  for (const [input, want] of cases) assert.equal(B(input).toString('utf8', 0, skipValue(B(input), 0)), want, input);
});

const TYPED = String.raw`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","annotations":{"a":"\"kind\":\"x\",\u003c"}},"spec":{}}`;
const ITEM = String.raw`{"metadata":{"name":"p","annotations":{"a":"\"kind\":\"x\",\u003c"}},"spec":{}}`;

test('stripTypeMeta / withTypeMeta: built-in objects round trip byte for byte', () => {
  assert.equal(stripTypeMeta(B(TYPED)).toString(), ITEM);
  assert.equal(withTypeMeta(B(ITEM), 'Pod', 'v1').toString(), TYPED);
  assert.equal(withTypeMeta(stripTypeMeta(B(TYPED)), 'Pod', 'v1').toString(), TYPED);
  const apps = '{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"}}';
  assert.equal(withTypeMeta(stripTypeMeta(B(apps)), 'Deployment', 'apps/v1').toString(), apps);
  assert.equal(stripTypeMeta(B('{"kind":"We\\"ird","apiVersion":"v\\\\1","metadata":{}}')).toString(), '{"metadata":{}}');
  assert.equal(withTypeMeta(B('{}'), 'Pod', 'v1').toString(), '{"kind":"Pod","apiVersion":"v1"}');
});

test('stripTypeMeta / withTypeMeta: what is left alone', () => {
  const unchanged = [
    '{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}', // CRD: sorted keys, kept in lists
    '{"metadata":{"name":"p"}}', // already a list item
    '{"kind":"Pod","apiVersion":"v1"}', // nothing after the type meta
    '{"kind":"Pod","metadata":{}}', // no apiVersion second
  ];
  for (const s of unchanged) {
    const b = B(s);
    assert.equal(stripTypeMeta(b), b, s);
  }
  const typed = B(TYPED);
  assert.equal(withTypeMeta(typed, 'Pod', 'v1'), typed, 'already typed');
});

test('watchEventObject: the object member of every event type', () => {
  const objects = [TYPED, '{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12746"},"spec":{"containers":null},"status":{}}',
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (9122)","reason":"Expired","code":410}'];
  for (const type of ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']) {
    for (const o of objects) {
      const line = B(`{"type":"${type}","object":${o}}`);
      assert.equal(watchEventObject(line).toString(), o);
    }
  }
  assert.throws(() => watchEventObject(B('{"object":{},"type":"ADDED"}')), /not a watch event/);
  assert.throws(() => watchEventObject(B('{"type":"ADDED"}')), /without object/);
});

test('topLevelMember: values of top-level members only', () => {
  const body = B(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5","continue":"x"},"items":[${TRICKY_ITEMS[3]}],"n":12,"t":true}`);
  const cases: Array<[string, string | undefined]> = [
    ['kind', '"PodList"'], ['metadata', '{"resourceVersion":"5","continue":"x"}'], ['items', `[${TRICKY_ITEMS[3]}]`],
    ['n', '12'], ['t', 'true'], ['resourceVersion', undefined], ['nope', undefined],
  ];
  for (const [name, want] of cases) assert.equal(topLevelMember(body, name)?.toString(), want, name);
  assert.equal(topLevelMember(B('[1]'), 'kind'), undefined);
  assert.equal(topLevelMember(B('{}'), 'kind'), undefined);
  const status = B('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","code":410}');
  assert.equal(topLevelMember(status, 'code')?.toString(), '410');
});

test('LineSplitter: lines across chunks, empty lines skipped, partial line held', () => {
  const ls = new LineSplitter();
  const out: string[] = [];
  const push = (s: string) => { for (const l of ls.push(B(s))) out.push(l.toString()); };
  push('{"a":1}\n{"b"');
  assert.deepEqual(out, ['{"a":1}']);
  push(':2}');
  push('\n\n{"c":3}\n{"d":');
  push('4}\n');
  assert.deepEqual(out, ['{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}']);
  // a multi-byte character split between chunks is rejoined
  const bytes = B('{"e":"日本"}\n');
  const ls2 = new LineSplitter();
  const got = [...ls2.push(bytes.subarray(0, 8)), ...ls2.push(bytes.subarray(8))].map((b) => b.toString('utf8'));
  assert.deepEqual(got, ['{"e":"日本"}']);
});
