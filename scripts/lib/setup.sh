# Sourced by scripts/dev and scripts/test: installs what Podium needs on a fresh Debian machine with
# Node 20, idempotently (Debian's docker.io, busybox-static, apparmor, iproute2, curl; for the test
# bed of scripts/lib/testbed.sh also util-linux's nsenter, flock and setsid, iptables and tcpdump;
# PostgreSQL's server binaries; the npm packages), makes sure a Docker engine answers, and builds.
# Safe to run again and again.
# Sets PODIUM_STARTED_DOCKERD to the pid of a dockerd it started (empty when one was running).

log() { printf '• %s\n' "$*"; }

docker_answers() {
  [ "$(timeout 3 curl -fsS --unix-socket /var/run/docker.sock http://localhost/_ping 2>/dev/null)" = OK ]
}

podium_setup() {
  local need_pkgs=()
  command -v curl >/dev/null 2>&1 || need_pkgs+=(curl ca-certificates)
  command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
  dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
  command -v apparmor_parser >/dev/null 2>&1 || need_pkgs+=(apparmor)
  { command -v ip && command -v ss; } >/dev/null 2>&1 || need_pkgs+=(iproute2)
  # The test bed: namespaces entered with nsenter, its script's lock (flock), engines detached with
  # setsid, and the root namespace's FORWARD rule for traffic between its hosts.
  { command -v nsenter && command -v flock && command -v setsid; } >/dev/null 2>&1 || need_pkgs+=(util-linux)
  command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)
  # The mesh's end-to-end test captures the traffic between the test bed's hosts.
  command -v tcpdump >/dev/null 2>&1 || need_pkgs+=(tcpdump)
  # PostgreSQL's server binaries: the tests (and podium dev --postgres) start throwaway clusters of
  # their own with initdb and pg_ctl, on free loopback ports.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
  if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages do not start services here (Debian's policy-rc.d convention): the postgresql package
    # would otherwise create and start a cluster of its own on port 5432, which nothing uses.
    local policy_made=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_made=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    [ -z "$policy_made" ] || rm -f /usr/sbin/policy-rc.d
  fi

  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
  fi

  PODIUM_STARTED_DOCKERD=""
  if ! docker_answers; then
    log "starting dockerd (log: /var/log/podium-dockerd.log)"
    nohup dockerd >/var/log/podium-dockerd.log 2>&1 &
    PODIUM_STARTED_DOCKERD=$!
    for _ in $(seq 1 120); do docker_answers && break; sleep 0.5; done
    docker_answers || { echo "dockerd did not come up; see /var/log/podium-dockerd.log" >&2; return 1; }
  fi

  log "building (buf generate + tsc)"
  rm -rf dist
  npm run --silent build
}
