import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTenantName, TENANT_NAME_RULE, workloadSpiffeId } from '../../certs';
import { nameViolation } from '../../server/validation';

describe('certs: tenant names', () => {
  it('accepts DNS labels that start with a letter, up to 40 characters', () => {
    for (const ok of ['acme', 'default', 'a', 'acme-corp', 'a1', 'x'.repeat(40)]) assert.equal(isTenantName(ok), true, ok);
  });

  it('refuses everything else, "Acme Corp" included', () => {
    const bad = ['', 'Acme Corp', 'Acme', 'acme corp', '-acme', 'acme-', '1acme', 'x'.repeat(41), 'a/b', 'a.b', 'a_b', 'ä', 'acme\n', ' acme'];
    for (const name of bad) assert.equal(isTenantName(name), false, JSON.stringify(name));
    for (const notString of [undefined, null, 42, ['acme']]) assert.equal(isTenantName(notString), false);
  });

  it('states the rule in words', () => {
    assert.match(TENANT_NAME_RULE, /1-40 characters of a-z, 0-9 and "-", starting with a letter/);
  });

  it('is the grammar of environment and service names', () => {
    const alphabet = fc.constantFrom(...'abcxyz0189-A_. '.split(''));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 44 }).map((cs) => cs.join('')), (name) => {
        assert.equal(isTenantName(name), nameViolation('name', name) === null, JSON.stringify(name));
      }),
      { numRuns: 2000 },
    );
  });

  it('is what a workload identity accepts as its tenant', () => {
    assert.equal(workloadSpiffeId('podium.local', 'acme', 'prod', 'web'), 'spiffe://podium.local/tenant/acme/env/prod/service/web');
    for (const tenant of ['Acme', 'acme.corp', '1acme']) {
      assert.throws(() => workloadSpiffeId('podium.local', tenant, 'prod', 'web'), /invalid tenant/);
    }
  });
});
