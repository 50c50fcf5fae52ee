import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseFieldSelector,
  isFieldSelectorError,
  unescapeFieldValue,
  type FieldSelector,
  type FieldSelectorOperator,
} from '../../indexes/field-selector.js';

type Term = readonly [field: string, op: FieldSelectorOperator, value: string];

function mustParse(s: string): FieldSelector {
  const r = parseFieldSelector(s);
  if (isFieldSelectorError(r)) assert.fail(`parseFieldSelector(${JSON.stringify(s)}) failed: ${r.error}`);
  return r;
}

// Valid selectors and their terms, in upstream's order (raw terms sorted by byte order). Strings are
// written with String.raw where they hold backslashes, so `\,` below is two characters.
export const validCases: ReadonlyArray<readonly [input: string, want: readonly Term[]]> = [
  // upstream TestSelectorParse good strings
  ['x=a,y=b,z=c', [['x', 'equals', 'a'], ['y', 'equals', 'b'], ['z', 'equals', 'c']]],
  ['', []],
  ['x!=a,y=b', [['x', 'notequals', 'a'], ['y', 'equals', 'b']]],
  [String.raw`x=a||y\=b`, [['x', 'equals', 'a||y=b']]],
  [String.raw`x=a\=\=b`, [['x', 'equals', 'a==b']]],
  // upstream TestSplitTerms / TestSplitTerm rows, as whole selectors ("k2=" sorts before "k=")
  ['a=avalue,b==bvalue,c!=cvalue', [['a', 'equals', 'avalue'], ['b', 'equals', 'bvalue'], ['c', 'notequals', 'cvalue']]],
  ['a=a,', [['a', 'equals', 'a']]],
  [',a=a', [['a', 'equals', 'a']]],
  [String.raw`k=\,,k2=v2`, [['k2', 'equals', 'v2'], ['k', 'equals', ',']]],
  [String.raw`k=\\,k2=v2`, [['k2', 'equals', 'v2'], ['k', 'equals', '\\']]],
  [String.raw`k=\\\,,k2=v2`, [['k2', 'equals', 'v2'], ['k', 'equals', '\\,']]],
  [String.raw`k=\=`, [['k', 'equals', '=']]],
  ['함=수,목=록', [['목', 'equals', '록'], ['함', 'equals', '수']]],
  // operators: at the first position where "!=", "==" or "=" starts
  ['x==a', [['x', 'equals', 'a']]],
  ['x!=a', [['x', 'notequals', 'a']]],
  ['a!b=c', [['a!b', 'equals', 'c']]],
  ['a!=b!c', [['a', 'notequals', 'b!c']]],
  ['x=!a', [['x', 'equals', '!a']]],
  // empty terms and empty values
  [',', []],
  [',,,', []],
  ['spec.nodeName=', [['spec.nodeName', 'equals', '']]],
  ['spec.nodeName!=', [['spec.nodeName', 'notequals', '']]],
  ['spec.nodeName==', [['spec.nodeName', 'equals', '']]],
  // a term with both sides empty is dropped (upstream's Transform drops it)
  ['=', []],
  ['==', []],
  ['!=', []],
  ['=,a=b', [['a', 'equals', 'b']]],
  ['!=,a!=b', [['a', 'notequals', 'b']]],
  // an empty field with a value is kept (the apiserver's field-label check rejects it later)
  ['=x', [['', 'equals', 'x']]],
  // no trimming; the field name is taken literally, escapes included
  [' a = b ', [[' a ', 'equals', ' b ']]],
  [String.raw`a\,b=c`, [[String.raw`a\,b`, 'equals', 'c']]],
  [String.raw`a\x=c`, [[String.raw`a\x`, 'equals', 'c']]],
  // real-world selectors
  ['metadata.name=foo', [['metadata.name', 'equals', 'foo']]],
  ['metadata.namespace=default,status.phase!=Running',
    [['metadata.namespace', 'equals', 'default'], ['status.phase', 'notequals', 'Running']]],
  ['involvedObject.kind=Pod,involvedObject.name=web-0,type!=Normal',
    [['involvedObject.kind', 'equals', 'Pod'], ['involvedObject.name', 'equals', 'web-0'], ['type', 'notequals', 'Normal']]],
  // terms are sorted by their raw text, in byte (code point) order
  ['b=1,a=2', [['a', 'equals', '2'], ['b', 'equals', '1']]],
  ['x=b,x=a', [['x', 'equals', 'a'], ['x', 'equals', 'b']]],
  ['x=a,x!=a', [['x', 'notequals', 'a'], ['x', 'equals', 'a']]],
  ['😀=1,\uffff=2', [['\uffff', 'equals', '2'], ['😀', 'equals', '1']]],
];

test('parseFieldSelector: valid selectors', () => {
  for (const [input, want] of validCases) {
    const sel = mustParse(input);
    const got = sel.terms.map((t) => [t.field, t.op, t.value]);
    assert.deepEqual(got, want, JSON.stringify(input));
    assert.equal(sel.empty, want.length === 0, `empty for ${JSON.stringify(input)}`);
  }
});

export const errorCases: ReadonlyArray<readonly [input: string, why: string]> = [
  // upstream TestSelectorParse bad strings
  ['x=a||y=b', 'unescaped "=" in the value'],
  ['x==a==b', 'unescaped "=" in the value'],
  ['x=a,b', 'term without an operator'],
  ['x in (a)', 'no set syntax for fields'],
  ['x in (a,b,c)', 'no set syntax for fields'],
  ['x', 'no operator'],
  // upstream TestEscapeValue invalid values
  ['k=\\', 'orphan backslash'],
  ['k=\\\\\\', 'orphan backslash after an escaped one'], // k=\\\ (three backslashes)
  [String.raw`k=\a`, 'unrecognised escape'],
  // more
  [String.raw`k=a\b`, 'unrecognised escape mid-value'],
  [String.raw`k=\ `, 'escaped space'],
  ['k=\\😀', 'escaped non-ASCII'],
  ['x===a', '"==" then an unescaped "="'],
  ['x!==a', '"!=" then an unescaped "="'],
  ['x=!=a', '"=" then "!=" in the value'],
  ['a', 'no operator'],
  ['a!b', '"!" alone is not an operator'],
  ['a=b,c', 'second term without an operator'],
  ['a=b,,c', 'term without an operator after an empty term'],
  ['a=b\\\\,c', 'an escaped backslash does not escape the comma'], // a=b\\,c
];

test('parseFieldSelector: invalid selectors are rejected', () => {
  for (const [input, why] of errorCases) {
    const r = parseFieldSelector(input);
    assert.ok(isFieldSelectorError(r), `${JSON.stringify(input)} should fail (${why})`);
    assert.ok(r.error.length > 0);
  }
  // The escaped comma is data, not a separator.
  assert.deepEqual(mustParse(String.raw`a=b\,c`).terms.map((t) => t.value), ['b,c']);
});

test('unescapeFieldValue', () => {
  const good: ReadonlyArray<readonly [escaped: string, raw: string]> = [
    ['', ''],
    ['a', 'a'],
    [String.raw`\=`, '='],
    [String.raw`\,`, ','],
    [String.raw`\\`, '\\'],
    [String.raw`\\\=\\\,\\`, '\\=\\,\\'], // upstream TestEscapeValue: \\\=\\\,\\ is \=\,\
    ['수', '수'],
  ];
  for (const [escaped, raw] of good) {
    assert.equal(unescapeFieldValue(escaped), raw, escaped);
  }
  for (const bad of ['\\', '\\\\\\', String.raw`\a`, '=', ',', 'a=b']) {
    const r = unescapeFieldValue(bad);
    assert.ok(typeof r !== 'string', bad);
  }
});

const getter = (fields: Readonly<Record<string, string>>) => (f: string): string | undefined =>
  Object.prototype.hasOwnProperty.call(fields, f) ? fields[f] : undefined;

// [selector, fields, matches]. The first block is upstream's TestSelectorMatches.
export const matchCases: ReadonlyArray<readonly [selector: string, fields: Readonly<Record<string, string>>, want: boolean]> = [
  ['', { x: 'y' }, true],
  ['x=y', { x: 'y' }, true],
  ['x=y,z=w', { x: 'y', z: 'w' }, true],
  ['x!=y,z!=w', { x: 'z', z: 'a' }, true],
  ['notin=in', { notin: 'in' }, true],
  ['x=y', { x: 'z' }, false],
  ['x=y,z=w', { x: 'w', z: 'w' }, false],
  ['x!=y,z!=w', { x: 'z', z: 'w' }, false],
  ['foo=bar', { foo: 'bar', baz: 'blah', complex: '=value\\,\\' }, true],
  ['baz=blah', { foo: 'bar', baz: 'blah' }, true],
  ['foo=bar,baz=blah', { foo: 'bar', baz: 'blah' }, true],
  [String.raw`foo=bar,baz=blah,complex=\=value\\\,\\`, { foo: 'bar', baz: 'blah', complex: '=value\\,\\' }, true],
  ['foo=blah', { foo: 'bar', baz: 'blah' }, false],
  ['baz=bar', { foo: 'bar', baz: 'blah' }, false],
  ['foo=bar,foobar=bar,baz=blah', { foo: 'bar', baz: 'blah' }, false],
  // truth table: equals / notequals × present-equal, present-different, absent (reads as "")
  ['x=a', { x: 'a' }, true],
  ['x=a', { x: 'b' }, false],
  ['x=a', {}, false],
  ['x==a', { x: 'a' }, true],
  ['x==a', {}, false],
  ['x!=a', { x: 'a' }, false],
  ['x!=a', { x: 'b' }, true],
  ['x!=a', {}, true],
  ['x=', {}, true],
  ['x=', { x: '' }, true],
  ['x=', { x: 'a' }, false],
  ['x!=', {}, false],
  ['x!=', { x: '' }, false],
  ['x!=', { x: 'a' }, true],
  // dropped and odd terms
  ['!=', { '': 'a' }, true],
  ['=', {}, true],
  ['=x', {}, false],
  ['=x', { '': 'x' }, true],
  // escapes are matched unescaped
  [String.raw`x=a\,b`, { x: 'a,b' }, true],
  [String.raw`x=a\,b`, { x: String.raw`a\,b` }, false],
  // case-sensitive, no trimming
  ['status.phase=running', { 'status.phase': 'Running' }, false],
  ['x= a', { x: 'a' }, false],
  ['x= a', { x: ' a' }, true],
  // contradictions
  ['x=a,x=b', { x: 'a' }, false],
  ['x=a,x!=a', { x: 'a' }, false],
  ['metadata.namespace=default,status.phase!=Running', { 'metadata.namespace': 'default', 'status.phase': 'Pending' }, true],
  ['metadata.namespace=default,status.phase!=Running', { 'metadata.namespace': 'default', 'status.phase': 'Running' }, false],
  ['metadata.namespace=default,status.phase!=Running', { 'metadata.namespace': 'kube-system' }, false],
];

test('FieldSelector.matches', () => {
  for (const [selector, fields, want] of matchCases) {
    assert.equal(mustParse(selector).matches(getter(fields)), want, `${JSON.stringify(selector)} on ${JSON.stringify(fields)}`);
  }
});

test('FieldSelector.matches asks only for the fields it names', () => {
  const asked: string[] = [];
  const sel = mustParse('b=1,a!=2');
  assert.equal(sel.matches((f) => { asked.push(f); return undefined; }), false);
  assert.deepEqual(asked, ['a', 'b']);
  asked.length = 0;
  assert.equal(mustParse('').matches((f) => { asked.push(f); return 'x'; }), true);
  assert.deepEqual(asked, []);
});

test('FieldSelector.requiredValue', () => {
  const cases: ReadonlyArray<readonly [selector: string, field: string, want: string | undefined]> = [
    ['x=a', 'x', 'a'],
    ['x==a', 'x', 'a'],
    ['x=', 'x', ''],
    ['x!=a', 'x', undefined],
    ['y=a', 'x', undefined],
    ['', 'x', undefined],
    ['x!=b,x=a', 'x', 'a'],
    ['x=b,x=a', 'x', 'a'], // the first in upstream's sorted order
    [String.raw`x=a\,b`, 'x', 'a,b'],
    ['metadata.name=web-0,metadata.namespace=prod', 'metadata.namespace', 'prod'],
    ['=', '', undefined],
    ['=x', '', 'x'],
  ];
  for (const [selector, field, want] of cases) {
    assert.equal(mustParse(selector).requiredValue(field), want, `${selector} / ${field}`);
  }
});

test('FieldSelector: terms are immutable and the empty selector is shared', () => {
  const sel = mustParse('a=b');
  assert.ok(Object.isFrozen(sel.terms));
  assert.ok(Object.isFrozen(sel.terms[0]));
  assert.equal(mustParse(''), mustParse(','));
  assert.equal(mustParse('=').empty, true);
});
