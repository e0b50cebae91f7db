import assert from 'node:assert/strict';
import { parseSpiffeId, spiffeIdFor, workloadSpiffeId, type Role } from '../../certs';

describe('certs: SPIFFE ids', () => {
  it('names each role under its path', () => {
    assert.equal(spiffeIdFor('podium.local', 'agent', 'host-1'), 'spiffe://podium.local/host/host-1');
    assert.equal(spiffeIdFor('podium.local', 'gateway', 'gw'), 'spiffe://podium.local/gateway/gw');
    assert.equal(spiffeIdFor('podium.local', 'operator', 'alice'), 'spiffe://podium.local/operator/alice');
    assert.equal(spiffeIdFor('podium.local', 'server', 'pod-api'), 'spiffe://podium.local/server/pod-api');
  });

  it('round-trips through parseSpiffeId for every role', () => {
    for (const role of ['agent', 'gateway', 'operator', 'server'] as Role[]) {
      const id = spiffeIdFor('podium.local', role, 'n_1.x');
      assert.deepEqual(parseSpiffeId('podium.local', id), { role, name: 'n_1.x', spiffeId: id });
    }
  });

  it('workload ids have the tenant/env/service shape and are not role identities', () => {
    const id = workloadSpiffeId('podium.local', 'acme', 'prod', 'web');
    assert.equal(id, 'spiffe://podium.local/tenant/acme/env/prod/service/web');
    assert.equal(parseSpiffeId('podium.local', id), null);
    assert.throws(() => workloadSpiffeId('podium.local', 'acme/x', 'prod', 'web'), /invalid tenant/);
  });

  it('parseSpiffeId rejects other trust domains and shapes', () => {
    const bad = [
      'spiffe://other.local/host/h1',
      'spiffe://podium.local.evil/host/h1',
      'spiffe://podium.localhost/h1',
      'spiffe://podium.local/agent/h1', // the agent path is "host"
      'spiffe://podium.local/host/h1/extra',
      'spiffe://podium.local/host/',
      'spiffe://podium.local/host/..',
      'spiffe://podium.local/host/h%2F1',
      'spiffe://podium.local/host/h1?x=1',
      'SPIFFE://podium.local/host/h1',
      'https://podium.local/host/h1',
      `spiffe://podium.local/host/${'a'.repeat(65)}`,
      '',
    ];
    for (const id of bad) assert.equal(parseSpiffeId('podium.local', id), null, id);
  });

  it('spiffeIdFor refuses names that would change the shape', () => {
    assert.throws(() => spiffeIdFor('podium.local', 'agent', 'a/b'), /invalid agent name/);
    assert.throws(() => spiffeIdFor('podium.local', 'agent', ''), /invalid agent name/);
    assert.throws(() => spiffeIdFor('podium.local', 'agent', '..'), /invalid agent name/);
    assert.throws(() => spiffeIdFor('Podium.local', 'agent', 'h'), /invalid trust domain/);
    assert.throws(() => spiffeIdFor('podium.local', 'root' as Role, 'h'), /invalid role/);
  });
});
