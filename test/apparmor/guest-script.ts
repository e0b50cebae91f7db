/**
 * The script the AppArmor test VM runs as root (unconfined) in its 9p share. It loads the profile
 * in ./profile, runs each probe twice (under `aa-exec -p <profile>` and unconfined) as
 * `/bin/sh -c <command>` with WHO=confined|unconfined in the environment, and records each
 * probe's exit status, stdout and stderr in out/ops/<confined|unconfined>.<id>.{rc,out,err}; then
 * the kernel's list of loaded profiles, a copy of the files kernelAppArmor reads, and the kernel log.
 */

export interface Probe {
  id: string;
  /** What the probe does, for messages. */
  what: string;
  /** Shell command; $WHO is "confined" or "unconfined", $VICTIM the pid of an unconfined process. */
  command: string;
}

/** Operations the generated profile must deny, and that root may do when unconfined. */
export const DENIED: readonly (Probe & { logged: string })[] = [
  { id: 'proc-sys-write', what: 'write /proc/sys/kernel/hostname', command: 'echo podium-$WHO >/proc/sys/kernel/hostname', logged: 'name="/proc/sys/kernel/hostname"' },
  { id: 'sys-write', what: 'write /sys/kernel/mm/ksm/run', command: 'echo 0 >/sys/kernel/mm/ksm/run', logged: 'name="/sys/kernel/mm/ksm/run"' },
  {
    // busybox mount (the VM's /podium/busybox) reports mount(2)'s errno as it is; util-linux's
    // mount(8) retries an EACCES read-only and then says "cannot mount read-only" instead.
    id: 'mount',
    what: 'mount a tmpfs',
    command: '/podium/busybox mount -t tmpfs podium-probe /mnt && /podium/busybox umount /mnt',
    logged: 'operation="mount"',
  },
  { id: 'kallsyms-read', what: 'read /proc/kallsyms', command: 'head -c 64 /proc/kallsyms', logged: 'name="/proc/kallsyms"' },
  {
    id: 'securityfs-read',
    what: 'read /sys/kernel/security/apparmor/profiles',
    command: 'cat /sys/kernel/security/apparmor/profiles',
    logged: 'name="/sys/kernel/security/apparmor/profiles"',
  },
  { id: 'signal-unconfined', what: 'send SIGTERM to an unconfined process', command: 'kill -TERM $VICTIM', logged: 'operation="signal"' },
];

/** Operations the generated profile must allow. */
export const ALLOWED: readonly (Probe & { expect: RegExp })[] = [
  { id: 'tmp-write', what: 'write and read back a file in /tmp', command: 'echo podium-ok >/tmp/podium-$WHO && cat /tmp/podium-$WHO', expect: /^podium-ok$/ },
  { id: 'passwd-read', what: 'read /etc/passwd', command: 'head -n 1 /etc/passwd', expect: /^root:x:0:0:/ },
  { id: 'shell', what: 'run a shell, and another program from it', command: 'echo shell-ok && /bin/bash -c "echo bash-ok"', expect: /^shell-ok\nbash-ok$/ },
  {
    id: 'own-proc-write',
    what: "write the process's own /proc entry",
    command: 'echo 100 >/proc/self/oom_score_adj && cat /proc/self/oom_score_adj',
    expect: /^100$/,
  },
  {
    id: 'signal-own',
    what: 'signal a process of the same profile',
    command: 'sleep 600 & kill -TERM $! && { wait $!; echo "status $?"; } 2>/dev/null',
    expect: /^status 143$/,
  },
];

/** A TCP connect to a closed loopback port: refused by the peer, not by AppArmor. */
export const TCP_PROBE: Probe = { id: 'tcp-connect', what: 'open a TCP socket and connect', command: "bash -c 'exec 3<>/dev/tcp/127.0.0.1/9'" };

/** Which profile the process runs under, as the kernel says. */
export const ATTR_PROBE: Probe = { id: 'attr', what: 'read /proc/self/attr/current', command: 'cat /proc/self/attr/current' };

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function guestScript(profile: string): string {
  const probes = [ATTR_PROBE, ...DENIED, ...ALLOWED, TCP_PROBE];
  const calls = (mode: string): string[] => probes.map((p) => `op ${mode} ${p.id} ${shellQuote(p.command)}`);
  return [
    '# Written by test/apparmor/enforced.test.ts; runs as root, unconfined, in the test VM.',
    'set -u',
    `P=${shellQuote(profile)}`,
    'O=./out',
    'mkdir -p "$O/ops" "$O/sys/module/apparmor/parameters"',
    '',
    '# (a) The kernel files kernelAppArmor() reads, mirrored for the host.',
    'cp /sys/module/apparmor/parameters/enabled "$O/sys/module/apparmor/parameters/enabled"',
    'if [ -d /sys/kernel/security/apparmor ]; then mkdir -p "$O/sys/kernel/security/apparmor"; fi',
    'uname -r >"$O/uname"',
    '',
    '# Explicit deny rules are quiet by default: they refuse without a log line. The kernel\'s',
    '# own switch "noquiet" logs them too, so that every denial below names the profile.',
    'printf noquiet >/sys/module/apparmor/parameters/audit',
    'cat /sys/module/apparmor/parameters/audit >"$O/audit-mode"',
    '',
    '# (b) Load the generated profile.',
    'apparmor_parser -r ./profile >"$O/load.out" 2>&1',
    'echo $? >"$O/load.rc"',
    '',
    '# (d) What the kernel has loaded, and in which mode.',
    'cat /sys/kernel/security/apparmor/profiles >"$O/profiles" 2>&1',
    '',
    'op() {',
    '  f="$O/ops/$1.$2"',
    '  if [ "$1" = confined ]; then',
    '    WHO=$1 aa-exec -p "$P" -- /bin/sh -c "$3" >"$f.out" 2>"$f.err" </dev/null',
    '  else',
    '    WHO=$1 /bin/sh -c "$3" >"$f.out" 2>"$f.err" </dev/null',
    '  fi',
    '  echo $? >"$f.rc"',
    '}',
    '',
    '# An unconfined process for the signal probes; only the unconfined probe may kill it.',
    'sleep 600 &',
    'VICTIM=$!',
    'export VICTIM',
    '',
    '# (c) Under the profile first, then (e) the same without it.',
    ...calls('confined'),
    ...calls('unconfined'),
    '',
    '# 143: ended by the SIGTERM of the unconfined probe; 137: by this watchdog, nobody else.',
    '( sleep 5; kill -KILL "$VICTIM" 2>/dev/null ) &',
    'WATCHDOG=$!',
    'wait "$VICTIM"',
    'echo $? >"$O/victim.status"',
    'kill "$WATCHDOG" 2>/dev/null',
    'cat /proc/sys/kernel/hostname >"$O/hostname.after"',
    '',
    '# Audit lines reach the kernel log through kauditd, a moment after the denial: wait (5 s at',
    '# most) for the last probe\'s.',
    'i=0',
    `while [ $i -lt 50 ] && ! dmesg | grep -F 'apparmor="DENIED"' | grep -qF ${shellQuote(DENIED[DENIED.length - 1].logged)}; do`,
    '  sleep 0.1',
    '  i=$((i + 1))',
    'done',
    'dmesg >"$O/dmesg" 2>&1',
    'echo done >"$O/complete"',
    '',
  ].join('\n');
}
