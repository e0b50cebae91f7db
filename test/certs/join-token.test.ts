import assert from 'node:assert/strict';
import { createJoinToken, hashSecret, parseJoinToken, secretMatches } from '../../certs';

const FP = 'ab'.repeat(32);

describe('certs: join tokens', () => {
  it('round-trips: the parsed secret matches the stored hash', () => {
    const made = createJoinToken(FP, 'agent');
    assert.match(made.token, /^PDMJ1\.[0-9a-f]{64}\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const parsed = parseJoinToken(made.token);
    assert.equal(parsed.fingerprint, FP);
    assert.equal(parsed.id, made.id);
    assert.equal(made.role, 'agent');
    assert.equal(Buffer.from(parsed.secret, 'base64url').length, 32);
    assert.equal(hashSecret(parsed.secret), made.secretHash);
    assert.ok(secretMatches(parsed.secret, made.secretHash));
    assert.ok(!made.token.includes(made.secretHash), 'the token does not carry the hash');
  });

  it('tolerates whitespace around a pasted token', () => {
    const made = createJoinToken(FP, 'gateway');
    assert.equal(parseJoinToken(`  ${made.token}\n`).id, made.id);
  });

  it('makes different tokens every time', () => {
    const a = createJoinToken(FP, 'agent');
    const b = createJoinToken(FP, 'agent');
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.secretHash, b.secretHash);
  });

  it('rejects malformed tokens naming what is wrong, without echoing the token', () => {
    const good = parseJoinToken(createJoinToken(FP, 'agent').token);
    const cases: [string, RegExp][] = [
      ['', /expected 4 parts/],
      [`PDMJ1.${FP}.${good.id}`, /expected 4 parts separated by '\.', found 3/],
      [`PDMJ1.${FP}.${good.id}.${good.secret}.x`, /found 5/],
      [`PDMJ2.${FP}.${good.id}.${good.secret}`, /does not start with PDMJ1/],
      [`PDMJ1.${FP.toUpperCase()}.${good.id}.${good.secret}`, /CA fingerprint is not 64 lowercase hex/],
      [`PDMJ1.${FP.slice(2)}.${good.id}.${good.secret}`, /CA fingerprint/],
      [`PDMJ1.${FP}.${good.id}0.${good.secret}`, /token id is not 16 lowercase hex/],
      [`PDMJ1.${FP}.${good.id}.${good.secret.slice(1)}`, /secret is not 43 base64url/],
      [`PDMJ1.${FP}.${good.id}.${good.secret.slice(1)}+`, /secret is not 43 base64url/],
    ];
    for (const [token, why] of cases) {
      assert.throws(
        () => parseJoinToken(token),
        (err: Error) => {
          assert.match(err.message, /^join token is malformed: /);
          assert.match(err.message, why);
          assert.ok(!err.message.includes(good.secret.slice(1, 20)), 'no secret in the message');
          return true;
        },
        token,
      );
    }
  });

  it('createJoinToken validates its inputs', () => {
    assert.throws(() => createJoinToken('AB:CD', 'agent'), /fingerprint must be 64 lowercase hex/);
    assert.throws(() => createJoinToken(FP, 'root' as never), /unknown role/);
  });
});

describe('certs: hashSecret and secretMatches', () => {
  it('hashes with SHA-256 to lowercase hex', () => {
    assert.equal(hashSecret('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('matches only the right secret and never throws on a bad hash', () => {
    const hash = hashSecret('s3cret');
    assert.equal(secretMatches('s3cret', hash), true);
    assert.equal(secretMatches('s3creT', hash), false);
    assert.equal(secretMatches('s3cret', hash.toUpperCase()), false);
    assert.equal(secretMatches('s3cret', hash.slice(2)), false);
    assert.equal(secretMatches('s3cret', ''), false);
  });
});
