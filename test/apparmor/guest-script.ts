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

/**
 * Two services of one environment whose needs differ, for the test that profiles are per service:
 * each may write its own directory and use its own capability, and must be denied the other's.
 * The VM's root is read-only, so the guest puts a tmpfs on /srv for the two directories, as the
 * agent has Docker put one on each writable path.
 */
export interface PairService {
  key: 'db' | 'web';
  writablePath: string;
  capability: 'CHOWN' | 'NET_BIND_SERVICE';
}

export const PAIR: readonly PairService[] = [
  { key: 'db', writablePath: '/srv/data', capability: 'CHOWN' },
  { key: 'web', writablePath: '/srv/www', capability: 'NET_BIND_SERVICE' },
];

/** A probe of one service's need: allowed under its own profile, denied under the other's. */
export interface NeedProbe extends Probe {
  /** Whose need it is. */
  owner: PairService['key'];
  expect: RegExp;
  /** How the denial shows on stderr: EACCES for a file, EPERM or EACCES for a capability. */
  deniedErr: RegExp;
  /** A fragment of the kernel's DENIED line when `who` (a service key) runs it. */
  logged: (who: string) => string;
}

const CAPABILITY_PROBES: Record<PairService['capability'], Omit<NeedProbe, 'id' | 'owner' | 'what'>> = {
  // Root changing a file's owner needs CAP_CHOWN; without it chown(2) says EPERM.
  CHOWN: {
    command: 'touch /tmp/chown-$WHO && chown 1000 /tmp/chown-$WHO && stat -c %u /tmp/chown-$WHO',
    expect: /^1000$/,
    deniedErr: /Operation not permitted/,
    logged: () => 'capname="chown"',
  },
  // A listening socket on a port below 1024 needs CAP_NET_BIND_SERVICE; without it bind(2) says EACCES.
  NET_BIND_SERVICE: {
    command: `perl -MSocket -e 'socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!\\n"; bind($s, pack_sockaddr_in(80, inet_aton("127.0.0.1"))) or die "bind: $!\\n"; print "bound 80\\n"'`,
    expect: /^bound 80$/,
    deniedErr: /bind: Permission denied/,
    logged: () => 'capname="net_bind_service"',
  },
};

export function needProbes(s: PairService): NeedProbe[] {
  return [
    {
      id: `write-${s.key}`,
      owner: s.key,
      what: `write a file in ${s.writablePath} (${s.key}'s writable path)`,
      command: `echo podium-ok >${s.writablePath}/probe-$WHO && cat ${s.writablePath}/probe-$WHO`,
      expect: /^podium-ok$/,
      deniedErr: /Permission denied/,
      logged: (who) => `name="${s.writablePath}/probe-${who}"`,
    },
    { id: `cap-${s.capability.toLowerCase()}`, owner: s.key, what: `use ${s.capability} (${s.key}'s capability)`, ...CAPABILITY_PROBES[s.capability] },
  ];
}

export const NEED_PROBES: readonly NeedProbe[] = PAIR.flatMap(needProbes);

/** Where the guest finds each pair service's profile, and the op name of a probe run under it. */
export const pairProfileFile = (key: string): string => `profile.${key}`;
export const pairOp = (who: string, probe: string): string => `pair.${who}.${probe}`;

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `pair` maps each PAIR key to its profile's name; that profile's text is in pairProfileFile(key). */
export function guestScript(profile: string, pair: Readonly<Record<PairService['key'], string>>): string {
  const probes = [ATTR_PROBE, ...DENIED, ...ALLOWED, TCP_PROBE];
  const calls = (mode: string): string[] => probes.map((p) => `op ${mode} ${p.id} ${shellQuote(p.command)}`);
  const pairCalls = (who: string, profileName: string): string[] =>
    NEED_PROBES.map((p) => `pop ${who} ${shellQuote(profileName)} ${pairOp(who, p.id)} ${shellQuote(p.command)}`);
  // The denials to wait for in the kernel log: the first profile's last, and each pair profile's last.
  const awaited: Array<[string, string]> = [
    [profile, DENIED[DENIED.length - 1]!.logged],
    ...PAIR.map((s): [string, string] => {
      const last = NEED_PROBES.filter((p) => p.owner !== s.key).at(-1)!;
      return [pair[s.key], last.logged(s.key)];
    }),
  ];
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
    '# (f) Two services\' profiles whose needs differ. Their writable paths, on a tmpfs as Docker',
    '# would mount them (this root is read-only).',
    'mount -t tmpfs -o size=4m podium-srv /srv',
    ...PAIR.map((s) => `mkdir -p ${s.writablePath}`),
    ...PAIR.flatMap((s) => [
      `apparmor_parser -r ./${pairProfileFile(s.key)} >"$O/load.${s.key}.out" 2>&1`,
      `echo $? >"$O/load.${s.key}.rc"`,
    ]),
    'cat /sys/kernel/security/apparmor/profiles >"$O/profiles.pair" 2>&1',
    '',
    '# A read-only-root profile may not write the share: a descriptor on it would be revoked when',
    '# aa-exec enters the profile. So the probe writes /tmp, and the unconfined shell copies.',
    'mkdir -p /tmp/podium-ops',
    'pop() {',
    '  t="/tmp/podium-ops/$3"',
    '  f="$O/ops/$3"',
    '  if [ "$2" = unconfined ]; then',
    '    WHO=$1 /bin/sh -c "$4" >"$t.out" 2>"$t.err" </dev/null',
    '  else',
    '    WHO=$1 aa-exec -p "$2" -- /bin/sh -c "$4" >"$t.out" 2>"$t.err" </dev/null',
    '  fi',
    '  echo $? >"$f.rc"',
    '  cp "$t.out" "$f.out"',
    '  cp "$t.err" "$f.err"',
    '}',
    ...PAIR.flatMap((s) => pairCalls(s.key, pair[s.key])),
    ...pairCalls('unconfined', 'unconfined'),
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
    '# most in all) for the last probe\'s of each profile.',
    'denied() { dmesg | grep -F \'apparmor="DENIED"\' | grep -F "profile=\\"$1\\"" | grep -qF "$2"; }',
    'i=0',
    ...awaited.flatMap(([p, fragment]) => [
      `while [ $i -lt 50 ] && ! denied ${shellQuote(p)} ${shellQuote(fragment)}; do`,
      '  sleep 0.1',
      '  i=$((i + 1))',
      'done',
    ]),
    'dmesg >"$O/dmesg" 2>&1',
    'echo done >"$O/complete"',
    '',
  ].join('\n');
}
