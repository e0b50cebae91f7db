import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError, parseSubnetPool } from '../../cli/config';
import { formatIpv4Cidr, overlaps, parseIpv4Cidr, SubnetPool, SubnetPoolError } from '../../agent/subnet-pool';

const cidr = (text: string) => parseIpv4Cidr(text)!;

describe('agent: subnet pool', () => {
  it('parses and formats IPv4 CIDRs, and nothing else', () => {
    assert.deepEqual(parseIpv4Cidr('10.210.0.0/16'), { base: 0x0ad20000, prefix: 16 });
    assert.equal(formatIpv4Cidr(cidr('192.168.1.64/26')), '192.168.1.64/26');
    for (const bad of ['10.210.0.0', '10.210.0.0/33', '256.1.1.1/8', 'fd00::/64', '10.0.0.0/x', '']) assert.equal(parseIpv4Cidr(bad), undefined, bad);
  });

  it('refuses a pool or a prefix that makes no sense, naming which', () => {
    const refuses = (pool: string, prefix: number, field: 'pool' | 'prefix', message: RegExp) =>
      assert.throws(() => SubnetPool.parse(pool, prefix), (err: unknown) => err instanceof SubnetPoolError && err.field === field && message.test(err.message));
    refuses('10.210.0.0', 26, 'pool', /expected an IPv4 CIDR/);
    refuses('10.210.1.0/16', 26, 'pool', /host bits set; did you mean 10\.210\.0\.0\/16\?/);
    refuses('10.210.0.0/16', 15, 'prefix', /from 16 .* to 29, got 15/);
    refuses('10.210.0.0/16', 30, 'prefix', /to 29, got 30/);
    refuses('10.210.0.0/16', 26.5, 'prefix', /got 26.5/);
    assert.equal(SubnetPool.parse('10.210.0.0/16', 26).size, 1024);
  });

  it('podium agent names the flag that is wrong', () => {
    assert.deepEqual(parseSubnetPool('10.210.0.0/16', '26'), { subnetPool: '10.210.0.0/16', subnetPrefix: 26 });
    const refuses = (pool: string, prefix: string, message: RegExp) => assert.throws(() => parseSubnetPool(pool, prefix), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    refuses('10.210.0.0', '26', /^--subnet-pool: expected an IPv4 CIDR/);
    refuses('10.210.0.0/16', 'x', /^--subnet-prefix: expected a number of bits/);
    refuses('10.210.0.0/16', '-1', /^--subnet-prefix: /);
    refuses('10.210.0.0/24', '20', /^--subnet-prefix: expected an integer from 24/);
  });

  it('overlaps is true exactly when two blocks share an address', () => {
    assert.equal(overlaps(cidr('10.210.0.0/26'), cidr('10.210.0.63/32')), true);
    assert.equal(overlaps(cidr('10.210.0.0/26'), cidr('10.210.0.64/26')), false);
    assert.equal(overlaps(cidr('10.0.0.0/8'), cidr('10.210.7.0/26')), true);
    assert.equal(overlaps(cidr('172.17.0.0/16'), cidr('10.210.0.0/16')), false);
  });

  it('picks the first free subnet from the start index, wrapping, skipping what is used', () => {
    const pool = SubnetPool.parse('10.210.0.0/24', 26); // 4 subnets
    assert.equal(pool.pick([], 0), '10.210.0.0/26');
    assert.equal(pool.pick([], 2), '10.210.0.128/26');
    assert.equal(pool.pick([cidr('10.210.0.128/25')], 2), '10.210.0.0/26');
    assert.equal(pool.pick([cidr('10.210.0.10/32'), cidr('10.210.0.64/26')], 0), '10.210.0.128/26');
    assert.equal(pool.pick([cidr('10.0.0.0/8')], 1), undefined, 'a network over the whole pool leaves nothing');
    assert.equal(pool.pick([cidr('172.17.0.0/16')], 7), '10.210.0.192/26', 'the start wraps');
  });

  it('agrees with a brute-force search on any used set', () => {
    const block = fc.record({ base: fc.integer({ min: 0x0ad20000 - 512, max: 0x0ad20000 + 1536 }), prefix: fc.integer({ min: 20, max: 32 }) });
    fc.assert(
      fc.property(fc.array(block, { maxLength: 12 }), fc.integer({ min: 0, max: 100 }), (used, start) => {
        const pool = SubnetPool.parse('10.210.0.0/22', 26); // 16 subnets
        let expected: string | undefined;
        for (let k = 0; k < pool.size && expected === undefined; k++) {
          const s = pool.subnet((start + k) % pool.size);
          if (!used.some((u) => overlaps(u, s))) expected = formatIpv4Cidr(s);
        }
        assert.equal(pool.pick(used, start), expected);
      }),
    );
  });
});
