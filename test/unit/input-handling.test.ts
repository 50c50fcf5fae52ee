// Absolute-form targets (proxy/request-target.ts), a client's Impersonate-* headers as the apiserver
// reads them (proxy/client-impersonation.ts) and the bounded request labels (proxy/metric-labels.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { originForm } from '../../proxy/request-target.js';
import { clientImpersonation } from '../../proxy/client-impersonation.js';
import { requestLabels } from '../../proxy/metric-labels.js';
import { resolveRequestInfo } from '../../proxy/request-info.js';

test('originForm: the path of an absolute-form target, Go\'s authority checks', () => {
  assert.equal(originForm('/api/v1/pods'), undefined);
  assert.equal(originForm('*'), undefined);
  assert.deepEqual(originForm('https://other/api/v1/pods?limit=1'), { kind: 'origin', target: '/api/v1/pods?limit=1' });
  assert.deepEqual(originForm('HTTP://u:p@h:99999/version'), { kind: 'origin', target: '/version' });
  assert.deepEqual(originForm('https:///version'), { kind: 'origin', target: '/version' });
  assert.deepEqual(originForm('http://[::1]:1/version'), { kind: 'origin', target: '/version' });
  assert.deepEqual(originForm('http://h%25/version'), { kind: 'origin', target: '/version' });
  for (const bad of ['http://h:x/version', 'http://[::1/version', 'http://h:1:2/version', 'http://h%41/version', 'http://h%zz/version', 'http://u"@h/version']) {
    assert.deepEqual(originForm(bad), { kind: 'invalid' }, bad);
  }
  assert.equal(originForm('http://h'), undefined);
});

test('clientImpersonation: nothing, the apiserver\'s 400, or an impersonation', () => {
  assert.deepEqual(clientImpersonation([]), { kind: 'none' });
  assert.deepEqual(clientImpersonation(['Impersonate-User', '', 'Impersonate-Foo', 'x']), { kind: 'none' });
  assert.deepEqual(clientImpersonation(['Impersonate-User', 'admin']), { kind: 'impersonating', user: 'admin' });
  assert.deepEqual(clientImpersonation(['impersonate-group', 'a', 'Impersonate-Group', 'b']), {
    kind: 'bad-request', message: 'requested &user.DefaultInfo{Name:"", UID:"", Groups:[]string{"a", "b"}, Extra:map[string][]string(nil)} without impersonating a user name',
  });
  // Latin1 strings are bytes: é as one byte is invalid UTF-8 (\xe9), as two bytes it is é.
  assert.deepEqual(clientImpersonation(['Impersonate-Extra-B%2Fc', 'x\u00e9', 'Impersonate-Extra-a', '\u00c3\u00a9', 'Impersonate-Uid', '"']), {
    kind: 'bad-request', message: 'requested &user.DefaultInfo{Name:"", UID:"\\"", Groups:[]string(nil), Extra:map[string][]string{"a":[]string{"é"}, "b/c":[]string{"x\\xe9"}}} without impersonating a user name',
  });
});

test('requestLabels: made-up resources, groups, subresources and methods are other', () => {
  const l = requestLabels([{ group: 'example.com', resource: 'widgets' }]);
  const label = (method: string, url: string) => {
    const info = resolveRequestInfo(method, url);
    return `${l.verb(info)} ${l.resource(info)}`;
  };
  assert.equal(label('GET', '/api/v1/namespaces/a/pods'), 'list pods');
  assert.equal(label('GET', '/api/v1/namespaces/a/pods/p/log'), 'get pods/log');
  assert.equal(label('GET', '/api/v1/namespaces/a/pods/p/xyz'), 'get pods/other');
  assert.equal(label('GET', '/apis/apps/v1/namespaces/a/deployments/d/scale'), 'get deployments.apps/scale');
  assert.equal(label('GET', '/apis/example.com/v1/widgets'), 'list widgets.example.com');
  assert.equal(label('GET', '/apis/evil.com/v1/widgets'), 'list other');
  assert.equal(label('GET', '/api/v1/a1b2c3'), 'list other');
  assert.equal(label('GET', '/api/v1/a1b2c3/x/y'), 'get other');
  assert.equal(label('GET', '/random/path'), 'get ');
  assert.equal(label('MKCOL', '/random/path'), 'other ');
  assert.ok(l.resourceValues.has('pods/other') && l.resourceValues.has('other') && l.resourceValues.size < 2500);
});
