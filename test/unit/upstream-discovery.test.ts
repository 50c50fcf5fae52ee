// Which apiserver URLs an EndpointSlice of the `kubernetes` Service stands for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discoveredOrigins, endpointSliceOrigins } from '../../proxy/upstream-discovery.js';

const ep = (address: string, ready?: boolean) => ({ addresses: [address], ...(ready === undefined ? {} : { conditions: { ready } }) });

test('ready endpoints on the port named https; ready unset counts as ready', () => {
  const slice = {
    addressType: 'IPv4',
    ports: [{ name: 'metrics', port: 9000 }, { name: 'https', port: 6443, protocol: 'TCP' }],
    endpoints: [ep('10.0.0.2', true), ep('10.0.0.3', false), ep('10.0.0.4')],
  };
  assert.deepEqual(endpointSliceOrigins(slice), ['https://10.0.0.2:6443', 'https://10.0.0.4:6443']);
});

test('the only port when none is named https; none chosen among several unnamed', () => {
  assert.deepEqual(endpointSliceOrigins({ addressType: 'IPv4', ports: [{ port: 443 }], endpoints: [ep('10.0.0.2')] }), ['https://10.0.0.2:443']);
  assert.deepEqual(endpointSliceOrigins({ addressType: 'IPv4', ports: [{ port: 443 }, { port: 444 }], endpoints: [ep('10.0.0.2')] }), []);
  assert.deepEqual(endpointSliceOrigins({ addressType: 'IPv4', ports: null, endpoints: null }), []);
});

test('IPv6 in brackets; addresses not of the slice type, FQDN slices and junk are skipped', () => {
  assert.deepEqual(endpointSliceOrigins({ addressType: 'IPv6', ports: [{ name: 'https', port: 6443 }], endpoints: [ep('fd00::1'), ep('10.0.0.2')] }), ['https://[fd00::1]:6443']);
  assert.deepEqual(endpointSliceOrigins({ addressType: 'FQDN', ports: [{ name: 'https', port: 6443 }], endpoints: [ep('api.example.com')] }), []);
  assert.deepEqual(endpointSliceOrigins({ addressType: 'IPv4', ports: [{ name: 'https', port: '6443' }], endpoints: [ep('10.0.0.2')] }), []);
  assert.deepEqual(endpointSliceOrigins({ addressType: 'IPv4', ports: [{ name: 'https', port: 6443 }], endpoints: [{ addresses: [42] }, 'x', null] }), []);
  assert.deepEqual(endpointSliceOrigins('not a slice'), []);
});

test('several slices: deduplicated and sorted; each URL parses', () => {
  const a = { addressType: 'IPv4', ports: [{ name: 'https', port: 6443 }], endpoints: [ep('10.0.0.3'), ep('10.0.0.2')] };
  const b = { addressType: 'IPv6', ports: [{ name: 'https', port: 6443 }], endpoints: [ep('fd00::1')] };
  const origins = discoveredOrigins([a, b, a]);
  assert.deepEqual(origins, ['https://10.0.0.2:6443', 'https://10.0.0.3:6443', 'https://[fd00::1]:6443']);
  assert.deepEqual(origins.map((o) => new URL(o).origin), origins);
});
