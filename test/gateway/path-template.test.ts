import { strict as assert } from 'node:assert';
import { PathTemplate } from '../../gateway/path-template';

describe('gateway path templates', () => {
  it('binds simple variables and refuses other paths', () => {
    const t = PathTemplate.parse('/v1/environments/{environment}/services/{service}');
    assert.deepEqual(Object.fromEntries(t.match('/v1/environments/prod/services/web')!), { environment: 'prod', service: 'web' });
    assert.equal(t.match('/v1/environments/prod/services'), null);
    assert.equal(t.match('/v1/environments/prod/services/web/x'), null);
    assert.equal(t.match('/v1/environments//services/web'), null, 'a variable never binds an empty segment');
    assert.equal(t.match('/v2/environments/prod/services/web'), null);
  });

  it('keeps values percent-encoded for the transcoder to decode', () => {
    const t = PathTemplate.parse('/v1/things/{name}');
    assert.equal(t.match('/v1/things/a%20b')!.get('name'), 'a%20b');
  });

  it('binds a nested field path {a.b}', () => {
    const t = PathTemplate.parse('/v1/{service.environment}/services');
    assert.deepEqual(t.variables[0].fieldPath, ['service', 'environment']);
    assert.equal(t.match('/v1/prod/services')!.get('service.environment'), 'prod');
  });

  it('binds several segments with {name=segments/*}', () => {
    const t = PathTemplate.parse('/v1/{name=environments/*/services/*}');
    assert.equal(t.match('/v1/environments/prod/services/web')!.get('name'), 'environments/prod/services/web');
    assert.equal(t.match('/v1/projects/prod/services/web'), null);
    assert.equal(t.toOpenApiPath(), '/v1/{name}');
  });

  it('binds the rest of the path with **, and matches a custom verb', () => {
    const rest = PathTemplate.parse('/v1/files/{path=**}');
    assert.equal(rest.match('/v1/files/a/b/c')!.get('path'), 'a/b/c');
    const verb = PathTemplate.parse('/v1/services/{service}:restart');
    assert.equal(verb.verb, 'restart');
    assert.equal(verb.match('/v1/services/web:restart')!.get('service'), 'web');
    assert.equal(verb.match('/v1/services/web'), null);
    assert.equal(verb.toOpenApiPath(), '/v1/services/{service}:restart');
  });

  it('refuses templates it does not understand', () => {
    for (const bad of ['v1/x', '/v1/{a', '/v1/{a}}', '/v1/{a-b}', '/v1/x{a}', '/v1/**/x', '/v1//x']) {
      assert.throws(() => PathTemplate.parse(bad), Error, bad);
    }
  });
});
