/**
 * The proxy's view of the registry: the latest snapshot per environment, stale ones ignored,
 * `gone` forgotten, and a new session's first snapshot taken whatever its version.
 */
import assert from 'node:assert/strict';
import type { EnvironmentRegistry } from '../../gen/podium/v1/agent';
import { MeshDirectory } from '../../agent/mesh/directory';

const snap = (version: number, endpoints: string[], gone = false): EnvironmentRegistry => ({
  tenant: 'acme',
  environment: 'prod',
  version,
  gone,
  services: gone ? [] : [{ name: 'api', environment: 'prod', ports: [], allowFromEnvironments: [], published: undefined, endpoints: endpoints.map((instanceId) => ({ instanceId, host: 'h', meshAddress: 'h:1' })) }],
});
const ids = (d: MeshDirectory) => (d.service('acme', 'prod', 'api')?.endpoints ?? []).map((e) => e.instanceId);

describe('mesh directory', () => {
  it('keeps the newest snapshot of a session, ignores an older one, forgets a gone environment', () => {
    const d = new MeshDirectory();
    const changes: string[] = [];
    d.onChange = (t, e) => changes.push(`${t}/${e}`);
    assert.ok(d.apply(snap(5, ['a', 'b'])));
    assert.ok(!d.apply(snap(4, ['a'])), 'older than held');
    assert.deepEqual(ids(d), ['a', 'b']);
    assert.ok(d.apply(snap(6, ['b'])));
    assert.deepEqual(ids(d), ['b']);
    assert.ok(d.apply(snap(7, [], true)));
    assert.equal(d.service('acme', 'prod', 'api'), undefined);
    assert.equal(d.size, 0);
    assert.deepEqual(changes, ['acme/prod', 'acme/prod', 'acme/prod']);
  });

  it('takes the first snapshot after a new session whatever its version (another Pod API counts afresh)', () => {
    const d = new MeshDirectory();
    d.apply(snap(900, ['a']));
    d.reset();
    assert.ok(d.apply(snap(1, ['c'])));
    assert.deepEqual(ids(d), ['c']);
    assert.ok(!d.apply(snap(1, ['d'])), 'within the session, versions order again');
  });
});
