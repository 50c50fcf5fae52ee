// The cache's decisions when apiservers go away, stall or lag, with time driven by hand: when a
// main watch counts as stalled, when a resource is stale and when it has caught up
// (cache/watch-health.ts); where a broken watch resumes and when the resource is relisted
// (cache/resume-policy.ts); what /readyz says (proxy/health-server.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WatchHealth, watchHealthOptions } from '../../cache/watch-health.js';
import { ResumePolicy } from '../../cache/resume-policy.js';
import { readyz } from '../../proxy/health-server.js';

const OPTIONS = { staleAfterMs: 5_000, behindDeadlineMs: 4_000, silentDeadlineMs: 75_000 };

test('deadlines: derived from the bookmark interval, never below a few seconds', () => {
  assert.deepEqual(watchHealthOptions(5_000, 500), OPTIONS);
  assert.equal(watchHealthOptions(5_000, 2_000).behindDeadlineMs, 16_000);
  assert.equal(watchHealthOptions(5_000, 0).behindDeadlineMs, 4_000);
});

test('stall "behind": a progress watch saw events the main watch has not delivered within the deadline', () => {
  const h = new WatchHealth(OPTIONS);
  h.listed(0);
  h.opened(0);
  h.behind(1_000, 10n);
  assert.equal(h.stall(4_999), undefined);
  // Delivered in time: the evidence is answered.
  h.applied(10n);
  assert.equal(h.stall(10_000), undefined);
  h.behind(10_000, 12n);
  h.applied(11n);
  assert.equal(h.stall(14_000), undefined);
  assert.equal(h.stall(14_001), 'behind');
  // Evidence from before a new watch opened gets the new watch's own deadline.
  h.closed(20_000);
  assert.equal(h.stall(20_000), undefined, 'no watch open, nothing to cut');
  h.opened(20_000);
  assert.equal(h.stall(24_000), undefined);
  assert.equal(h.stall(24_001), 'behind');
  // A relist voids it.
  h.listed(25_000);
  assert.equal(h.stall(60_000), undefined);
});

test('stall "silent": no byte for the long deadline, unless progress watches proved the store current', () => {
  const h = new WatchHealth(OPTIONS);
  h.listed(0);
  h.opened(0);
  h.bytes(10_000);
  assert.equal(h.stall(85_000), undefined);
  assert.equal(h.stall(85_001), 'silent');
  // A quiet resource: apiservers send no bookmark while its watch cache does not move, but progress
  // watches keep proving there is nothing to miss.
  const q = new WatchHealth(OPTIONS);
  q.listed(0);
  q.opened(0);
  for (let t = 500; t <= 300_000; t += 500) q.current(t);
  assert.equal(q.stall(300_000), undefined);
  assert.equal(q.stall(375_001), 'silent', 'progress watches stopped too');
});

test('staleness: in touch while the watch is open or something was heard within the bound; stale after; serving again once caught up', () => {
  const h = new WatchHealth(OPTIONS);
  assert.equal(h.stale(1_000_000), false, 'never listed: not synced, which is another matter');
  h.listed(0);
  h.opened(0);
  assert.equal(h.stale(60_000), false, 'an open watch of a quiet resource is in touch');
  // The watch breaks; reconnecting fails; progress watches fail too. Open and not stalled until
  // then, it was in touch until then, though nothing was heard for a minute.
  h.closed(61_000);
  assert.equal(h.outOfTouchMs(63_000), 2_000);
  assert.equal(h.stale(66_000), false, 'exactly the bound: not yet');
  assert.equal(h.stale(66_001), true);
  // Heard again (a progress bookmark), but the main watch is not back: still stale.
  h.current(67_000);
  assert.equal(h.stale(67_000), true);
  // The watch is back, but nothing has proved it current yet.
  h.opened(70_000);
  assert.equal(h.outOfTouchMs(70_000), 0);
  assert.equal(h.stale(70_500), true);
  // A progress watch shows events the new watch has not applied: not caught up.
  h.behind(71_000, 50n);
  h.current(71_000);
  assert.equal(h.stale(71_000), true);
  h.applied(50n);
  assert.equal(h.stale(71_100), false, 'watch open, proved current, nothing pending');
  // Out of touch again; a relist (the watch expired meanwhile) catches up at once.
  h.closed(72_000);
  assert.equal(h.stale(77_001), true);
  h.listed(80_000);
  assert.equal(h.stale(80_000), false, 'a LIST is the current state');
  assert.equal(h.stale(85_001), true, 'but the watch must follow within the bound');
});

test('staleness: a watch cut as stalled was out of touch since the last thing heard', () => {
  const h = new WatchHealth(OPTIONS);
  h.listed(0);
  h.opened(0);
  h.current(10_000);
  h.behind(20_000, 9n);
  assert.equal(h.stall(24_001), 'behind');
  h.closed(24_001);
  assert.equal(h.outOfTouchMs(24_001), 4_001);
  assert.equal(h.stale(25_001), true, 'heard last at 20 s');
});

test('staleness: a stalled watch does not keep the resource in touch', () => {
  const h = new WatchHealth(OPTIONS);
  h.listed(0);
  h.opened(0);
  h.behind(1_000, 5n);
  assert.equal(h.stale(5_000), false);
  // Stalled from 5 s on; heard last at 1 s: out of touch for more than 5 s at 6.001 s.
  assert.equal(h.outOfTouchMs(6_000), 5_000);
  assert.equal(h.stale(6_001), true);
});

test('staleness: the proxy\'s own requests refused (401/403) again and again put the resource out of touch, open watch or not, until one is answered 200', () => {
  const h = new WatchHealth(OPTIONS);
  h.listed(0);
  h.opened(0);
  h.current(1_000);
  // A progress watch answered 403 once: maybe a blip, the open watch keeps it in touch.
  h.refused(2_000, 403);
  assert.equal(h.refusedWith, undefined);
  assert.equal(h.outOfTouchMs(3_000), 0);
  // Refused again: out of touch since the first refusal, though the old main watch is still open.
  h.refused(2_500, 403);
  assert.equal(h.refusedWith, 403);
  h.current(6_000);
  h.bytes(6_000);
  assert.equal(h.outOfTouchMs(7_000), 5_000);
  assert.equal(h.stale(7_000), false, 'exactly the bound: not yet');
  assert.equal(h.stale(7_001), true);
  // Accepted again (a progress watch answered 200), but no bookmark since: still stale.
  h.refused(8_000, 403);
  h.accepted(9_000);
  assert.equal(h.refusedWith, undefined);
  assert.equal(h.stale(9_000), true, 'a bookmark received after the refusals is needed');
  h.current(9_500);
  assert.equal(h.stale(9_500), false);
  // Refused with the main watch gone: a LIST answered 200 ends it, a relisted store is current.
  h.closed(10_000);
  h.refused(10_000, 401);
  h.refused(10_100, 401);
  assert.equal(h.stale(15_001), true);
  h.listed(16_000);
  assert.equal(h.stale(16_000), false);
  // A refusal between two successes never counts twice in a row.
  h.opened(16_000);
  h.refused(17_000, 403);
  h.opened(17_100);
  h.refused(17_200, 403);
  assert.equal(h.refusedWith, undefined);
  assert.equal(h.stale(30_000), false);
});

test('resume: the first resume after a healthy watch is immediate and avoids the backend; repeated failures back off', () => {
  const p = new ResumePolicy((n) => n * 1000);
  p.listed();
  p.healthy();
  assert.deepEqual(p.failed('https://a'), { kind: 'watch', avoid: new Set(['https://a']), delayMs: 0 });
  assert.deepEqual(p.failed('https://b'), { kind: 'watch', avoid: new Set(['https://b']), delayMs: 1000 });
  assert.deepEqual(p.failed(undefined), { kind: 'watch', avoid: new Set(), delayMs: 2000 });
  p.healthy();
  assert.equal(p.failed('https://c').delayMs, 0);
  assert.deepEqual(p.ended(), { kind: 'watch', avoid: new Set(), delayMs: 0 });
  // An event that does not parse: relist.
  p.healthy();
  assert.deepEqual(p.failed('https://c', 'parse_error'), { kind: 'relist', reason: 'parse_error', delayMs: 0 });
});

test('resume: 410 is retried from the same resourceVersion on each other healthy apiserver, relisted only when all answered 410', () => {
  const healthy = ['https://a', 'https://b', 'https://c'];
  const p = new ResumePolicy((n) => n * 1000);
  p.listed();
  p.healthy();
  assert.deepEqual(p.expired('https://a', healthy), { kind: 'watch', avoid: new Set(['https://a']), delayMs: 0 });
  assert.deepEqual(p.expired('https://b', healthy), { kind: 'watch', avoid: new Set(['https://a', 'https://b']), delayMs: 0 });
  assert.deepEqual(p.expired('https://c', healthy), { kind: 'relist', reason: 'expired', delayMs: 0 });
  // The relist's watch expires at once again, everywhere: the next relist waits.
  p.listed();
  p.expired('https://a', healthy);
  p.expired('https://b', healthy);
  assert.deepEqual(p.expired('https://c', healthy), { kind: 'relist', reason: 'expired', delayMs: 1000 });
  p.listed();
  for (const b of healthy.slice(0, 2)) p.expired(b, healthy);
  assert.equal(p.expired('https://c', healthy).delayMs, 2000);
  // A healthy watch starts over.
  p.healthy();
  assert.equal(p.expired('https://a', ['https://a']).kind, 'relist', 'no other apiserver');
});

test('resume: an upstream that ignores avoid cannot make 410 retries loop', () => {
  const p = new ResumePolicy(() => 0);
  const healthy = ['https://a', 'https://b', 'https://c'];
  const kinds = [1, 2, 3].map(() => p.expired('https://a', healthy).kind);
  assert.deepEqual(kinds, ['watch', 'watch', 'relist']);
  // No backend known (the upstream does not say): relist at once, as before.
  assert.equal(new ResumePolicy(() => 0).expired(undefined, healthy).kind, 'relist');
  assert.equal(new ResumePolicy(() => 0).expired('https://a', []).kind, 'relist');
});

test('/readyz: ok, or every check listed with the failed ones; ?verbose lists them when ready too', () => {
  const ok = () => [{ name: 'cache:pods' }, { name: 'cache:widgets.example.com', note: 'not cached, reads forwarded: no such resource' }];
  assert.deepEqual(readyz([() => undefined, ok], false), { code: 200, body: 'ok' });
  assert.deepEqual(readyz([() => undefined, ok], true), {
    code: 200,
    body: '[+]check-0 ok\n[+]cache:pods ok\n[+]cache:widgets.example.com ok (not cached, reads forwarded: no such resource)\nreadyz check passed\n',
  });
  const failing = readyz([() => 'shutting down', () => [{ name: 'cache:pods', failed: 'stale: out of touch for 6.0 s' }]], false);
  assert.equal(failing.code, 503);
  assert.equal(failing.body, '[-]check-0 failed: shutting down\n[-]cache:pods failed: stale: out of touch for 6.0 s\nreadyz check failed\n');
});
