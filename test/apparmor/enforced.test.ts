import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerSpec } from '../../gen/podium/v1/agent';
import { checkProfile, generateProfile, kernelAppArmor, profileName, serviceProfile } from '../../agent/runtime';
import { ALLOWED, ATTR_PROBE, DENIED, NEED_PROBES, PAIR, TCP_PROBE, guestScript, pairOp, pairProfileFile, type PairService } from './guest-script';
import { VM_CACHE, bootVm, buildVm, readOp, tail, type Op } from './vm';

/**
 * The proof that the profiles Podium generates are ENFORCED, not only compiled: this machine's
 * kernel has no AppArmor, so a Debian kernel that has it boots under qemu (TCG) with
 * `apparmor=1 security=apparmor` (scripts/lib/apparmor-vm.sh builds the VM into a cache on first
 * use, then boots it once for this file). In the guest the generated profile is loaded with
 * apparmor_parser -r, and operations run under `aa-exec -p <profile>` and unconfined; this file
 * checks, from what the guest wrote back over the 9p share, that the profile denied exactly what
 * it must (EACCES, with an apparmor="DENIED" line naming the profile in the kernel log), that
 * root without it could do the same, and that what a service needs stays allowed. Then two services'
 * profiles, made as the agent makes them for an award (serviceProfile), are loaded side by side:
 * each may write its own writable path and use its own capability, and is denied the other's.
 */
describe('AppArmor: generated profiles enforced by a kernel with AppArmor (qemu VM)', function () {
  // A cold build (apt-get install, debootstrap) takes about a minute here; allow for slow CI.
  this.timeout(30 * 60_000);

  const spec = { tenant: 'Acme Corp', environment: 'prod', service: 'web' };
  const name = profileName(spec);
  // Two services of another environment: a database that writes its data and chowns it, a web
  // server that writes its document root and listens on port 80. Read-only roots both.
  const pairSpec = (s: PairService): Pick<ContainerSpec, 'tenant' | 'environment' | 'service' | 'readOnlyRoot' | 'writablePaths' | 'capabilities'> => ({
    tenant: 'Acme Corp',
    environment: 'shop',
    service: s.key,
    readOnlyRoot: true,
    writablePaths: [s.writablePath],
    capabilities: [s.capability],
  });
  const pairProfiles = Object.fromEntries(PAIR.map((s) => [s.key, serviceProfile(pairSpec(s))])) as Record<PairService['key'], { name: string; text: string }>;
  let share = '';
  let out = '';
  let dmesg: string[] = [];
  let consoleText = '';

  const op = (mode: 'confined' | 'unconfined', id: string): Op => readOp(join(out, 'ops'), `${mode}.${id}`);
  const file = (rel: string): string => readFileSync(join(out, rel), 'utf8');
  const denials = (fragment: string): string[] =>
    dmesg.filter((l) => l.includes('apparmor="DENIED"') && l.includes(`profile="${name}"`) && l.includes(fragment));
  const show = (o: Op): string => `exit ${o.rc}, stdout ${JSON.stringify(o.out)}, stderr ${JSON.stringify(o.err)}`;

  before(async function () {
    const built = await buildVm();
    const profile = generateProfile(name, {});
    await checkProfile(profile);

    share = mkdtempSync(join(tmpdir(), 'podium-apparmor-vm-'));
    writeFileSync(join(share, 'profile'), profile);
    for (const s of PAIR) {
      await checkProfile(pairProfiles[s.key].text);
      writeFileSync(join(share, pairProfileFile(s.key)), pairProfiles[s.key].text);
    }
    writeFileSync(join(share, 'run.sh'), guestScript(name, { db: pairProfiles.db.name, web: pairProfiles.web.name }));
    const booted = await bootVm(share);
    consoleText = booted.output;
    process.stderr.write(`      (apparmor VM in ${VM_CACHE}: build check ${built.seconds.toFixed(1)} s, boot and run ${booted.seconds.toFixed(1)} s)\n`);

    out = join(share, 'out');
    const rc = readFileSync(join(share, 'run.rc'), 'utf8').trim();
    const log = readFileSync(join(share, 'run.log'), 'utf8');
    assert.equal(rc, '0', `the guest script failed (exit ${rc}):\n${tail(log)}`);
    assert.ok(existsSync(join(out, 'complete')), `the guest script did not finish:\n${tail(log)}\nconsole:\n${tail(consoleText)}`);
    dmesg = file('dmesg').split('\n');
  });

  after(() => {
    // PODIUM_KEEP_VM_SHARE=1 keeps what the guest wrote (console.log, run.log, out/) for a look.
    if (share === '') return;
    if (process.env.PODIUM_KEEP_VM_SHARE === '1') process.stderr.write(`      (guest files kept in ${share})\n`);
    else rmSync(share, { recursive: true, force: true });
  });

  it('boots a kernel whose AppArmor is enabled (parameters/enabled is Y) with securityfs', () => {
    assert.match(consoleText, /PODIUM-VM: BOOTED kernel=\S+ apparmor=Y\r?$/m);
    assert.equal(file('sys/module/apparmor/parameters/enabled').trim(), 'Y');
    assert.ok(existsSync(join(out, 'sys/kernel/security/apparmor')), '/sys/kernel/security/apparmor is missing in the guest');
  });

  it("kernelAppArmor() says enabled on a copy of the guest's /sys, and follows /sys/module/apparmor on this host", () => {
    const guest = kernelAppArmor(join(out, 'sys'));
    assert.equal(guest.enabled, true, guest.detail);
    const host = kernelAppArmor();
    if (!existsSync('/sys/module/apparmor')) {
      assert.equal(host.enabled, false, host.detail);
      assert.match(host.detail, /no AppArmor/);
    } else {
      const flag = readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim();
      assert.equal(host.enabled, flag === 'Y' && existsSync('/sys/kernel/security/apparmor'), host.detail);
    }
  });

  it('apparmor_parser -r loads the generated profile, and the kernel lists it in enforce mode', () => {
    assert.equal(file('load.rc').trim(), '0', `apparmor_parser -r failed:\n${file('load.out')}`);
    const loaded = file('profiles').split('\n');
    assert.ok(loaded.includes(`${name} (enforce)`), `${name} (enforce) is not among the loaded profiles:\n${loaded.join('\n')}`);
  });

  it('aa-exec runs the probes under the profile, in enforce mode; the unconfined ones run unconfined', () => {
    const confined = op('confined', ATTR_PROBE.id);
    assert.equal(confined.rc, 0, show(confined));
    assert.equal(confined.out.trim(), `${name} (enforce)`);
    const unconfined = op('unconfined', ATTR_PROBE.id);
    assert.equal(unconfined.out.trim(), 'unconfined', show(unconfined));
  });

  for (const probe of DENIED) {
    it(`denies: ${probe.what} (EACCES under the profile, done as root without it, logged as DENIED)`, () => {
      const confined = op('confined', probe.id);
      assert.notEqual(confined.rc, 0, `under the profile, "${probe.what}" succeeded: ${show(confined)}`);
      assert.match(confined.err, /permission denied/i, `under the profile, "${probe.what}" failed but not with EACCES: ${show(confined)}`);

      const unconfined = op('unconfined', probe.id);
      assert.equal(unconfined.rc, 0, `unconfined root could not "${probe.what}" either, so the denial proves nothing: ${show(unconfined)}`);
      assert.doesNotMatch(unconfined.err, /permission denied/i);

      const lines = denials(probe.logged);
      assert.ok(
        lines.length > 0,
        `no apparmor="DENIED" line with profile="${name}" and ${probe.logged} in the guest's kernel log ` +
          `(apparmor audit mode: ${file('audit-mode').trim()})`,
      );
    });
  }

  it('the unconfined write took effect where the profile had refused it (hostname, and the signalled process)', () => {
    assert.equal(file('hostname.after').trim(), 'podium-unconfined');
    assert.equal(file('victim.status').trim(), '143', 'the unconfined process was not ended by the unconfined SIGTERM alone');
  });

  for (const probe of ALLOWED) {
    it(`allows: ${probe.what}`, () => {
      const confined = op('confined', probe.id);
      assert.equal(confined.rc, 0, `under the profile, "${probe.what}" failed: ${show(confined)}`);
      assert.match(confined.out.trim(), probe.expect, show(confined));
      assert.equal(confined.err, '', show(confined));
    });
  }

  it('allows TCP sockets: a connect to a closed loopback port is refused by the peer, not by AppArmor', () => {
    const confined = op('confined', TCP_PROBE.id);
    assert.notEqual(confined.rc, 0, show(confined));
    assert.match(confined.err, /Connection refused/, show(confined));
  });

  it('logs no denial for what it allows', () => {
    const denied = dmesg.filter((l) => l.includes('apparmor="DENIED"') && l.includes(`profile="${name}"`));
    const allowedNames = ['/tmp/podium-confined', '/etc/passwd', 'oom_score_adj', '/bin/bash', '/dev/tcp'];
    for (const n of allowedNames) {
      const hits = denied.filter((l) => l.includes(n));
      assert.deepEqual(hits, [], `a denial for ${n}`);
    }
    // Every denial is one the probes asked for: nothing else the probes did was refused.
    const expected = DENIED.map((p) => p.logged);
    const unexpected = denied.filter((l) => !expected.some((f) => l.includes(f)));
    assert.deepEqual(unexpected, [], 'denials no probe expected');
  });

  describe('two services, each with its own profile from its own needs', () => {
    const denialsOf = (profile: string): string[] => dmesg.filter((l) => l.includes('apparmor="DENIED"') && l.includes(`profile="${profile}"`));
    const pairOpOf = (who: string, probe: string): Op => readOp(join(out, 'ops'), pairOp(who, probe));

    it('loads both profiles side by side, each under its own name in enforce mode', () => {
      assert.notEqual(pairProfiles.db.name, pairProfiles.web.name);
      const loaded = file('profiles.pair').split('\n');
      for (const s of PAIR) {
        assert.equal(file(`load.${s.key}.rc`).trim(), '0', `apparmor_parser -r ${pairProfileFile(s.key)} failed:\n${file(`load.${s.key}.out`)}`);
        assert.ok(loaded.includes(`${pairProfiles[s.key].name} (enforce)`), `${pairProfiles[s.key].name} (enforce) is not among the loaded profiles:\n${loaded.join('\n')}`);
      }
      assert.ok(loaded.includes(`${name} (enforce)`), 'the first profile is still loaded');
    });

    for (const s of PAIR) {
      const profile = (): string => pairProfiles[s.key].name;
      for (const probe of NEED_PROBES) {
        if (probe.owner === s.key) {
          it(`${s.key} may ${probe.what}`, () => {
            const o = pairOpOf(s.key, probe.id);
            assert.equal(o.rc, 0, `under ${s.key}'s profile, "${probe.what}" failed: ${show(o)}`);
            assert.match(o.out.trim(), probe.expect, show(o));
            assert.equal(o.err, '', show(o));
            assert.deepEqual(denialsOf(profile()).filter((l) => l.includes(probe.logged(s.key))), [], 'a denial for what it may do');
          });
        } else {
          it(`${s.key} is denied: ${probe.what} (fails as the kernel refuses it, logged as DENIED for ${s.key}'s profile; unconfined root may)`, () => {
            const o = pairOpOf(s.key, probe.id);
            assert.notEqual(o.rc, 0, `under ${s.key}'s profile, "${probe.what}" succeeded: ${show(o)}`);
            assert.match(o.err, probe.deniedErr, `under ${s.key}'s profile, "${probe.what}" failed otherwise: ${show(o)}`);
            const unconfined = pairOpOf('unconfined', probe.id);
            assert.equal(unconfined.rc, 0, `unconfined root could not "${probe.what}" either, so the denial proves nothing: ${show(unconfined)}`);
            const lines = denialsOf(profile()).filter((l) => l.includes(probe.logged(s.key)));
            assert.ok(lines.length > 0, `no apparmor="DENIED" line with profile="${profile()}" and ${probe.logged(s.key)} in the guest's kernel log`);
          });
        }
      }
    }

    it("logs no denial for either profile but the other service's needs", () => {
      for (const s of PAIR) {
        const expected = NEED_PROBES.filter((p) => p.owner !== s.key).map((p) => p.logged(s.key));
        const unexpected = denialsOf(pairProfiles[s.key].name).filter((l) => !expected.some((f) => l.includes(f)));
        assert.deepEqual(unexpected, [], `denials of ${s.key}'s profile that no probe expected`);
      }
    });
  });
});
