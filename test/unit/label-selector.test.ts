import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseLabelSelector,
  isLabelSelectorError,
  type LabelOperator,
  type LabelSelector,
  type Labels,
} from '../../indexes/label-selector.js';

type Req = readonly [key: string, operator: LabelOperator, values: readonly string[]];

function mustParse(s: string): LabelSelector {
  const r = parseLabelSelector(s);
  if (isLabelSelectorError(r)) assert.fail(`parseLabelSelector(${JSON.stringify(s)}) failed: ${r.error}`);
  return r;
}

const a63 = 'a'.repeat(63);
const prefix253 = `${'b'.repeat(61)}.${'b'.repeat(61)}.${'b'.repeat(61)}.${'b'.repeat(67)}`; // 253 characters

// Valid selectors and the requirements they parse to, sorted by key. Most rows are upstream's
// (labels/selector_test.go TestSelectorParse good strings, TestSetSelectorParser valid rows).
export const validCases: ReadonlyArray<readonly [input: string, want: readonly Req[]]> = [
  // empty selectors
  ['', []],
  ['   ', []],
  [' \t\r\n', []],
  // upstream TestSelectorParse
  ['x=a,y=b,z=c', [['x', 'equals', ['a']], ['y', 'equals', ['b']], ['z', 'equals', ['c']]]],
  ['x!=a,y=b', [['x', 'notequals', ['a']], ['y', 'equals', ['b']]]],
  ['x=', [['x', 'equals', ['']]]],
  ['x= ', [['x', 'equals', ['']]]],
  ['x=,z= ', [['x', 'equals', ['']], ['z', 'equals', ['']]]],
  ['x= ,z= ', [['x', 'equals', ['']], ['z', 'equals', ['']]]],
  ['!x', [['x', 'doesnotexist', []]]],
  ['x>1', [['x', 'gt', ['1']]]],
  ['x>1,z<5', [['x', 'gt', ['1']], ['z', 'lt', ['5']]]],
  // upstream TestSetSelectorParser
  ['\rx', [['x', 'exists', []]]],
  ['this-is-a-dns.domain.com/key-with-dash', [['this-is-a-dns.domain.com/key-with-dash', 'exists', []]]],
  ['this-is-another-dns.domain.com/key-with-dash in (so,what)',
    [['this-is-another-dns.domain.com/key-with-dash', 'in', ['so', 'what']]]],
  ['0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)', [['0.1.2.domain/99', 'notin', ['10.10.100.1', 'tick.tack.clock']]]],
  ['foo  in\t (abc)', [['foo', 'in', ['abc']]]],
  ['x notin\n (abc)', [['x', 'notin', ['abc']]]],
  ['x  notin\t\t\t(abc,def)', [['x', 'notin', ['abc', 'def']]]],
  ['x in (abc,def)', [['x', 'in', ['abc', 'def']]]],
  ['x in (abc,)', [['x', 'in', ['', 'abc']]]],
  ['x in ()', [['x', 'in', ['']]]],
  ['x notin (abc,,def),bar,z in (),w',
    [['bar', 'exists', []], ['w', 'exists', []], ['x', 'notin', ['', 'abc', 'def']], ['z', 'in', ['']]]],
  ['x,y in (a)', [['x', 'exists', []], ['y', 'in', ['a']]]],
  ['x=a', [['x', 'equals', ['a']]]],
  ['x>1', [['x', 'gt', ['1']]]],
  ['x<7', [['x', 'lt', ['7']]]],
  ['x=a,y!=b', [['x', 'equals', ['a']], ['y', 'notequals', ['b']]]],
  ['x=a,y!=b,z in (h,i,j)', [['x', 'equals', ['a']], ['y', 'notequals', ['b']], ['z', 'in', ['h', 'i', 'j']]]],
  ['x notin ( )', [['x', 'notin', ['']]]],
  ['x notin (, a)', [['x', 'notin', ['', 'a']]]],
  ['a ', [['a', 'exists', []]]],
  ['a in (x,y,notin, z,in)', [['a', 'in', ['in', 'notin', 'x', 'y', 'z']]]],
  // operators and their spellings
  ['x==a', [['x', 'equals', ['a']]]],
  ['x == a', [['x', 'equals', ['a']]]],
  ['x = a', [['x', 'equals', ['a']]]],
  ['x != a', [['x', 'notequals', ['a']]]],
  ['x!=', [['x', 'notequals', ['']]]],
  ['x==', [['x', 'equals', ['']]]],
  ['x in(a)', [['x', 'in', ['a']]]],
  ['x notin(a)', [['x', 'notin', ['a']]]],
  ['x in (a , b)', [['x', 'in', ['a', 'b']]]],
  ['x in (,)', [['x', 'in', ['']]]],
  ['x in (a,,)', [['x', 'in', ['', 'a']]]],
  ['x in (b,a,b)', [['x', 'in', ['a', 'b']]]], // a set: sorted, deduplicated
  ['! x', [['x', 'doesnotexist', []]]],
  ['!x,!y', [['x', 'doesnotexist', []], ['y', 'doesnotexist', []]]],
  ['x > 1', [['x', 'gt', ['1']]]],
  ['x<007', [['x', 'lt', ['007']]]],
  ['x>0', [['x', 'gt', ['0']]]],
  ['x<9223372036854775807', [['x', 'lt', ['9223372036854775807']]]],
  // "in" and "notin" are keywords only in operator position
  ['in', [['in', 'exists', []]]],
  ['!notin', [['notin', 'doesnotexist', []]]],
  ['notin=in', [['notin', 'equals', ['in']]]],
  ['in in (in)', [['in', 'in', ['in']]]],
  ['notin notin (notin)', [['notin', 'notin', ['notin']]]],
  // keys and values at the edges of validity
  ['A_b.c-9', [['A_b.c-9', 'exists', []]]],
  ['1234', [['1234', 'exists', []]]],
  [a63, [[a63, 'exists', []]]],
  [`${prefix253}/x`, [[`${prefix253}/x`, 'exists', []]]],
  ['k8s.io/name=A-b_c.9', [['k8s.io/name', 'equals', ['A-b_c.9']]]],
  [`x=${a63}`, [['x', 'equals', [a63]]]],
  // sorting by key, duplicates and contradictions allowed
  ['b,a', [['a', 'exists', []], ['b', 'exists', []]]],
  ['x=a,x=b', [['x', 'equals', ['a']], ['x', 'equals', ['b']]]],
  ['x,!x', [['x', 'exists', []], ['x', 'doesnotexist', []]]],
  // upstream's lexer reads a NUL as end of input where a token would start, and as a separator
  // inside a token
  ['\0anything at all', []],
  ['a=b \0 junk', [['a', 'equals', ['b']]]],
  ['a=b\0,c=d', [['a', 'equals', ['b']], ['c', 'equals', ['d']]]],
  ['a\0in (b)', [['a', 'in', ['b']]]],
  ['a=b,\0c=d', [['a', 'equals', ['b']], ['c', 'equals', ['d']]]], // consumed right after an operator
];

test('parseLabelSelector: valid selectors', () => {
  for (const [input, want] of validCases) {
    const sel = mustParse(input);
    const got = sel.requirements.map((r) => [r.key, r.operator, r.values]);
    assert.deepEqual(got, want, JSON.stringify(input));
    assert.equal(sel.empty, want.length === 0, `empty for ${JSON.stringify(input)}`);
  }
});

// Selectors upstream rejects, grouped by why.
export const errorCases: ReadonlyArray<readonly [input: string, why: string]> = [
  // upstream TestSelectorParse bad strings and TestSetSelectorParser invalid rows
  ['x=a||y=b', 'bad value "a||y", then a stray "="'],
  ['x==a==b', 'a second operator'],
  ['!x=a', '"!" takes no value'],
  ['x<a', 'non-integer for <'],
  ['x,,y', 'empty requirement'],
  [',x,y', 'leading comma'],
  ['x nott in (y)', 'unknown operator'],
  ['a in (xyz),', 'trailing comma'],
  ['a in (xyz)b notin ()', 'no comma between requirements'],
  ['a in (xyz abc)', 'no comma between values'],
  ['a notin(', 'unclosed paren'],
  ['a (', 'no operator'],
  ['(', 'no key'],
  // bad key
  ['-x', 'name starts with "-"'],
  ['x-', 'name ends with "-"'],
  ['_x', 'name starts with "_"'],
  ['x.', 'name ends with "."'],
  ['a$b', 'character outside [-A-Za-z0-9_.]'],
  ['é', 'non-ASCII'],
  ['x|y=a', '"|" in the key'],
  ['!-x', 'bad key after "!"'],
  ['-x in (a)', 'bad key before in'],
  // too-long name segment
  [`${a63}a`, 'name of 64 characters'],
  [`example.com/${a63}a`, 'prefixed name of 64 characters'],
  // bad or empty prefix / name part
  ['/a', 'empty prefix'],
  ['example.com/', 'empty name'],
  ['Example.com/a', 'upper-case prefix'],
  ['-a.com/b', 'prefix label starts with "-"'],
  ['a-.com/b', 'prefix label ends with "-"'],
  ['a..com/b', 'empty prefix label'],
  ['a_b.com/c', '"_" in the prefix'],
  ['a/b/c', 'two slashes'],
  [`${prefix253}b/x`, 'prefix of 254 characters'],
  // bad value
  ['x=a$', 'character outside [-A-Za-z0-9_.]'],
  ['x=-a', 'value starts with "-"'],
  ['x=a-', 'value ends with "-"'],
  ['x!=é', 'non-ASCII value'],
  ['x in (a,-b)', 'bad value in a set'],
  ['x notin (a_)', 'bad value in a notin set'],
  [`x=${a63}a`, 'value of 64 characters'],
  ['x=a/b', '"/" in a value'],
  // unclosed paren
  ['x in (a', 'no ")"'],
  ['x in (a,', 'no ")" after a comma'],
  ['x in (', 'nothing after "("'],
  ['x in ((a))', 'nested parens'],
  ['x in (a))', 'extra ")"'],
  // missing value / set
  ['x in', 'in without a set'],
  ['x notin', 'notin without a set'],
  ['x in ,y', 'in followed by a comma'],
  ['x>', 'empty value for > (not an integer)'],
  ['x<', 'empty value for <'],
  // in without parens
  ['x in a', 'in with a bare value'],
  ['x notin a', 'notin with a bare value'],
  ['x in a,b', 'in with a bare list'],
  // non-integer for > and <
  ['x>a', 'letters'],
  ['x>1.5', 'decimal'],
  ['x>1e3', 'exponent'],
  ['x>1_000', 'underscore'],
  ['x>0x10', 'hexadecimal'],
  ['x>9223372036854775808', 'int64 overflow'],
  ['x<99999999999999999999', 'int64 overflow'],
  ['x>-1', 'signed: an integer, but not a valid label value'],
  ['x>+1', 'signed with "+"'],
  ['x>1 2', 'two values'],
  ['x>=1', '">=" is ">" then a stray "="'],
  ['x<=1', '"<=" is "<" then a stray "="'],
  // other malformed input
  [',', 'lone comma'],
  ['x=a,', 'trailing comma'],
  ['!', '"!" without a key'],
  ['!!x', 'double "!"'],
  ['x!', '"!" after the key'],
  ['x=!', '"!" as a value'],
  ['x===a', '"==" then "="'],
  ['x = = a', 'two operators'],
  ['x=a b', 'two values'],
  ['x=(a)', 'parens after "="'],
  ['x (a)', 'set without operator'],
  ['in (a)', '"in" as a key, then a set without operator'],
  [')', 'lone ")"'],
  ['=a', 'no key'],
  ['x y', 'two keys'],
  ['a=b\0junk', 'NUL inside a value separates it from the next token'],
  ['a=b, \0c=d', 'NUL where a token starts ends the input: trailing comma'],
  ['x\v', 'vertical tab is not whitespace: part of the key'],
];

test('parseLabelSelector: invalid selectors are rejected', () => {
  for (const [input, why] of errorCases) {
    const r = parseLabelSelector(input);
    assert.ok(isLabelSelectorError(r), `${JSON.stringify(input)} should fail (${why})`);
    assert.equal(typeof r.error, 'string');
    assert.ok(r.error.length > 0);
  }
});

// [selector, labels, matches]. The first block is upstream's TestSelectorMatches and
// TestRequirementSelectorMatching (as selector strings).
export const matchCases: ReadonlyArray<readonly [selector: string, labels: Labels | undefined, want: boolean]> = [
  ['', { x: 'y' }, true],
  ['x=y', { x: 'y' }, true],
  ['x=y,z=w', { x: 'y', z: 'w' }, true],
  ['x!=y,z!=w', { x: 'z', z: 'a' }, true],
  ['notin=in', { notin: 'in' }, true],
  ['x', { x: 'z' }, true],
  ['!x', { y: 'z' }, true],
  ['x>1', { x: '2' }, true],
  ['x<1', { x: '0' }, true],
  ['x=z', {}, false],
  ['x=y', { x: 'z' }, false],
  ['x=y,z=w', { x: 'w', z: 'w' }, false],
  ['x!=y,z!=w', { x: 'z', z: 'w' }, false],
  ['x', { y: 'z' }, false],
  ['!x', { x: 'z' }, false],
  ['x>1', { x: '0' }, false],
  ['x<1', { x: '2' }, false],
  ['foo=bar', { foo: 'bar', baz: 'blah' }, true],
  ['baz=blah', { foo: 'bar', baz: 'blah' }, true],
  ['foo=bar,baz=blah', { foo: 'bar', baz: 'blah' }, true],
  ['foo=blah', { foo: 'bar', baz: 'blah' }, false],
  ['baz=bar', { foo: 'bar', baz: 'blah' }, false],
  ['foo=bar,foobar=bar,baz=blah', { foo: 'bar', baz: 'blah' }, false],
  ['x in (foo),y notin (alpha)', { x: 'foo', y: 'baz' }, true],
  ['x in (foo),y in (alpha)', { x: 'foo', y: 'baz' }, false],
  ['x notin (),y', { y: '' }, true],
  ['!x,y', { y: '' }, true],
  ['x notin (),!y', { y: '' }, false],
  ['x in ()', { y: 'baz' }, false],
  ['z>1', { z: '2' }, true],
  ['z>1', { z: 'v2' }, false],

  // Truth table: each operator against a matching value, a non-matching value, and an absent key.
  ['x in (a,b)', { x: 'a' }, true],
  ['x in (a,b)', { x: 'c' }, false],
  ['x in (a,b)', { x: '' }, false],
  ['x in (a,b)', {}, false],
  ['x in ()', { x: '' }, true],
  ['x in ()', {}, false],
  ['x in (a,)', { x: '' }, true],
  ['x notin (a,b)', { x: 'a' }, false],
  ['x notin (a,b)', { x: 'c' }, true],
  ['x notin (a,b)', {}, true],
  ['x notin ()', { x: '' }, false],
  ['x notin ()', { x: 'a' }, true],
  ['x', { x: '' }, true],
  ['x', {}, false],
  ['!x', { x: '' }, false],
  ['!x', {}, true],
  ['x=a', { x: 'a' }, true],
  ['x=a', { x: 'b' }, false],
  ['x=a', {}, false],
  ['x==a', { x: 'a' }, true],
  ['x==a', { x: 'b' }, false],
  ['x==a', {}, false],
  ['x=', { x: '' }, true],
  ['x=', {}, false],
  ['x!=a', { x: 'a' }, false],
  ['x!=a', { x: 'b' }, true],
  ['x!=a', {}, true],
  ['x!=', { x: '' }, false],
  ['x!=', {}, true],
  ['x>1', { x: '2' }, true],
  ['x>1', { x: '1' }, false],
  ['x>1', {}, false],
  ['x<1', { x: '0' }, true],
  ['x<1', { x: '1' }, false],
  ['x<1', {}, false],

  // gt/lt: the label value is parsed as strconv.ParseInt(v, 10, 64)
  ['x>1', { x: '+2' }, true],
  ['x>1', { x: '02' }, true],
  ['x>1', { x: '-2' }, false],
  ['x<1', { x: '-2' }, true],
  ['x<1', { x: '-0' }, true],
  ['x<1', { x: '+0' }, true],
  ['x<0', { x: '-0' }, false],
  ['x<0', { x: '-1' }, true],
  ['x>0', { x: '-0' }, false],
  ['x>007', { x: '8' }, true],
  ['x>007', { x: '0007' }, false],
  ['x>1', { x: '' }, false],
  ['x<1', { x: '' }, false],
  ['x<1', { x: '-' }, false],
  ['x<1', { x: '+' }, false],
  ['x>1', { x: ' 2' }, false],
  ['x>1', { x: '2 ' }, false],
  ['x>1', { x: '1_0' }, false],
  ['x>1', { x: '0x10' }, false],
  ['x>1', { x: '1e3' }, false],
  ['x>1', { x: '2.0' }, false],
  ['x>1', { x: '9223372036854775807' }, true],
  ['x>1', { x: '9223372036854775808' }, false], // overflows int64
  ['x>1', { x: '00000000000000000009223372036854775807' }, true], // leading zeros do not count
  ['x<1', { x: '-9223372036854775808' }, true],
  ['x<1', { x: '-9223372036854775809' }, false], // overflows int64
  ['x>9223372036854775806', { x: '9223372036854775807' }, true],
  ['x<9223372036854775807', { x: '9223372036854775806' }, true],
  ['x<9223372036854775807', { x: '9223372036854775807' }, false],
  ['x>10', { x: '9' }, false],
  ['x>10', { x: '11' }, true],
  ['x<10', { x: '9' }, true],

  // no labels at all (undefined) behave as an empty set
  ['', undefined, true],
  ['x', undefined, false],
  ['!x', undefined, true],
  ['x=a', undefined, false],
  ['x!=a', undefined, true],
  ['x in (a)', undefined, false],
  ['x notin (a)', undefined, true],
  ['x>1', undefined, false],
  ['x<1', undefined, false],

  // keys that are also Object.prototype properties
  ['constructor', {}, false],
  ['constructor', { constructor: 'a' }, true],
  ['!toString', {}, true],
  ['hasOwnProperty notin (a)', {}, true],
  ['valueOf in (a)', {}, false],
  ['valueOf in (a)', { valueOf: 'a' }, true],

  // large sets
  ['x in (a,b,c,d,e,f,g,h,i,j)', { x: 'j' }, true],
  ['x in (a,b,c,d,e,f,g,h,i,j)', { x: 'k' }, false],
  ['x in (a,b,c,d,e,f,g,h,i,j)', {}, false],
  ['x notin (a,b,c,d,e,f,g,h,i,j)', { x: 'j' }, false],
  ['x notin (a,b,c,d,e,f,g,h,i,j)', { x: 'k' }, true],
  ['x notin (a,b,c,d,e,f,g,h,i,j)', {}, true],

  // conjunctions, duplicates and contradictions
  ['x=a,x=b', { x: 'a' }, false],
  ['x,!x', { x: 'a' }, false],
  ['x,!x', {}, false],
  ['x in (a,b),x notin (b)', { x: 'a' }, true],
  ['x in (a,b),x notin (b)', { x: 'b' }, false],
  ['app=web,tier in (fe,be),!canary,version>2', { app: 'web', tier: 'fe', version: '3' }, true],
  ['app=web,tier in (fe,be),!canary,version>2', { app: 'web', tier: 'fe', version: '3', canary: '' }, false],
  ['app=web,tier in (fe,be),!canary,version>2', { app: 'web', tier: 'fe', version: '2' }, false],
  ['example.com/owner=team-a', { 'example.com/owner': 'team-a' }, true],
  ['example.com/owner=team-a', { owner: 'team-a' }, false],
];

test('LabelSelector.matches', () => {
  for (const [selector, labels, want] of matchCases) {
    assert.equal(mustParse(selector).matches(labels), want, `${JSON.stringify(selector)} on ${JSON.stringify(labels)}`);
  }
});

test('LabelSelector.matches: a parsed selector can be reused across many label sets', () => {
  const sel = mustParse('x>5,y notin (a)');
  const got = ['4', '5', '6', '-7', 'z', '60'].map((x) => sel.matches({ x }));
  assert.deepEqual(got, [false, false, true, false, false, true]);
  assert.equal(sel.matches({ x: '6', y: 'a' }), false);
  assert.equal(sel.matches({ x: '6', y: 'b' }), true);
});

test('LabelSelector.requiredValue', () => {
  const cases: ReadonlyArray<readonly [selector: string, key: string, want: string | undefined]> = [
    ['x=a', 'x', 'a'],
    ['x==a', 'x', 'a'],
    ['x=', 'x', ''],
    ['x in (a)', 'x', 'a'],
    ['x in (a,b)', 'x', undefined],
    ['x!=a', 'x', undefined],
    ['x notin (a)', 'x', undefined],
    ['x', 'x', undefined],
    ['x>1', 'x', undefined],
    ['y=a', 'x', undefined],
    ['x,x=a', 'x', 'a'],
    ['', 'x', undefined],
  ];
  for (const [selector, key, want] of cases) {
    assert.equal(mustParse(selector).requiredValue(key), want, `${selector} / ${key}`);
  }
});

test('LabelSelector: requirements are immutable and the empty selector is shared', () => {
  const sel = mustParse('x in (a,b)');
  assert.ok(Object.isFrozen(sel.requirements));
  assert.ok(Object.isFrozen(sel.requirements[0]));
  assert.ok(Object.isFrozen(sel.requirements[0]?.values));
  assert.equal(mustParse(''), mustParse(' '));
  assert.equal(mustParse('').empty, true);
  assert.equal(mustParse('x').empty, false);
});

test('parseLabelSelector: very long input is handled without pathological slowness', () => {
  const long = `x=${'a'.repeat(200_000)}-`;
  const start = Date.now();
  assert.ok(isLabelSelectorError(parseLabelSelector(long)));
  assert.ok(isLabelSelectorError(parseLabelSelector(`${'a.'.repeat(100_000)}/x`)));
  const many = Array.from({ length: 5_000 }, (_, i) => `k${i} in (a,b)`).join(',');
  assert.equal(mustParse(many).requirements.length, 5_000);
  assert.ok(Date.now() - start < 5_000);
});
