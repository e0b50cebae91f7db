import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppArmorError,
  checkProfile,
  generateProfile,
  kernelAppArmor,
  loadProfile,
  profileName,
  unloadProfile,
} from '../../agent/runtime';

describe('runtime/apparmor', function () {
  this.timeout(60_000);

  describe('kernelAppArmor', () => {
    let fakeSys: string;
    before(() => {
      fakeSys = mkdtempSync(join(tmpdir(), 'podium-test-sys-'));
    });
    after(() => rmSync(fakeSys, { recursive: true, force: true }));

    it('matches this kernel: enabled exactly when /sys/module/apparmor says Y (absent here)', () => {
      const k = kernelAppArmor();
      const moduleThere = existsSync('/sys/module/apparmor');
      if (!moduleThere) {
        assert.equal(k.enabled, false);
        assert.match(k.detail, /no AppArmor/);
      } else {
        const flag = readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim();
        assert.equal(k.enabled, flag === 'Y' && existsSync('/sys/kernel/security/apparmor'));
      }
    });

    it('reads the kernel files, not Docker: Y with securityfs is enabled, N or no securityfs is not', () => {
      const params = join(fakeSys, 'module/apparmor/parameters');
      mkdirSync(params, { recursive: true });
      writeFileSync(join(params, 'enabled'), 'N\n');
      assert.equal(kernelAppArmor(fakeSys).enabled, false);
      assert.match(kernelAppArmor(fakeSys).detail, /disabled/);
      writeFileSync(join(params, 'enabled'), 'Y\n');
      assert.equal(kernelAppArmor(fakeSys).enabled, false);
      assert.match(kernelAppArmor(fakeSys).detail, /securityfs/);
      mkdirSync(join(fakeSys, 'kernel/security/apparmor'), { recursive: true });
      assert.deepEqual(kernelAppArmor(fakeSys).enabled, true);
    });
  });

  describe('profileName', () => {
    it('is podium-<tenant>-<env>-<service>-<hash>, sanitized and unambiguous', () => {
      const name = profileName({ tenant: 'Acme Corp', environment: 'prod', service: 'web' });
      assert.match(name, /^podium-acme-corp-prod-web-[0-9a-f]{16}$/);
      assert.notEqual(
        profileName({ tenant: 'a-b', environment: 'c', service: 's' }),
        profileName({ tenant: 'a', environment: 'b-c', service: 's' }),
      );
    });
  });

  describe('generateProfile + checkProfile (the real apparmor_parser)', () => {
    const name = profileName({ tenant: 'acme', environment: 'prod', service: 'web' });

    it('a default profile compiles and holds the rules the security model asks for', async () => {
      const text = generateProfile(name);
      await checkProfile(text);
      assert.match(text, new RegExp(`^profile ${name} flags=\\(attach_disconnected,mediate_deleted\\) \\{$`, 'm'));
      assert.match(text, /^#include <tunables\/global>$/m);
      for (const rule of [
        'deny mount,',
        'deny @{PROC}/sys/** w,',
        'deny /sys/** wklx,',
        `signal (send, receive) peer=${name},`,
        `ptrace (trace, read, tracedby, readby) peer=${name},`,
        'network inet tcp,',
        'network inet6 udp,',
        'capability,',
      ]) {
        assert.ok(text.includes(`  ${rule}\n`), `missing rule: ${rule}`);
      }
      assert.ok(!/^\s*network,/m.test(text), 'no blanket network rule');
      assert.ok(!/network (inet6?|packet)\b.*\braw\b|network packet/.test(text), 'no raw IP or packet sockets');
    });

    it('a read-only-root profile with capabilities and a data directory compiles', async () => {
      const text = generateProfile(name, { readOnlyRoot: true, capabilities: ['NET_BIND_SERVICE', 'setuid'], writablePaths: ['/var/lib/data/'] });
      await checkProfile(text);
      assert.ok(text.includes('  /{,**} rlkmix,\n'));
      assert.ok(!text.includes('/{,**} rwlkmix'), 'no write to the whole root');
      assert.ok(text.includes('  /var/lib/data/{,**} rwlk,\n'));
      assert.ok(text.includes('  capability net_bind_service setuid,\n'));
      assert.ok(!text.includes('  capability,\n'));
      await checkProfile(generateProfile(name, { capabilities: [] }));
    });

    it("two services' profiles differ by what each needs: its own name, writable paths and capabilities, not the other's", async () => {
      const dbName = profileName({ tenant: 'acme', environment: 'prod', service: 'db' });
      const db = generateProfile(dbName, { readOnlyRoot: true, writablePaths: ['/var/lib/data'], capabilities: ['CHOWN'] });
      const web = generateProfile(name, { readOnlyRoot: true, writablePaths: ['/srv/www'], capabilities: ['NET_BIND_SERVICE'] });
      await checkProfile(db);
      await checkProfile(web);
      assert.notEqual(dbName, name);
      assert.ok(db.includes(`\nprofile ${dbName} `) && web.includes(`\nprofile ${name} `));
      assert.ok(db.includes('  /var/lib/data/{,**} rwlk,\n') && !db.includes('/srv/www'), 'db writes its data, not the web root');
      assert.ok(web.includes('  /srv/www/{,**} rwlk,\n') && !web.includes('/var/lib/data'), 'web writes its root, not the data');
      assert.ok(db.includes('  capability chown,\n') && !db.includes('net_bind_service'));
      assert.ok(web.includes('  capability net_bind_service,\n') && !web.includes('chown'));
      // Peers are each profile's own: the other service is not a peer for signals, ptrace or sockets.
      assert.ok(!db.includes(name) && !web.includes(dbName));
    });

    it('refuses writable paths that would open the root or a kernel tree, whatever the caller checked', () => {
      for (const p of ['/', '//', '/proc', '/proc/sys/kernel', '/sys/fs/cgroup', '/dev', '/a//b', '/a/./b', 'relative']) {
        assert.throws(() => generateProfile(name, { readOnlyRoot: true, writablePaths: [p] }), /not allowed/, p);
      }
    });

    it('a broken profile fails with the parser\'s own message', async () => {
      const broken = generateProfile(name).replace('  deny mount,', '  deny mount frobnicate everything,');
      await assert.rejects(checkProfile(broken), (err: unknown) => {
        assert.ok(err instanceof AppArmorError);
        assert.match(err.message, /^apparmor_parser rejected the profile \(exit \d+\): .*AppArmor parser error/s);
        assert.match(err.output, /AppArmor parser error/);
        return true;
      });
      // A semantic error (caught when compiling, not when parsing) fails as well.
      const conflicting = generateProfile(name).replace('  deny mount,', '  /bin/sh ix,\n  /bin/sh px,');
      await assert.rejects(checkProfile(conflicting), /conflicting x modifiers/);
    });

    it('refuses names and paths that would inject rules into the profile text', () => {
      assert.throws(() => generateProfile('x { capability, }'), /not allowed/);
      assert.throws(() => generateProfile('Upper'), /not allowed/);
      assert.throws(() => generateProfile('unconfined'), /not allowed/);
      assert.throws(() => generateProfile(name, { readOnlyRoot: true, writablePaths: ['/data/** rwix,\n  /'] }), /not allowed/);
      assert.throws(() => generateProfile(name, { readOnlyRoot: true, writablePaths: ['/data/../etc'] }), /not allowed/);
      assert.throws(() => generateProfile(name, { capabilities: ['SYS_ADMIN'] }), /not allowed/);
    });
  });

  describe('loadProfile', () => {
    it('loads only where the kernel enforces AppArmor, and refuses elsewhere without running the parser', async () => {
      const text = generateProfile(`podium-test-load-${process.pid}`);
      if (!kernelAppArmor().enabled) {
        await assert.rejects(loadProfile(text), (err: unknown) => err instanceof AppArmorError && /cannot load an AppArmor profile: .*no AppArmor|disabled|securityfs/.test(err.message));
        await assert.rejects(unloadProfile(text), AppArmorError);
      } else {
        await loadProfile(text);
        await unloadProfile(text);
      }
    });
  });
});
