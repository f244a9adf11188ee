#!/usr/bin/env bash
# Builds Phoenix's demo golden image from Debian 12 packages into OUT_DIR:
#   vmlinux vmlinuz initrd.img disk.qcow2 rootfs/ manifest.env   (see images/README.md)
#
#   images/demo/build.sh OUT_DIR
#
# Environment:
#   PHOENIX_CACHE_DIR       download/extraction cache (default <repo>/.cache, git-ignored)
#   PHOENIX_KERNEL_PACKAGE  kernel package (default: what linux-image-amd64 depends on)
#   SOURCE_DATE_EPOCH       the fixed mtime stamped into the archives (default 2024-01-01)
#
# Idempotent: a rebuild is skipped when OUT_DIR already holds every artifact built from the same
# recipe files and kernel package. The kernel .deb is downloaded once (never installed); the
# extracted kernel and modules are cached next to it.
set -euo pipefail

log() { echo "[demo] $*"; }
die() {
  echo "[demo] error: $*" >&2
  exit 1
}

(($# == 1)) || die "usage: $0 OUT_DIR"
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$src/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
cache=${PHOENIX_CACHE_DIR:-$repo/.cache}
epoch=${SOURCE_DATE_EPOCH:-1704067200}
start_ns=$(date +%s%N)

# The modules the guest loads; kernel_deb.py adds their dependencies. virtio_mmio is for phoenix-vmm
# micro-VMs: the Debian kernel finds their virtio devices only through ACPI ("LNRO0005" devices). Everything else the image
# needs (serial 8250, devtmpfs, initramfs gzip, ACPI core, IPv4, unix sockets) is built into the
# Debian kernel: see the check against the kernel config below.
root_modules=(virtio_pci virtio_mmio virtio_net virtio_blk ext4 button evdev)
builtin_options=(CONFIG_SERIAL_8250 CONFIG_DEVTMPFS CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_ACPI
  CONFIG_INET CONFIG_UNIX CONFIG_PVH CONFIG_INPUT)

for tool in apt-get apt-cache dpkg-deb python3 gzip mkfs.ext4 debugfs qemu-img zstd xz; do
  command -v "$tool" >/dev/null || die "$tool not found: run tools/install-deps"
done
busybox=$(dpkg-query -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$') ||
  die "busybox-static is not installed: run tools/install-deps"

# The kernel package linux-image-amd64 points at. Asking apt costs seconds on a busy machine, so
# the answer is cached until the package lists change (apt-get update).
resolve_kernel_package() {
  local lists key cached
  lists=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo none)
  key="lists=$lists"
  if [[ -f $cache/kernel-package ]]; then
    read -r cached <"$cache/kernel-package" || true
    if [[ ${cached% *} == "$key" && -n ${cached##* } ]]; then
      echo "${cached##* }"
      return
    fi
  fi
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [[ -n $pkg ]] || return 0
  mkdir -p "$cache"
  echo "$key $pkg" >"$cache/kernel-package"
  echo "$pkg"
}
kpkg=${PHOENIX_KERNEL_PACKAGE:-$(resolve_kernel_package)}
[[ -n $kpkg ]] || die "cannot resolve linux-image-amd64 to a kernel package (apt-get update?)"
kver=${kpkg#linux-image-}

# ---- skip when OUT_DIR is already built from these inputs ----
recipe_files=("$src/build.sh" "$src/kernel_deb.py" "$src/mkcpio.py")
while IFS= read -r -d '' f; do recipe_files+=("$f"); done < <(find "$src/app" "$src/vm" -type f -print0 | sort -z)
stamp=$({
  echo "$kpkg ${root_modules[*]} $epoch $(sha256sum <"$busybox")"
  for f in "${recipe_files[@]}"; do echo "${f#"$src"/} $(stat -c %a "$f") $(sha256sum <"$f")"; done
} | sha256sum | cut -d' ' -f1)
artifacts=(vmlinux vmlinuz initrd.img disk.qcow2 rootfs manifest.env)
complete=1
for a in "${artifacts[@]}"; do [[ -e $out/$a ]] || complete=0; done
if ((complete)) && [[ -f $out/.build-stamp && $(cat "$out/.build-stamp") == "$stamp" ]]; then
  log "up to date: $out ($kpkg)"
  exit 0
fi
log "building into $out (kernel package $kpkg)"

# ---- kernel package: download once, never install ----
mkdir -p "$cache/debs"
deb=$(find "$cache/debs" -maxdepth 1 -name "${kpkg}_*_amd64.deb" | sort | tail -n1)
if [[ -z $deb ]]; then
  log "downloading $kpkg (one time, ~70 MB) into $cache/debs"
  dl=$(mktemp -d "$cache/debs/.download.XXXXXX")
  chmod 755 "$dl" # apt drops to user _apt for the download when it can
  trap 'rm -rf "$dl"' EXIT
  if ! (cd "$dl" && apt-get download -q "$kpkg"); then
    log "apt-get download failed; running apt-get update and retrying"
    apt-get update -q >/dev/null
    (cd "$dl" && apt-get download -q "$kpkg")
  fi
  mv "$dl"/"${kpkg}"_*.deb "$cache/debs/"
  rm -rf "$dl"
  trap - EXIT
  deb=$(find "$cache/debs" -maxdepth 1 -name "${kpkg}_*_amd64.deb" | sort | tail -n1)
  [[ -n $deb ]] || die "apt-get download $kpkg produced no .deb"
fi

# ---- kernel + modules: extract once per (package, module set, extractor) ----
kkey=$(echo "${root_modules[*]}" | cat - "$src/kernel_deb.py" | sha256sum | cut -c1-12)
kdir=$cache/kernel/$kpkg.$kkey
if [[ ! -f $kdir/load.order ]]; then
  log "extracting vmlinux, config and modules from $(basename "$deb")"
  mkdir -p "$cache/kernel"
  rm -rf "$cache/kernel/$kpkg".* # superseded extractions of this package
  ktmp=$cache/kernel/.extract.$$
  rm -rf "$ktmp"
  trap 'rm -rf "$ktmp"' EXIT
  loaded=$(python3 "$src/kernel_deb.py" "$deb" "$kver" "$ktmp" "${root_modules[@]}")
  mv "$ktmp" "$kdir"
  trap - EXIT
  log "modules: $loaded"
fi
for opt in "${builtin_options[@]}"; do
  grep -qx "$opt=y" "$kdir/config" || die "$kpkg: $opt is not built in (=y); the initramfs relies on it"
done

# ---- stage everything, then move it into OUT_DIR ----
stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Installs busybox with one symlink per applet into $1/bin (sbin, usr/bin, usr/sbin point there).
install_busybox() {
  mkdir -p "$1/bin" "$1/usr"
  cp "$busybox" "$1/bin/busybox"
  for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$1/bin/$applet"
  done
  ln -sfn bin "$1/sbin"
  ln -sfn ../bin "$1/usr/bin"
  ln -sfn ../bin "$1/usr/sbin"
}

# Copies the web app (shared by every runtime) into $1.
install_app() {
  cp -R "$src/app/." "$1/"
  mkdir -p "$1/data" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/run" "$1/etc"
  chmod 1777 "$1/tmp"
}

log "initrd.img: busybox $("$busybox" 2>&1 | head -n1 | awk '{print $2}'), web app, $(wc -l <"$kdir/load.order") modules"
initrd_root=$stage/initrd-root
mkdir -p "$initrd_root/lib/modules" "$initrd_root/var/log"
install_busybox "$initrd_root"
install_app "$initrd_root"
cp -R "$src/vm/." "$initrd_root/"
cp "$kdir"/modules/*.ko "$kdir/load.order" "$initrd_root/lib/modules/"
# The kernel opens /dev/console before /init runs: without the node PID 1 has no stdout.
python3 "$src/mkcpio.py" --mtime "$epoch" --node dev/console:c:5:1:600 --node dev/null:c:1:3:666 \
  "$initrd_root" | gzip -9 -n >"$stage/initrd.img"
rm -rf "$initrd_root"

log "rootfs/: busybox and the web app for OCI containers"
install_busybox "$stage/rootfs"
install_app "$stage/rootfs"
find "$stage/rootfs" -exec touch -h -d "@$epoch" {} +

log "disk.qcow2: 64 MiB ext4 with golden.txt"
golden=$stage/golden
mkdir -p "$golden"
printf 'golden data from the phoenix demo image\n' >"$golden/golden.txt"
touch -d "@$epoch" "$golden/golden.txt" "$golden"
# Fixed UUID, hash seed and clock make the filesystem reproducible; initializing inode tables and
# the journal now keeps the guest from writing them lazily into its overlay.
truncate -s 64M "$stage/disk.raw"
E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -F -L phoenix-data -m 0 \
  -U 6e1f0a3c-5d0b-4c59-9f3e-0c2b7d9a1e42 \
  -E hash_seed=0b7e4a6d-2c1f-4e8a-9d35-7f60c1a2b3d4,lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
  -d "$golden" "$stage/disk.raw"
# mkfs -d copies each source file's ctime, which no tool can set: pin it afterwards.
printf 'sif / ctime @%s\nsif /golden.txt ctime @%s\n' "$epoch" "$epoch" |
  E2FSPROGS_FAKE_TIME=$epoch debugfs -w -f - "$stage/disk.raw" >/dev/null 2>&1
qemu-img convert -f raw -O qcow2 "$stage/disk.raw" "$stage/disk.qcow2"
rm -rf "$stage/disk.raw" "$golden"

log "vmlinux, vmlinuz: $kver"
cp "$kdir/vmlinux" "$stage/vmlinux"
cp "$kdir/vmlinuz" "$stage/vmlinuz"

cat >"$stage/manifest.env" <<EOF
PHOENIX_IMAGE_FORMAT=1
NAME=demo
KERNEL=vmlinux
INITRD=initrd.img
DISK=disk.qcow2
ROOTFS=rootfs
CMDLINE=console=ttyS0 panic=-1 quiet
READY_MARKER=PHOENIX-READY
COMMAND=/bin/demo-web
RUNTIMES=vm,microvm,container
EOF

# Replace the artifacts one by one; the manifest (what consumers read first) goes last, and the
# stamp only once everything is in place.
rm -f "$out/.build-stamp"
for a in vmlinux vmlinuz initrd.img disk.qcow2 rootfs manifest.env; do
  rm -rf "${out:?}/$a"
  mv "$stage/$a" "$out/$a"
done
echo "$stamp" >"$out/.build-stamp"
rm -rf "$stage"
trap - EXIT

elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
log "done in $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000))) s:" \
  "initrd.img $(($(stat -c %s "$out/initrd.img") / 1024)) KiB," \
  "disk.qcow2 $(($(stat -c %s "$out/disk.qcow2") / 1024)) KiB, vmlinux $(($(stat -c %s "$out/vmlinux") / 1048576)) MiB"
