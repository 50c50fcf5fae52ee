// Quiet-resource prediction (cache/quiet-resources.ts) and its flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planFreshness, ResourceActivity } from '../../cache/quiet-resources.js';
import { parseFlags } from '../../proxy/flags.js';
import { DEFAULT_CACHE_CONFIG } from '../../cache/config.js';

const policy = { budgetMs: 100, quietAfterMs: 1000 };

test('a store at or past the target is fresh, whatever the activity', () => {
  assert.deepEqual(planFreshness(10n, 10n, Infinity, policy), { kind: 'fresh' });
  assert.deepEqual(planFreshness(11n, 10n, 0, policy), { kind: 'fresh' });
});

test('behind: a recently written resource waits the budget; one idle for quietAfterMs is forwarded at once', () => {
  assert.deepEqual(planFreshness(9n, 10n, 0, policy), { kind: 'wait', budgetMs: 100 });
  assert.deepEqual(planFreshness(9n, 10n, 999, policy), { kind: 'wait', budgetMs: 100 });
  assert.deepEqual(planFreshness(9n, 10n, 1000, policy), { kind: 'quiet' });
  assert.deepEqual(planFreshness(9n, 10n, Infinity, policy), { kind: 'quiet' });
  // 0: never predicted, always waited for.
  assert.deepEqual(planFreshness(9n, 10n, Infinity, { budgetMs: 100, quietAfterMs: 0 }), { kind: 'wait', budgetMs: 100 });
});

test('activity: idle since the last event on the given clock, Infinity before any', () => {
  let now = 1000;
  const a = new ResourceActivity(() => now);
  assert.equal(a.idleMs(), Infinity);
  a.event();
  assert.equal(a.idleMs(), 0);
  now += 250;
  assert.equal(a.idleMs(), 250);
  a.event();
  now += 5;
  assert.equal(a.idleMs(), 5);
});

test('flags: --cache-freshness-budget and --cache-quiet-after in seconds, defaults, errors name the flag', () => {
  const d = parseFlags([]);
  assert.ok(!d.help && d.options.cache);
  assert.deepEqual(d.options.cache.readFreshness, DEFAULT_CACHE_CONFIG.readFreshness);
  const p = parseFlags(['--cache-freshness-budget', '0.25', '--cache-quiet-after', '0']);
  assert.ok(!p.help && p.options.cache);
  assert.deepEqual(p.options.cache.readFreshness, { budgetMs: 250, quietAfterMs: 0 });
  assert.equal(p.options.cache.freshnessBudgetMs, DEFAULT_CACHE_CONFIG.freshnessBudgetMs, 'the watches\' wait is its own flag');
  assert.throws(() => parseFlags(['--cache-freshness-budget', '-1']), /--cache-freshness-budget/);
  assert.throws(() => parseFlags(['--cache-quiet-after', 'soon']), /--cache-quiet-after/);
});
