#!/usr/bin/env bash
# Integration test of the demo golden image: builds it into OUT_DIR, boots it with plain QEMU (no
# libvirt) on a throwaway qcow2 overlay, waits for the ready marker on the serial console, drives
# the web app over a loopback port forward, then presses the ACPI power button and expects the
# guest to power off by itself with its /data filesystem cleanly unmounted.
#
#   images/demo/boot_test.sh OUT_DIR
#
# Environment:
#   PHOENIX_QEMU_ACCEL     auto (default), kvm or tcg. auto picks KVM only when /dev/kvm is usable
#                          and the host CPU has hardware virtualization (vmx/svm): a /dev/kvm that
#                          emulates the guest kernel in software (e.g. kvm-pvm) is slower than TCG
#                          and cannot run every instruction a stock kernel uses.
#   PHOENIX_READY_TIMEOUT  seconds to wait for the ready marker (default 240)
set -euo pipefail

log() { echo "[demo-boot-test] $*"; }
fail() {
  echo "[demo-boot-test] FAIL: $*" >&2
  dump_logs
  exit 1
}

(($# == 1)) || {
  echo "usage: $0 OUT_DIR" >&2
  exit 2
}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$1
ready_timeout=${PHOENIX_READY_TIMEOUT:-240}
poweroff_timeout=30

for tool in qemu-system-x86_64 qemu-img curl python3 e2fsck debugfs; do
  command -v "$tool" >/dev/null || {
    echo "[demo-boot-test] $tool not found: run tools/install-deps" >&2
    exit 1
  }
done

"$src/build.sh" "$out"
out=$(cd "$out" && pwd) # the overlay names its backing file: make it absolute

# ---- the manifest is the image's contract: read everything from it ----
declare -A manifest
while IFS= read -r line; do
  [[ $line == *=* ]] || continue
  manifest[${line%%=*}]=${line#*=}
done <"$out/manifest.env"
[[ ${manifest[PHOENIX_IMAGE_FORMAT]:-} == 1 ]] || {
  echo "[demo-boot-test] FAIL: unsupported manifest format" >&2
  exit 1
}
for key in KERNEL INITRD DISK CMDLINE READY_MARKER; do
  [[ -n ${manifest[$key]:-} ]] || {
    echo "[demo-boot-test] FAIL: manifest lacks $key" >&2
    exit 1
  }
done
kernel=$out/${manifest[KERNEL]}
initrd=$out/${manifest[INITRD]}
disk=$out/${manifest[DISK]}
marker=${manifest[READY_MARKER]}

# ---- accelerator ----
accel=${PHOENIX_QEMU_ACCEL:-auto}
if [[ $accel == auto ]]; then
  accel=tcg
  if [[ -r /dev/kvm && -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
fi
case $accel in
  kvm) cpu=host ;;
  tcg) cpu=max ;;
  *)
    echo "[demo-boot-test] FAIL: PHOENIX_QEMU_ACCEL must be auto, kvm or tcg" >&2
    exit 1
    ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/phoenix-demo-boot.XXXXXX")
qemu_pid=
cleanup() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$qemu_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
dump_logs() {
  if [[ -f $tmp/serial.log ]]; then
    echo "---- serial console (last 40 lines)" >&2
    tail -n 40 "$tmp/serial.log" | tr -d '\r' >&2
  fi
  if [[ -s $tmp/qemu.log ]]; then
    echo "---- qemu output" >&2
    tail -n 40 "$tmp/qemu.log" >&2
  fi
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

golden_sum=$(sha256sum <"$disk")
qemu-img create -q -f qcow2 -b "$disk" -F qcow2 "$tmp/overlay.qcow2"

# ---- boot ----
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
instance=boot-test-$$
start_qemu() {
  : >"$tmp/serial.log"
  # romfile= skips the NIC's iPXE option ROM: nothing boots from the network here.
  qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 1 -m 256 -nographic -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "${manifest[CMDLINE]} phoenix.instance=$instance" \
    -drive "file=$tmp/overlay.qcow2,format=qcow2,if=none,id=d0" -device virtio-blk-pci,drive=d0 \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:80" -device virtio-net-pci,netdev=n0,romfile= \
    -serial "file:$tmp/serial.log" -qmp "unix:$tmp/qmp.sock,server=on,wait=off" \
    </dev/null >"$tmp/qemu.log" 2>&1 &
  qemu_pid=$!
}
# Another process may take the free port before QEMU binds it: retry a few times on that error.
for attempt in 1 2 3; do
  port=$(free_port)
  t_start=$(now_ms)
  start_qemu
  log "QEMU pid $qemu_pid: accel=$accel cpu=$cpu, guest port 80 on 127.0.0.1:$port"
  sleep 0.5
  if kill -0 "$qemu_pid" 2>/dev/null || ! grep -q 'forwarding rule' "$tmp/qemu.log"; then break; fi
  log "port $port was taken (attempt $attempt)"
  qemu_pid=
done

deadline=$((t_start + ready_timeout * 1000))
until grep -q "$marker" "$tmp/serial.log" 2>/dev/null; do
  kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited before $marker"
  # A vCPU that KVM cannot run stops the VM without exiting QEMU: fail now, not at the deadline.
  ! grep -q 'KVM internal error' "$tmp/qemu.log" || fail "KVM cannot run this guest (PHOENIX_QEMU_ACCEL=tcg?)"
  (($(now_ms) < deadline)) || fail "no $marker within ${ready_timeout} s"
  sleep 0.05
done
t_ready=$(now_ms)
log "ready marker after $((t_ready - t_start)) ms ($accel)"

# ---- the web app ----
base=http://127.0.0.1:$port
http() { # http PATH -> prints "CODE BODY" (body without its trailing newline)
  local body code
  body=$(curl -sS --noproxy '*' -m 20 -o - -w '\n%{http_code}' "$base$1") || fail "GET $1: curl failed"
  code=${body##*$'\n'}
  body=${body%$'\n'*}
  printf '%s %s' "$code" "$body"
}
expect() { # expect PATH "CODE BODY"
  local got
  got=$(http "$1")
  [[ $got == "$2" ]] || fail "GET $1: expected '$2', got '$got'"
  log "GET $1 -> ${got%%$'\n'*}"
}
expect_code() { # expect_code PATH CODE
  local got
  got=$(http "$1")
  [[ ${got%% *} == "$2" ]] || fail "GET $1: expected HTTP $2, got '$got'"
  log "GET $1 -> $2"
}

expect /health "200 ok"
page=$(http /)
[[ $page == "200 "*"$instance"* ]] || fail "GET /: page does not name instance $instance: $page"
log "GET / -> 200, names $instance"
expect /cgi-bin/read?name=golden.txt "200 golden data from the phoenix demo image"
expect "/cgi-bin/write?name=note.txt&data=hello%20phoenix%21" "200 written"
expect /cgi-bin/read?name=note.txt "200 hello phoenix!"
listing=$(http /cgi-bin/ls)
[[ $listing == "200 "* && $listing == *golden.txt* && $listing == *note.txt* ]] ||
  fail "GET /cgi-bin/ls: expected golden.txt and note.txt, got '$listing'"
log "GET /cgi-bin/ls -> 200, lists golden.txt and note.txt"
expect_code /cgi-bin/read?name=missing.txt 404
for bad in '..' '%2E%2E%2Fetc%2Fpasswd' '..%2Fgolden.txt' 'a%2Fb' '.hidden' ''; do
  expect_code "/cgi-bin/read?name=$bad" 400
done
expect_code "/cgi-bin/write?name=%2E%2E%2Fescape&data=x" 400
expect_code "/cgi-bin/read?name=escape" 404

# ---- graceful stop: ACPI power button ----
t_stop=$(now_ms)
# QMP rather than the human monitor: it acknowledges the command, so closing the socket cannot
# race with QEMU reading it.
python3 - "$tmp/qmp.sock" <<'PY' || fail "QEMU did not accept system_powerdown on QMP"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def command(name):
    f.write(json.dumps({"execute": name}).encode() + b"\n")
    f.flush()
    while True:  # skip asynchronous events until the command's answer
        line = f.readline()
        if not line:
            sys.exit(f"QMP closed before answering {name}")
        reply = json.loads(line)
        if "return" in reply:
            return
        if "error" in reply:
            sys.exit(f"QMP {name}: {reply['error']}")
json.loads(f.readline())  # greeting
command("qmp_capabilities")
command("system_powerdown")
PY
deadline=$((t_stop + poweroff_timeout * 1000))
while kill -0 "$qemu_pid" 2>/dev/null; do
  (($(now_ms) < deadline)) || fail "guest did not power off within ${poweroff_timeout} s of system_powerdown"
  sleep 0.1
done
wait "$qemu_pid" && rc=0 || rc=$?
qemu_pid=
((rc == 0)) || fail "QEMU exited with status $rc after system_powerdown"
log "powered off $(($(now_ms) - t_stop)) ms after system_powerdown"

# ---- what the guest left behind: a clean filesystem in the overlay, the golden disk untouched ----
qemu-img convert -f qcow2 -O raw "$tmp/overlay.qcow2" "$tmp/data.raw"
e2fsck -fn "$tmp/data.raw" >"$tmp/fsck.log" 2>&1 || {
  cat "$tmp/fsck.log" >&2
  fail "the guest's /data filesystem is not clean after the ACPI shutdown"
}
# A journaled ext4 still mounted (or never synced) carries needs_recovery.
stats=$(debugfs -R stats "$tmp/data.raw" 2>/dev/null)
[[ $stats == *"Filesystem state:"*clean* && $stats != *needs_recovery* ]] ||
  fail "the guest did not unmount /data cleanly: $(grep -E 'state|features' <<<"$stats")"
note=$(debugfs -R 'cat /note.txt' "$tmp/data.raw" 2>/dev/null)
[[ $note == "hello phoenix!" ]] || fail "note.txt in the overlay: expected 'hello phoenix!', got '$note'"
log "overlay: /data clean, note.txt persisted"
[[ $(sha256sum <"$disk") == "$golden_sum" ]] || fail "the golden disk changed"
log "golden disk unchanged"
log "PASS ($accel: ready $((t_ready - t_start)) ms)"
