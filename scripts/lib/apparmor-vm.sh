#!/usr/bin/env bash
# A small virtual machine whose kernel has AppArmor, for tests that must see a profile ENFORCED
# (this machine's own kernel has none; see DESIGN.md, "The machine").
#
#   scripts/lib/apparmor-vm.sh [CACHE_DIR]                  build the VM, idempotently
#   scripts/lib/apparmor-vm.sh CACHE_DIR boot SHARE_DIR     boot it once, run SHARE_DIR/run.sh
#
# CACHE_DIR defaults to /var/cache/podium/apparmor-vm. Building needs root (apt-get, debootstrap,
# mknod) and Debian's package mirror; it installs what it lacks (qemu-system-x86, debootstrap,
# e2fsprogs, kmod, cpio, xz-utils) and makes the pieces below, each skipped while its stamp file
# holds the same recipe string (change a recipe string below, or the init scripts, and that piece
# is rebuilt). A cold build takes about 40 s here; an up-to-date one returns at once.
#   kernel/     from Debian's linux-image-amd64: vmlinuz, the ELF vmlinux inside it (booted
#               through PVH, without the ~3 s the kernel's own decompressor takes under TCG), the
#               few modules the boot needs, and a static busybox from busybox-static
#   initrd.img  busybox + those modules + the two init scripts below (cheap: rebuilt on any change
#               to them, without touching the root filesystem)
#   rootfs.ext4 `debootstrap --variant=minbase --include=apparmor` (apparmor_parser, aa-exec),
#               trimmed, packed by `mkfs.ext4 -d` (~130 MB); mounted read-only, never modified
#
# Booting: qemu-system-x86_64 with TCG (software emulation; /dev/kvm here is a PVM backend that
# cannot run a stock kernel), `console=ttyS0 apparmor=1 security=apparmor`, guarded by `timeout`
# ($PODIUM_VM_TIMEOUT seconds, default 300). The initrd's /init mounts the root filesystem and
# switches to /podium/init (a tmpfs on the read-only root, also holding /podium/busybox for the
# tools minbase lacks), which mounts proc, sys, securityfs, devpts and tmpfs on /tmp and /run.
# SHARE_DIR is shared with the guest over virtio-9p, read-write, at /podium/share: the guest runs
# SHARE_DIR/run.sh as root, unconfined, with /bin/sh and the share as working directory, writes
# its output to SHARE_DIR/run.log and its exit status to SHARE_DIR/run.rc, and powers off. The
# serial console (this script's stdout) carries "PODIUM-VM: …" markers:
#   PODIUM-VM: BOOTED kernel=<release> apparmor=<Y|N|absent>
#   PODIUM-VM: RUN BEGIN / PODIUM-VM: RUN END rc=<n>
#   PODIUM-VM: FAIL <why>                  (the VM could not run the script)
#   PODIUM-VM: POWER OFF
# Exit status of `boot`: qemu's (0 after a power-off), 124 on timeout.
set -euo pipefail

CACHE="${1:-/var/cache/podium/apparmor-vm}"
ACTION="${2:-build}"

log() { printf '• apparmor-vm: %s\n' "$*" >&2; }
die() { printf 'apparmor-vm: ERROR: %s\n' "$*" >&2; exit 1; }

# Modules the guest loads from the initrd, their dependencies resolved from the kernel's own
# modules.dep: the virtio PCI transport, the root disk (virtio-blk, ext4) and the share (9p).
BOOT_MODULES="virtio_pci virtio_blk ext4 9pnet_virtio 9p"
KERNEL_RECIPE="kernel-2 linux-image-amd64 busybox-static modules=${BOOT_MODULES// /,} vmlinux-pvh"
ROOTFS_PACKAGES="apparmor"
# No journal (mounted read-only) and no metadata_csum (its crc32c is a module the kernel would
# have to request at mount time).
MKFS_FEATURES="^has_journal,^metadata_csum"
ROOTFS_RECIPE="rootfs-2 minbase include=${ROOTFS_PACKAGES} trim=doc,man,info,locale,apt-lists mkfs=${MKFS_FEATURES}"
INITRD_RECIPE="initrd-1"

# --------------------------------------------------------------------------------------------
# The two init scripts. Their text is part of the initrd stamp, so editing them rebuilds it.

# /init in the initrd (busybox sh): load the boot modules, mount the root filesystem read-only,
# a tmpfs on its /podium (holding the second init and busybox) and the 9p share on
# /podium/share, then switch_root into /podium/init.
initrd_init() {
  cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# A module that does not apply to this CPU (crc32c-intel without SSE4.2, a soft dependency of
# ext4) fails to load; the mounts below tell whether anything needed is missing.
while read -r m; do
  insmod "/modules/$m" 2>/dev/null || echo "$m" >>/insmod-failed
done </modules/order
fail() {
  echo "PODIUM-VM: FAIL (initrd) $* (modules that did not load: $(cat /insmod-failed 2>/dev/null))"
  echo "PODIUM-VM: POWER OFF"
  poweroff -f
  sleep 10
}
i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1))
  [ "$i" -le 200 ] || fail "no /dev/vda (root disk)"
  sleep 0.05
done
mount -t ext4 -o ro /dev/vda /newroot || fail "cannot mount /dev/vda"
[ -d /newroot/podium ] || fail "the root filesystem has no /podium"
mount -t tmpfs -o mode=0755,size=8m podium /newroot/podium || fail "tmpfs on /podium"
cp /podium-init /newroot/podium/init && cp /bin/busybox /newroot/podium/busybox \
  && chmod 0755 /newroot/podium/init /newroot/podium/busybox && mkdir /newroot/podium/share \
  || fail "cannot populate /podium"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none podium /newroot/podium/share \
  || fail "cannot mount the 9p share (tag podium)"
umount /proc /sys
mount --move /dev /newroot/dev || fail "cannot move /dev"
exec switch_root /newroot /podium/init
EOF
}

# /podium/init in the real root (Debian's /bin/sh): mount the kernel filesystems, securityfs
# included, run the share's run.sh and power off.
podium_init() {
  cat <<'EOF'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
bb=/podium/busybox
share=/podium/share
off() {
  sync
  echo "PODIUM-VM: POWER OFF"
  $bb poweroff -f
  echo o >/proc/sysrq-trigger
  sleep 10
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
$bb ifconfig lo 127.0.0.1 up
# Kernel audit lines (apparmor="DENIED" …) reach the log through printk_ratelimit(): a burst of
# 10 by default, after which lines are dropped. A test reads them, so none may be dropped.
echo 100000 >/proc/sys/kernel/printk_ratelimit_burst
hostname podium-vm 2>/dev/null || echo podium-vm >/proc/sys/kernel/hostname
echo "PODIUM-VM: BOOTED kernel=$(uname -r) apparmor=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo absent)"
if [ -f "$share/run.sh" ]; then
  echo "PODIUM-VM: RUN BEGIN"
  (cd "$share" && exec /bin/sh ./run.sh) >"$share/run.log" 2>&1 </dev/null
  rc=$?
  echo "$rc" >"$share/run.rc"
  cat "$share/run.log"
  echo "PODIUM-VM: RUN END rc=$rc"
else
  echo "PODIUM-VM: FAIL no run.sh in the share"
fi
off
EOF
}

# --------------------------------------------------------------------------------------------

# The stamps: the recipe strings above, and the Debian release the pieces come from.
kernel_recipe() { echo "$KERNEL_RECIPE $(suite)"; }
rootfs_recipe() { echo "$ROOTFS_RECIPE $(suite)"; }

stamp_ok() { [ -f "$CACHE/$1.stamp" ] && [ "$(cat "$CACHE/$1.stamp")" = "$2" ]; }

APT_UPDATED=""
apt_update_once() {
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}

# Host tools: installed from Debian when missing.
ensure_tools() {
  local need=() want="$1"
  command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
  if [ "$want" = build ]; then
    command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
    [ -x /usr/sbin/mkfs.ext4 ] || command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
    [ -x /usr/sbin/depmod ] || command -v depmod >/dev/null 2>&1 || need+=(kmod)
    command -v cpio >/dev/null 2>&1 || need+=(cpio)
    command -v wget >/dev/null 2>&1 || need+=(wget)
    command -v xz >/dev/null 2>&1 || need+=(xz-utils)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}, and only root can install them"
    apt_update_once
    log "installing Debian packages: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

suite() {
  local codename=""
  if [ -n "${PODIUM_VM_SUITE:-}" ]; then echo "$PODIUM_VM_SUITE"; return; fi
  # shellcheck disable=SC1091
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  [ -n "$codename" ] || die "cannot tell the Debian release from /etc/os-release (set PODIUM_VM_SUITE)"
  echo "$codename"
}

# The mirror apt uses for the main suite (the one reachable here), as debootstrap wants it.
mirror() {
  if [ -n "${PODIUM_VM_MIRROR:-}" ]; then echo "$PODIUM_VM_MIRROR"; return; fi
  local s uri
  s="$(suite)"
  # shellcheck disable=SC2016 # $(…) here is apt's format syntax, not the shell's
  uri="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER)' 2>/dev/null \
    | awk -v s="$s" '$2 == s && $3 == "Packages" { print $1; exit }')"
  echo "${uri:-http://deb.debian.org/debian/}"
}

# The ELF kernel inside a bzImage, which qemu boots directly through its PVH entry point
# (CONFIG_PVH): under emulation this saves the ~3 s the kernel's own decompressor takes. The
# payload's place is in the boot protocol header (setup_sects at 0x1f1, payload_offset at 0x248,
# payload_length at 0x24c). Leaves no file when the payload is not one this host can inflate;
# the boot then falls back to the bzImage.
extract_vmlinux() {
  local bz="$1" elf="$2" setup_sects offset length magic inflate=""
  setup_sects="$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')"
  [ "$setup_sects" != 0 ] || setup_sects=4
  offset="$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')"
  length="$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')"
  offset=$(((setup_sects + 1) * 512 + offset))
  magic="$(od -An -tx1 -j "$offset" -N4 "$bz" | tr -d ' ')"
  case "$magic" in
    fd377a58) inflate="xz -dc --single-stream" ;;
    1f8b*) inflate="gzip -dc" ;;
    28b52ffd) command -v zstd >/dev/null 2>&1 && inflate="zstd -dcq" ;;
  esac
  if [ -z "$inflate" ]; then
    log "kernel payload (magic $magic) not inflatable here: booting the bzImage (slower)"
    return 0
  fi
  tail -c +$((offset + 1)) "$bz" | head -c "$length" | $inflate >"$elf.tmp" 2>/dev/null || true
  if [ "$(od -An -c -N4 "$elf.tmp" 2>/dev/null | tr -d ' ')" = '177ELF' ]; then
    mv "$elf.tmp" "$elf"
  else
    rm -f "$elf.tmp"
    log "could not extract the ELF kernel: booting the bzImage (slower)"
  fi
}

# Step 1: the kernel, its boot modules (in load order) and a static busybox.
build_kernel() {
  if stamp_ok kernel "$(kernel_recipe)" && [ -f "$CACHE/kernel/vmlinuz" ]; then return; fi
  local t0=$SECONDS work image ver mod line
  work="$(mktemp -d "$CACHE/tmp.kernel.XXXXXX")"
  apt_update_once
  image="$( (apt-cache depends linux-image-amd64 2>/dev/null || true) | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
  [ -n "$image" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends)"
  log "downloading $image and busybox-static"
  (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$image" busybox-static)
  dpkg-deb -x "$work/${image}_"*.deb "$work/k"
  dpkg-deb -x "$work/busybox-static_"*.deb "$work/bb"
  ver="${image#linux-image-}"
  [ -d "$work/k/lib/modules/$ver" ] || die "$image has no lib/modules/$ver"
  depmod -b "$work/k" "$ver"
  mkdir -p "$work/out/modules"
  cp "$work/k/boot/vmlinuz-$ver" "$work/out/vmlinuz"
  extract_vmlinux "$work/out/vmlinuz" "$work/out/vmlinux"
  cp "$work/bb/bin/busybox" "$work/out/busybox"
  echo "$ver" >"$work/out/release"
  : >"$work/out/modules/order"
  for mod in $BOOT_MODULES; do
    modprobe -d "$work/k" -S "$ver" --show-depends "$mod" >"$work/deps" \
      || die "modprobe cannot resolve module $mod of $ver"
    while read -r line; do
      case "$line" in
        insmod\ *)
          line="${line#insmod }"
          line="${line%% *}"
          line="$(basename "$line")"
          grep -qxF "$line" "$work/out/modules/order" && continue
          cp "$(find "$work/k/lib/modules/$ver" -name "$line" -print -quit)" "$work/out/modules/$line"
          echo "$line" >>"$work/out/modules/order"
          ;;
      esac
    done <"$work/deps"
  done
  rm -rf "$CACHE/kernel"
  mv "$work/out" "$CACHE/kernel"
  rm -rf "$work"
  kernel_recipe >"$CACHE/kernel.stamp"
  log "kernel $ver with modules $(tr '\n' ' ' <"$CACHE/kernel/modules/order")($((SECONDS - t0)) s)"
}

initrd_recipe() {
  printf '%s %s %s %s\n' "$INITRD_RECIPE" "$(cat "$CACHE/kernel.stamp")" "$(cat "$CACHE/kernel/release" 2>/dev/null)" \
    "$( { initrd_init; podium_init; } | sha256sum | cut -c1-16)"
}

# Step 2: the initrd (a few MB, uncompressed: nothing to inflate under emulation).
build_initrd() {
  local want work
  want="$(initrd_recipe)"
  if stamp_ok initrd "$want" && [ -f "$CACHE/initrd.img" ]; then return; fi
  work="$(mktemp -d "$CACHE/tmp.initrd.XXXXXX")"
  mkdir -p "$work/root/"{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,newroot,modules}
  cp "$CACHE/kernel/busybox" "$work/root/bin/busybox"
  cp "$CACHE/kernel/modules/"* "$work/root/modules/"
  initrd_init >"$work/root/init"
  podium_init >"$work/root/podium-init"
  chmod 0755 "$work/root/bin/busybox" "$work/root/init" "$work/root/podium-init"
  mknod -m 0600 "$work/root/dev/console" c 5 1
  (cd "$work/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$work/initrd.img"
  mv "$work/initrd.img" "$CACHE/initrd.img"
  rm -rf "$work"
  echo "$want" >"$CACHE/initrd.stamp"
  log "initrd $(du -h "$CACHE/initrd.img" | cut -f1)"
}

# Step 3: the root filesystem image.
build_rootfs() {
  if stamp_ok rootfs "$(rootfs_recipe)" && [ -f "$CACHE/rootfs.ext4" ]; then return; fi
  local t0=$SECONDS work s m size_mb
  work="$(mktemp -d "$CACHE/tmp.rootfs.XXXXXX")"
  s="$(suite)"
  m="$(mirror)"
  log "debootstrap --variant=minbase --include=$ROOTFS_PACKAGES $s $m"
  # dpkg in the chroot without fsync (as mmdebstrap does): the tree is packed and thrown away.
  mkdir -p "$work/root/etc/dpkg/dpkg.cfg.d"
  echo force-unsafe-io >"$work/root/etc/dpkg/dpkg.cfg.d/podium-unsafe-io"
  debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" --components=main "$s" "$work/root" "$m" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    [ -f "$work/root/debootstrap/debootstrap.log" ] && tail -n 30 "$work/root/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
  }
  [ -x "$work/root/sbin/apparmor_parser" ] || [ -x "$work/root/usr/sbin/apparmor_parser" ] || die "no apparmor_parser in the root filesystem"
  [ -x "$work/root/usr/bin/aa-exec" ] || die "no aa-exec in the root filesystem"
  # Trim what no test reads, then pack.
  rm -rf "$work/root/etc/dpkg/dpkg.cfg.d/podium-unsafe-io" \
    "$work/root/usr/share/"{doc,man,info,locale,lintian}/* "$work/root/var/cache/apt/"* \
    "$work/root/var/lib/apt/lists/"* "$work/root/var/log/"*
  mkdir -p "$work/root/podium"
  size_mb=$(($(du -sm "$work/root" | cut -f1) * 115 / 100 + 32))
  mkfs.ext4 -q -F -L podium-root -m 0 -O "$MKFS_FEATURES" -E root_owner=0:0 -d "$work/root" \
    "$work/rootfs.ext4" "${size_mb}M" >/dev/null
  mv "$work/rootfs.ext4" "$CACHE/rootfs.ext4"
  rm -rf "$work"
  rootfs_recipe >"$CACHE/rootfs.stamp"
  log "rootfs.ext4 ${size_mb} MB ($((SECONDS - t0)) s)"
}

build() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 3600 9 || die "another build holds $CACHE/.lock"
  # Fast path: nothing to do, no tool needed but qemu.
  if stamp_ok kernel "$(kernel_recipe)" && stamp_ok rootfs "$(rootfs_recipe)" && [ -f "$CACHE/initrd.img" ] \
    && [ -f "$CACHE/rootfs.ext4" ] && [ -f "$CACHE/kernel/vmlinuz" ] && stamp_ok initrd "$(initrd_recipe)"; then
    ensure_tools boot
    log "up to date in $CACHE"
    return
  fi
  [ "$(id -u)" = 0 ] || die "building the VM needs root (apt-get, debootstrap, mknod)"
  rm -rf "$CACHE"/tmp.*
  ensure_tools build
  # Fresh package lists: the kernel's name and the mirror (apt-get indextargets) come from them.
  apt_update_once
  # The root filesystem (debootstrap, the longest step) builds alongside the kernel and initrd,
  # in a process group of its own (set -m) so that a failure here can stop all of it.
  local t0=$SECONDS
  set -m
  build_rootfs &
  ROOTFS_PID=$!
  set +m
  trap 'kill -TERM -- "-$ROOTFS_PID" 2>/dev/null || true' EXIT
  build_kernel
  build_initrd
  wait "$ROOTFS_PID" || die "the root filesystem could not be built"
  trap - EXIT
  log "built in $CACHE ($((SECONDS - t0)) s)"
}

boot() {
  local share="${1:-}" timeout="${PODIUM_VM_TIMEOUT:-300}"
  if [ -z "$share" ] || [ ! -d "$share" ]; then die "usage: $0 CACHE_DIR boot SHARE_DIR (an existing directory)"; fi
  share="$(cd "$share" && pwd)"
  for f in kernel/vmlinuz initrd.img rootfs.ext4; do
    [ -f "$CACHE/$f" ] || die "$CACHE/$f is missing: build first ($0 $CACHE)"
  done
  command -v qemu-system-x86_64 >/dev/null 2>&1 || die "qemu-system-x86_64 is missing: build first ($0 $CACHE)"
  # A shared lock for as long as qemu runs (it inherits fd 9): a concurrent build waits for it
  # instead of swapping the kernel under a booting VM.
  if [ -f "$CACHE/.lock" ]; then
    exec 9<"$CACHE/.lock"
    flock -s -w 3600 9 || die "a build holds $CACHE/.lock"
  fi
  local kernel="$CACHE/kernel/vmlinuz"
  [ -f "$CACHE/kernel/vmlinux" ] && kernel="$CACHE/kernel/vmlinux"
  # One vCPU: under TCG a second one makes the boot slower here, not faster.
  exec timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
    -accel tcg -m 512 -smp 1 -nographic -no-reboot -nodefaults -serial stdio -monitor none \
    -kernel "$kernel" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0 apparmor=1 security=apparmor panic=-1 quiet" \
    -drive "file=$CACHE/rootfs.ext4,format=raw,if=virtio,readonly=on" \
    -virtfs "local,path=$share,mount_tag=podium,security_model=none,id=podium" \
    </dev/null
}

case "$ACTION" in
  build) build ;;
  boot) boot "${3:-}" ;;
  *) die "unknown action $ACTION (build or boot)" ;;
esac
