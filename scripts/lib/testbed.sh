#!/usr/bin/env bash
# The test bed of DESIGN.md ("The machine"): several real hosts on one machine. Each host is a
# network namespace with a veth to a Linux bridge in the root namespace and its OWN dockerd (and
# the containerd that dockerd starts under its exec-root), so that what crosses hosts (agents
# reaching the Pod API, the mTLS proxy, partitions, host loss) crosses a real network.
#
#   scripts/lib/testbed.sh up <name> <N> [--subnet A.B.C.0/24|auto] [--owner PID]
#   scripts/lib/testbed.sh down <name>
#   scripts/lib/testbed.sh status <name>      exit 0 when every engine answers, 3 when there is
#                                             no such test bed, 4 when it is partly there
#   scripts/lib/testbed.sh hosts <name>       the host table (below) of a test bed that is up
#   scripts/lib/testbed.sh sweep              down every test bed whose --owner process is gone,
#                                             and anything named ptb-* that no test bed owns
#
# <name>: 1 to 8 characters [a-z0-9]. Everything a test bed makes carries it:
#   bridge          ptb-<name>            in the root namespace, address A.B.C.1/24
#   host i (1..N)   <name>-<i>            namespace ptb-<name>-<i>, its end of the veth is eth0
#                                         with A.B.C.(10+i)/24 (so .11, .12, …), the root end is
#                                         ptb-<name>-<i>; lo up; default route via A.B.C.1
#   its dockerd     nsenter --net=/var/run/netns/ptb-<name>-<i> dockerd …  (not `ip netns exec`,
#                                         which remounts /sys and hides the cgroups), with
#                                         --data-root  /var/lib/podium-testbed/<name>/<i>
#                                         --exec-root  /run/podium-testbed/<name>/<i>/exec
#                                         -H unix://   /run/podium-testbed/<name>/<i>/docker.sock
#                                         --pidfile    /run/podium-testbed/<name>/<i>/dockerd.pid
#                                         --bip 172.30.<i>.1/24 (away from the root engine's
#                                         172.17/16 and the agents' pool 10.210.0.0/16; two test
#                                         beds may use the same, each in its own namespaces)
#                                         --cgroup-parent /ptb-<name>-<i>
#                                         log: /run/podium-testbed/<name>/<i>/dockerd.log
#   iptables        one FORWARD rule in the root namespace, comment podium-testbed-<name>
#
# The subnet defaults to 10.77.0.0/24 (also $PODIUM_TESTBED_SUBNET); `--subnet auto` takes the
# first of 10.77.1.0/24 … 10.77.254.0/24 that no route and no other test bed uses, so that test
# runs never take the by-hand default and any number of test beds can coexist.
#
# `up` is idempotent: a test bed that is already up with the same N (and subnet, when one is
# given) is left as it is; anything else of that name (an earlier run that crashed or was killed)
# is torn down first. It waits until every engine answers /_ping, then prints the host table:
#   <host> <namespace> <address> <docker socket> <bip>      one line per host
# (also kept in /run/podium-testbed/<name>/hosts), and the bridge address in
# /run/podium-testbed/<name>/testbed.env (BRIDGE_ADDRESS=…).
# `down` kills every process in the host namespaces and the containers' cgroups (dockerd gets
# SIGTERM first), and those registered in /run/podium-testbed/<name>/procs ("<pid> <start time>"
# lines: what a user started in the root namespace for this test bed, a Pod API say); then it
# unmounts what the engines mounted, deletes the namespaces, veths, bridge and iptables rule, and
# removes the data directories: nothing is left, whether or not the processes were still alive. `--owner PID` records who the test bed is for; `sweep` removes it once that
# process (the same pid AND start time) is gone, which is how a killed test run is cleaned up.
# All verbs hold one lock (/run/podium-testbed.lock), so concurrent runs never pick one subnet.
# Logs go to stderr; stdout carries only the host table and `status`.
set -euo pipefail

RUN_ROOT=/run/podium-testbed
DATA_ROOT=/var/lib/podium-testbed
LOCK=/run/podium-testbed.lock
DEFAULT_SUBNET="${PODIUM_TESTBED_SUBNET:-10.77.0.0/24}"
MAX_HOSTS=20
PING_TIMEOUT_S=120

NAME=""
log() { printf '• testbed %s: %s\n' "${NAME:-*}" "$*" >&2; }
die() { printf 'testbed %s: ERROR: %s\n' "${NAME:-*}" "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

need_root_tools() {
  [ "$(id -u)" = 0 ] || die "must run as root (namespaces, bridges, dockerd)"
  local t
  for t in ip nsenter setsid iptables dockerd curl flock sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "missing $t (scripts/lib/setup.sh installs it)"
  done
}

check_name() {
  [[ "$1" =~ ^[a-z0-9]{1,8}$ ]] || die "test bed name '$1': 1 to 8 characters of [a-z0-9] (interface names hold 15)"
}

lock() {
  exec 9>"$LOCK"
  flock -w 600 9 || die "another testbed.sh holds $LOCK for 10 minutes"
}

# ---- names ---------------------------------------------------------------------------------
bridge() { echo "ptb-$NAME"; }
netns() { echo "ptb-$NAME-$1"; }
veth() { echo "ptb-$NAME-$1"; }
cgroup_parent() { echo "ptb-$NAME-$1"; }
run_dir() { echo "$RUN_ROOT/$NAME${1:+/$1}"; }
data_dir() { echo "$DATA_ROOT/$NAME${1:+/$1}"; }
rule_comment() { echo "podium-testbed-$NAME"; }
prefix_of() { echo "${1%.0/24}"; }

# The host indexes something of this test bed exists for: namespaces, directories, veths.
host_indexes() {
  {
    ip netns list 2>/dev/null | awk '{ print $1 }' | sed -n "s/^ptb-$NAME-\([0-9]\{1,\}\)$/\1/p"
    ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | sed -e 's/@.*//' | sed -n "s/^ptb-$NAME-\([0-9]\{1,\}\)$/\1/p"
    for d in "$(run_dir)"/* "$(data_dir)"/*; do
      if [ -d "$d" ]; then basename "$d" | grep -E '^[0-9]+$' || true; fi
    done
  } | sort -un
}

exists() {
  [ -e "$(run_dir)" ] || [ -e "$(data_dir)" ] || ip link show "$(bridge)" >/dev/null 2>&1 || [ -n "$(host_indexes)" ]
}

engine_answers() {
  [ "$(curl -fsS --max-time 3 --unix-socket "$1" http://localhost/_ping 2>/dev/null)" = OK ]
}

# Prints the value of KEY in the test bed's env file (empty when absent).
env_get() {
  local f
  f="$(run_dir)/testbed.env"
  if [ -f "$f" ]; then sed -n "s/^$1=//p" "$f" | head -n1; fi
}

alive_pid() { [ -n "$1" ] && [ -d "/proc/$1" ]; }

# Field 22 of /proc/PID/stat (the start time in clock ticks), read after the last ')' because
# the command name may hold spaces and parentheses.
start_time() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  awk '{ print $20 }' <<<"$stat"
}

# ---- up ------------------------------------------------------------------------------------
subnet_in_use() {
  local subnet="$1" f
  [ -n "$(ip -4 route show "$subnet" 2>/dev/null)" ] && return 0
  ip -4 route show to match "$(prefix_of "$subnet").1" 2>/dev/null | grep -vq '^default' && return 0
  for f in "$RUN_ROOT"/*/testbed.env; do
    [ -f "$f" ] || continue
    [ "$(dirname "$f")" = "$(run_dir)" ] && continue
    grep -qxF "SUBNET=$subnet" "$f" && return 0
  done
  return 1
}

pick_subnet() {
  local k
  for k in $(seq 1 254); do
    subnet_in_use "10.77.$k.0/24" || { echo "10.77.$k.0/24"; return; }
  done
  die "no free subnet in 10.77.1.0/24 … 10.77.254.0/24"
}

healthy() {
  local n="$1" i
  [ -f "$(run_dir)/hosts" ] && [ "$(env_get N)" = "$n" ] || return 1
  for i in $(seq 1 "$n"); do
    [ -e "/var/run/netns/$(netns "$i")" ] || return 1
    alive_pid "$(cat "$(run_dir "$i")/dockerd.pid" 2>/dev/null)" || return 1
    engine_answers "$(run_dir "$i")/docker.sock" || return 1
  done
}

start_dockerd() {
  local i="$1" rd dd
  rd="$(run_dir "$i")"
  dd="$(data_dir "$i")"
  mkdir -p "$rd/exec" "$dd"
  # Its own (empty) config file, so that /etc/docker/daemon.json cannot add a second -H or pool.
  echo '{}' >"$rd/daemon.json"
  log "host $NAME-$i: dockerd in $(netns "$i") (log $rd/dockerd.log)"
  # setsid: the engine outlives this script and is not in the caller's process group (a Ctrl-C
  # of a test run must not kill it half-way; `down` or `sweep` stops it).
  nsenter --net="/var/run/netns/$(netns "$i")" -- setsid dockerd \
    --config-file "$rd/daemon.json" \
    --data-root "$dd" \
    --exec-root "$rd/exec" \
    -H "unix://$rd/docker.sock" \
    --pidfile "$rd/dockerd.pid" \
    --bip "172.30.$i.1/24" \
    --cgroup-parent "/$(cgroup_parent "$i")" \
    --storage-driver overlay2 \
    </dev/null >>"$rd/dockerd.log" 2>&1 9>&- &
}

add_host() {
  local i="$1" prefix="$2" ns v
  ns="$(netns "$i")"
  v="$(veth "$i")"
  log "host $NAME-$i: namespace $ns, $prefix.$((10 + i)) on eth0 ↔ $v"
  ip netns add "$ns"
  ip link add "$v" type veth peer name eth0 netns "$ns"
  ip link set "$v" master "$(bridge)" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$prefix.$((10 + i))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$prefix.1"
}

cmd_up() {
  local n="$1" subnet="$2" owner="$3" prefix i rd waited
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$MAX_HOSTS" ]; then die "N must be 1 to $MAX_HOSTS"; fi
  # Up already, with what was asked (no subnet or "auto" accept the one it has): leave it.
  if healthy "$n" && { [ -z "$subnet" ] || [ "$subnet" = auto ] || [ "$(env_get SUBNET)" = "$subnet" ]; }; then
    log "already up ($n hosts on $(env_get SUBNET))"
    [ -z "$owner" ] || set_owner "$owner"
    cat "$(run_dir)/hosts"
    return
  fi
  if exists; then
    log "removing what an earlier run of this test bed left"
    teardown
  fi
  [ -n "$subnet" ] || subnet="$DEFAULT_SUBNET"
  [ "$subnet" != auto ] || subnet="$(pick_subnet)"
  [[ "$subnet" =~ ^([0-9]{1,3}\.){3}0/24$ ]] || die "subnet '$subnet': give a /24 as A.B.C.0/24"
  ! subnet_in_use "$subnet" || die "subnet $subnet is in use (a route or another test bed has it): pick another with --subnet"
  prefix="$(prefix_of "$subnet")"

  # The env file first: from here on, `down` and `sweep` know this test bed even if `up` dies.
  mkdir -p "$(run_dir)" "$(data_dir)"
  printf 'NAME=%s\nN=%s\nSUBNET=%s\nBRIDGE=%s\nBRIDGE_ADDRESS=%s\n' \
    "$NAME" "$n" "$subnet" "$(bridge)" "$prefix.1" >"$(run_dir)/testbed.env"
  [ -z "$owner" ] || set_owner "$owner"

  log "bridge $(bridge) $prefix.1/24"
  ip link add "$(bridge)" type bridge
  ip addr add "$prefix.1/24" dev "$(bridge)"
  ip link set "$(bridge)" up
  # Docker loads br_netfilter, so frames bridged from one host to another traverse the root
  # namespace's FORWARD chain, whose policy the root engine sets to DROP: let ours through.
  iptables -w -I FORWARD 1 -i "$(bridge)" -o "$(bridge)" -m comment --comment "$(rule_comment)" -j ACCEPT

  for i in $(seq 1 "$n"); do add_host "$i" "$prefix"; done
  for i in $(seq 1 "$n"); do start_dockerd "$i"; done

  : >"$(run_dir)/hosts.tmp"
  for i in $(seq 1 "$n"); do
    rd="$(run_dir "$i")"
    waited=0
    until engine_answers "$rd/docker.sock"; do
      if [ "$waited" -ge $((PING_TIMEOUT_S * 2)) ]; then
        tail -n 20 "$rd/dockerd.log" >&2 || true
        die "the engine of host $NAME-$i did not answer /_ping within ${PING_TIMEOUT_S} s (log above)"
      fi
      sleep 0.5
      waited=$((waited + 1))
    done
    # Its own containerd, not a system one at /run/containerd/containerd.sock (which dockerd would
    # prefer): the engines must not share containers through it.
    [ -S "$rd/exec/containerd/containerd.sock" ] || die "host $NAME-$i: dockerd did not start its own containerd under $rd/exec"
    printf '%s %s %s %s %s\n' "$NAME-$i" "$(netns "$i")" "$prefix.$((10 + i))" "$rd/docker.sock" "172.30.$i.1/24" >>"$(run_dir)/hosts.tmp"
  done
  mv "$(run_dir)/hosts.tmp" "$(run_dir)/hosts"
  log "up: $n hosts on $subnet, engines answer"
  cat "$(run_dir)/hosts"
}

set_owner() {
  local owner="$1" st f
  alive_pid "$owner" || die "--owner $owner: no such process"
  st="$(start_time "$owner")"
  f="$(run_dir)/testbed.env"
  sed -i -e '/^OWNER=/d' -e '/^OWNER_START=/d' "$f"
  printf 'OWNER=%s\nOWNER_START=%s\n' "$owner" "$st" >>"$f"
}

# ---- down ----------------------------------------------------------------------------------
# Pids of the processes in the containers' cgroups of host i, in every cgroup v1 hierarchy (and
# the unified one, where it exists).
cgroup_pids() {
  local cg
  cg="$(cgroup_parent "$1")"
  find /sys/fs/cgroup -maxdepth 2 -type d -name "$cg" 2>/dev/null | while read -r d; do
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -un
}

netns_pids() {
  [ -e "/var/run/netns/$(netns "$1")" ] || return 0
  ip netns pids "$(netns "$1")" 2>/dev/null || true
}

kill_pids() {
  local sig="$1" p
  shift
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null || true; done
}

# Waits up to $2 tenths of a second for the pids printed by command $1 (and host $3) to be gone.
wait_gone() {
  local what="$1" tenths="$2" i="$3" k
  for k in $(seq 1 "$tenths"); do
    [ -z "$($what "$i")" ] && return 0
    sleep 0.1
  done
  [ -z "$($what "$i")" ]
}

stop_host() {
  local i="$1" rd pid k
  rd="$(run_dir "$i")"
  # The containers first, so that dockerd's own shutdown has nothing left to wait for.
  # shellcheck disable=SC2046 # one pid per word
  kill_pids KILL $(cgroup_pids "$i")
  wait_gone cgroup_pids 50 "$i" || true
  pid="$(cat "$rd/dockerd.pid" 2>/dev/null || true)"
  # Not `| grep -q`: under pipefail, grep leaving at the first match can kill the writer with
  # SIGPIPE and fail the pipeline even though it matched.
  if alive_pid "$pid" && netns_pids "$i" | grep -x "$pid" >/dev/null; then
    log "host $NAME-$i: stopping dockerd ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for k in $(seq 1 150); do alive_pid "$pid" || break; sleep 0.1; done
  fi
  # Whatever is left in the namespace (containerd, shims, docker-proxy, an agent a test started):
  # SIGTERM, then SIGKILL until it is empty.
  # shellcheck disable=SC2046
  kill_pids TERM $(netns_pids "$i")
  wait_gone netns_pids 30 "$i" || true
  for k in $(seq 1 20); do
    [ -z "$(netns_pids "$i")$(cgroup_pids "$i")" ] && break
    # shellcheck disable=SC2046
    kill_pids KILL $(netns_pids "$i") $(cgroup_pids "$i")
    sleep 0.2
  done
  [ -z "$(netns_pids "$i")$(cgroup_pids "$i")" ] || die "host $NAME-$i: processes survive SIGKILL: $(netns_pids "$i") $(cgroup_pids "$i")"
  remove_shim_sockets "$i"
}

# A containerd shim killed with its containerd leaves its socket in /run/containerd/s/, named by
# sha256("<containerd address>/moby/<container id>"): remove the ones of this host's containers.
remove_shim_sockets() {
  local i="$1" addr d h
  addr="$(run_dir "$i")/exec/containerd/containerd.sock"
  [ -d /run/containerd/s ] || return 0
  for d in "$(data_dir "$i")"/containers/*; do
    [ -d "$d" ] || continue
    h="$(printf '%s' "$addr/moby/$(basename "$d")" | sha256sum | awk '{ print $1 }')"
    [ ! -e "/run/containerd/s/$h" ] || rm -f "/run/containerd/s/$h"
  done
}

# Unmounts every mount below the test bed's directories, deepest first.
unmount_below() {
  local m
  awk '{ print $5 }' /proc/self/mountinfo | { grep -E "^($(run_dir)|$(data_dir))(/|$)" || true; } | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- |
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done
}

remove_cgroups() {
  local i="$1" cg
  cg="$(cgroup_parent "$i")"
  find /sys/fs/cgroup -maxdepth 2 -type d -name "$cg" 2>/dev/null | while read -r d; do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ ! -d "$d" ] || log "cannot remove cgroup $d"
  done
}

# The processes a user of the test bed registered in its procs file ("<pid> <start time>" a line,
# see cli/testbed.ts): the ones in the root namespace (a Pod API on the bridge address), which no
# host namespace holds. Only those whose start time still matches: a reused pid is someone else.
registered_pids() {
  local f p st
  f="$(run_dir)/procs"
  [ -f "$f" ] || return 0
  while read -r p st; do
    if alive_pid "$p" && [ "$(start_time "$p")" = "$st" ]; then echo "$p"; fi
  done <"$f"
}

stop_registered() {
  local k
  [ -n "$(registered_pids)" ] || return 0
  log "stopping the processes registered for it: $(registered_pids | tr '\n' ' ')"
  # shellcheck disable=SC2046
  kill_pids TERM $(registered_pids)
  for k in $(seq 1 50); do [ -z "$(registered_pids)" ] && return 0; sleep 0.1; done
  # shellcheck disable=SC2046
  kill_pids KILL $(registered_pids)
}

# Whether this test bed's FORWARD rule is there. The listing is read whole first: piped into
# `grep -q` under pipefail, a long chain (Docker adds a rule per network) let grep leave at the
# match while iptables still wrote, and the SIGPIPE made "found" read as "not found".
has_rule() {
  local rules
  rules=$(iptables -w -S FORWARD 2>/dev/null) || return 1
  grep -q -- "--comment $(rule_comment) " <<<"$rules"
}

teardown() {
  local i ns p fail=0 stoppers=()
  stop_registered
  # The hosts in parallel: each dockerd takes a few seconds to shut down.
  for i in $(host_indexes); do
    stop_host "$i" &
    stoppers+=("$!")
  done
  for p in "${stoppers[@]}"; do wait "$p" || fail=1; done
  [ "$fail" = 0 ] || die "could not stop every host (see above); run down again once that is fixed"
  unmount_below
  for i in $(host_indexes); do
    ns="$(netns "$i")"
    if [ -e "/var/run/netns/$ns" ]; then
      log "host $NAME-$i: deleting namespace $ns"
      ip netns del "$ns"
    fi
    # Deleting the namespace destroys the veth pair, but asynchronously: it may vanish between a
    # look and a delete.
    ip link del "$(veth "$i")" 2>/dev/null || ! ip link show "$(veth "$i")" >/dev/null 2>&1 || die "cannot delete $(veth "$i")"
    remove_cgroups "$i"
  done
  if ip link show "$(bridge)" >/dev/null 2>&1; then
    log "deleting bridge $(bridge)"
    ip link del "$(bridge)"
  fi
  while has_rule; do
    iptables -w -S FORWARD | grep -- "--comment $(rule_comment) " | head -n1 | sed 's/^-A /-D /' | xargs iptables -w
  done
  unmount_below
  rm -rf "$(data_dir)" "$(run_dir)"
  # The roots go with the last test bed (the lock file stays: removing a lock others may be
  # waiting on would let two runs hold "it" at once).
  rmdir "$DATA_ROOT" "$RUN_ROOT" 2>/dev/null || true
  log "down: nothing left"
}

cmd_down() {
  if ! exists && ! has_rule; then
    log "not up: nothing to do"
    return
  fi
  teardown
}

# ---- status, hosts, sweep ------------------------------------------------------------------
cmd_status() {
  local n i rd st all=0 some=0
  if ! exists; then
    echo "$NAME: absent"
    return 3
  fi
  n="$(env_get N)"
  echo "$NAME: subnet $(env_get SUBNET), bridge $(bridge) $(env_get BRIDGE_ADDRESS), ${n:-?} hosts, $( [ -n "$(env_get OWNER)" ] && echo "owner pid $(env_get OWNER)" || echo "no owner (kept until down)")"
  for i in $(seq 1 "${n:-0}"); do
    rd="$(run_dir "$i")"
    if engine_answers "$rd/docker.sock"; then st=up; some=1; else st=down; all=1; fi
    echo "  $NAME-$i namespace $(netns "$i") $( [ -e "/var/run/netns/$(netns "$i")" ] && echo present || echo absent) socket $rd/docker.sock engine $st"
  done
  [ -n "$n" ] && [ "$all" = 0 ] && [ "$some" = 1 ] && return 0
  return 4
}

cmd_hosts() {
  [ -f "$(run_dir)/hosts" ] || die "not up (no $(run_dir)/hosts)"
  cat "$(run_dir)/hosts"
}

cmd_sweep() {
  local f owner st names n
  names="$(
    for f in "$RUN_ROOT"/*/testbed.env; do [ -f "$f" ] && basename "$(dirname "$f")"; done
    ip netns list 2>/dev/null | awk '{ print $1 }' | sed -n 's/^ptb-\([a-z0-9]\{1,8\}\)-[0-9]\{1,\}$/\1/p'
    ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | sed -e 's/@.*//' | sed -n 's/^ptb-\([a-z0-9]\{1,8\}\)\(-[0-9]\{1,\}\)\{0,1\}$/\1/p'
  )"
  for n in $(echo "$names" | sort -u); do
    [[ "$n" =~ ^[a-z0-9]{1,8}$ ]] || continue
    NAME="$n"
    f="$(run_dir)/testbed.env"
    if [ -f "$f" ]; then
      owner="$(env_get OWNER)"
      [ -n "$owner" ] || continue # made by hand (or by podium dev): not sweep's to remove
      st="$(env_get OWNER_START)"
      if alive_pid "$owner" && [ "$(start_time "$owner")" = "$st" ]; then continue; fi
      log "its owner $owner is gone: removing it"
    else
      log "left without its env file (a crashed up or down): removing it"
    fi
    teardown
  done
  NAME=""
}

# ---- main ----------------------------------------------------------------------------------
[ $# -ge 1 ] || usage
VERB="$1"
shift
case "$VERB" in
  up)
    [ $# -ge 2 ] || usage
    NAME="$1"
    N="$2"
    shift 2
    SUBNET="" OWNER=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --subnet) SUBNET="${2:?--subnet needs a value}"; shift 2 ;;
        --owner) OWNER="${2:?--owner needs a pid}"; shift 2 ;;
        *) usage ;;
      esac
    done
    check_name "$NAME"
    need_root_tools
    lock
    cmd_up "$N" "$SUBNET" "$OWNER"
    ;;
  down | status | hosts)
    [ $# -eq 1 ] || usage
    NAME="$1"
    check_name "$NAME"
    need_root_tools
    lock
    "cmd_$VERB"
    ;;
  sweep)
    [ $# -eq 0 ] || usage
    need_root_tools
    lock
    cmd_sweep
    ;;
  *) usage ;;
esac
