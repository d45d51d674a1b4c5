#!/usr/bin/env bash
# The daemon on linux/aarch64, checked end to end on an x86-64 machine under emulation:
#
#   1. an arm64 Debian 12 root (debootstrap; Python 3.11 as on Raspberry Pi OS 12 and
#      Jetson/Ubuntu boards with Debian's python3), run through qemu-user-static + binfmt;
#   2. the slim runtime (`pip install .`: no torch, no extras) from PyPI's aarch64 wheels;
#   3. the bundled models load (model contract checked), and the detector and classifier
#      give the same boxes and probabilities as on this x86-64 host, on frames of the
#      shared videos (`edge-bench parity`, tolerances in edge_bench/parity.py);
#   4. the daemon, on the shipped config.yaml, publishes events to a real Mosquitto.
#
# Emulated timings are not performance figures (qemu runs aarch64 code tens of times
# slower than a real board): nothing here measures speed.
#
# Usage (as root; CI runs it from .ci/run):  bash scripts/arm64-check.sh [OUT_DIR]
# The arm64 root is cached in $EDGE_ARM64_CACHE (default ~/.cache/edge-daemon/arm64):
# the first run builds it (about 10 minutes with the network, then pip another 8);
# later runs reuse it and only reinstall the project.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/arm64-check}" && cd "${1:-$repo/build/arm64-check}" && pwd)
data=${EDGE_DATA_DIR:-$repo/../shared/data}
cache=${EDGE_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-daemon/arm64}
root=$cache/root
suite=bookworm
mirror=${EDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
venv=/opt/edge
say() { echo "arm64-check: $*"; }
die() { echo "arm64-check: $*" >&2; exit 2; }

[ "$(uname -s)" = Linux ] || die "needs Linux (binfmt_misc); this is $(uname -s)"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, binfmt_misc); run it with sudo"
host_arch=$(uname -m)
[ "$host_arch" = x86_64 ] || die "meant for an x86-64 host (this is $host_arch: on an arm64 box install the daemon natively, see the README's 'Edge boxes')"
[ -x "$repo/.venv/bin/edge-bench" ] || die "run 'make setup' (or 'make test') first: the x86-64 reference runs in .venv"
videos=("$data/videos/pyfeat__single_face.mp4" "$data/videos/facenet_pytorch__video.mp4" "$data/videos/fer__woman2.mp4")
for v in "${videos[@]}"; do [ -f "$v" ] || die "shared video $v not found (EDGE_DATA_DIR)"; done

# --- tools and binfmt -------------------------------------------------------------
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mosquitto >/dev/null || need+=(mosquitto mosquitto-clients)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
fi
binfmt=/proc/sys/fs/binfmt_misc
[ -e $binfmt/register ] || mount -t binfmt_misc binfmt_misc $binfmt \
  || die "cannot mount binfmt_misc (a container without it cannot run foreign binaries)"
if [ ! -e $binfmt/qemu-aarch64 ]; then
  # Debian's rule, with the F flag: the interpreter is opened now, so it also works
  # inside the chroot, which has no qemu of its own.
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f $conf ] || die "$conf missing (qemu-user-static incomplete?)"
  cat $conf > $binfmt/register
fi
grep -q '^enabled' $binfmt/qemu-aarch64 || die "binfmt rule qemu-aarch64 is disabled"

# --- the arm64 root (cached) ------------------------------------------------------
if [ ! -f "$root/.edge-root-ok" ]; then
  say "building an arm64 $suite root in $root (first run only)"
  rm -rf "$root.tmp" && mkdir -p "$cache"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
    $suite "$root.tmp" "$mirror" > "$out/debootstrap.log" 2>&1 \
    || { tail -20 "$out/debootstrap.log" >&2; die "debootstrap failed (log: $out/debootstrap.log)"; }
  rm -rf "$root" && mv "$root.tmp" "$root" && touch "$root/.edge-root-ok"
fi

mounts=()
cleanup() {
  local m
  for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done
  [ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null || true
  [ -n "${sub_pid:-}" ] && kill "$sub_pid" 2>/dev/null || true
}
trap cleanup EXIT
bind() {  # bind SRC DEST [ro]
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  mounts=("$root$2" "${mounts[@]}")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$root$2"; fi
}
bind /proc /proc
bind /dev /dev
# Not /sys: the host's CPU topology there (x86) makes onnxruntime's CPU detection crash
# under emulation (SIGSEGV at import, seen with every qemu CPU model); without it
# onnxruntime only complains ("Error in cpuinfo") and runs.
bind "$data" /data ro
bind "$out" /out
# The host's trust store (it may hold a proxy's CA) and resolver.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The emulated CPU: a Cortex-A76, the core of the Raspberry Pi 5 and RK3588 boards (int8
# dot product, no SVE or i8mm); qemu's default "max" has every Armv9 extension, which
# no such board has. EDGE_QEMU_CPU=cortex-a72 checks a Pi 4's core (no dot product).
qemu_cpu=${EDGE_QEMU_CPU:-cortex-a76}
inroot() {
  chroot "$root" /usr/bin/env -i PATH=$venv/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    QEMU_CPU="$qemu_cpu" \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180 EDGE_DATA_DIR=/data "$@"
}
[ "$(inroot /usr/bin/uname -m)" = aarch64 ] || die "the chroot does not run aarch64 code"

# --- the slim runtime from aarch64 wheels -----------------------------------------
say "copying the project into the root"
rm -rf "$root/src" && mkdir -p "$root/src"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | (cd "$repo" && tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$root/src"
else
  tar -C "$repo" --exclude=.venv --exclude=build -cf - . | tar -xf - -C "$root/src"
fi
deps_key=$(sha256sum "$repo/pyproject.toml" | cut -c1-16)
if [ "$(cat "$root$venv/.deps" 2>/dev/null)" != "$deps_key" ]; then
  say "installing the runtime dependencies (aarch64 wheels; slow under emulation)"
  rm -rf "$root$venv"
  inroot python3 -m venv $venv
  inroot $venv/bin/pip install -q --only-binary=:all: --upgrade pip > "$out/pip.log" 2>&1 \
    || { tail -20 "$out/pip.log" >&2; die "pip upgrade failed"; }
  # Binary wheels only: a dependency without an aarch64 wheel is a finding, not a build.
  inroot $venv/bin/pip install -q --only-binary=:all: /src >> "$out/pip.log" 2>&1 \
    || { tail -20 "$out/pip.log" >&2; die "installing the runtime failed (log: $out/pip.log)"; }
  echo "$deps_key" > "$root$venv/.deps"
fi
inroot $venv/bin/pip install -q --no-deps --force-reinstall /src > "$out/pip-project.log" 2>&1 \
  || { tail -20 "$out/pip-project.log" >&2; die "installing the project failed"; }
inroot $venv/bin/pip list --format=freeze > "$out/aarch64-packages.txt" 2>/dev/null
if inroot $venv/bin/python -c "import torch" 2>/dev/null; then
  die "torch is installed in the runtime venv: the slim install must not need it"
fi
say "installed: $(grep -E '^(onnxruntime|ai-edge-litert|numpy|opencv-python-headless|edge-daemon)=' "$out/aarch64-packages.txt" | tr '\n' ' ')"

# --- same boxes, same probabilities -----------------------------------------------
models=(--model fast --model nano --model fer2013)  # nano: auto's choice without dot products
rec=(record --frames 6 --every 10 "${models[@]}")
for v in "${videos[@]}"; do rec+=(--video "$v"); done
say "recording the x86-64 reference"
"$repo/.venv/bin/edge-bench" parity "${rec[@]}" --out "$out/x86_64.json"
say "recording on aarch64 (emulated CPU $qemu_cpu; ten minutes or more)"
arm=(record --frames 6 --every 10 "${models[@]}" --boxes-from /out/x86_64.json)
for v in "${videos[@]}"; do arm+=(--video "/data/videos/$(basename "$v")"); done
inroot $venv/bin/edge-bench parity "${arm[@]}" --out /out/aarch64.json 2> "$out/aarch64-record.log" \
  || { grep -v '^Error in cpuinfo' "$out/aarch64-record.log" | tail -20 >&2; die "recording on aarch64 failed"; }
"$repo/.venv/bin/edge-bench" parity compare "$out/x86_64.json" "$out/aarch64.json" --json \
  > "$out/parity.json" || { cat "$out/parity.json"; die "aarch64 and x86-64 disagree (above)"; }
"$repo/.venv/bin/edge-bench" parity compare "$out/x86_64.json" "$out/aarch64.json"

# --- the daemon on the default config, publishing to Mosquitto --------------------
port=$("$repo/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mosquitto -p "$port" > "$out/mosquitto.log" 2>&1 & broker_pid=$!
"$repo/.venv/bin/python" - "$port" <<'PY' || die "the test broker did not start (log: $out/mosquitto.log)"
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
mosquitto_sub -p "$port" -t 'edge/#' -v > "$out/mqtt.txt" 2>&1 & sub_pid=$!
# The shipped config.yaml, changed only where this check cannot be like a box: the broker
# (a test broker on a free port, not the embedded one on 1883), no live view port, and
# the tracker's and the sample camera's time windows stretched, because an emulated
# frame takes seconds (measured: the detector 7.8 s per 640x480 frame, the classifier
# 0.6 s), so a track would expire (max_missed_s 1) between two analysed frames.
"$repo/.venv/bin/python" - "$repo/config.yaml" "$root/tmp/arm64-config.yaml" "$port" <<'PY'
import sys
import yaml
cfg = yaml.safe_load(open(sys.argv[1]))
cfg["mqtt"]["port"] = int(sys.argv[3])
cfg["mqtt"]["embedded_broker"]["enabled"] = False
cfg["live_view"]["enabled"] = False
cfg["tracker"]["max_missed_s"] = 60.0  # the schema's longest
cam = cfg["cameras"][0]
assert cam["source"]["type"] == "sample", cam
cam["source"].update(fps=2, present_s=3600, away_s=0)
yaml.safe_dump(cfg, open(sys.argv[2], "w"), sort_keys=False)
PY
inroot $venv/bin/edge-daemon validate-config -c /tmp/arm64-config.yaml 2>&1 | grep -v '^Error in cpuinfo' 
say "running the daemon on aarch64 for up to 240 s (until a start event)"
inroot /usr/bin/env STATE_DIRECTORY=/tmp/edge-state timeout -s INT 240 \
  $venv/bin/edge-daemon run -c /tmp/arm64-config.yaml > "$out/daemon.log" 2>&1 & daemon_pid=$!
ok=0
for _ in $(seq 240); do
  if grep -q '"type": *"start"' "$out/mqtt.txt" 2>/dev/null; then ok=1; break; fi
  kill -0 $daemon_pid 2>/dev/null || break
  sleep 1
done
kill -INT $daemon_pid 2>/dev/null || true
wait $daemon_pid 2>/dev/null || true
if [ $ok -ne 1 ]; then
  tail -30 "$out/daemon.log" >&2
  die "no start event from the aarch64 daemon (daemon log: $out/daemon.log, MQTT: $out/mqtt.txt)"
fi
say "events from the aarch64 daemon: $(grep -c '"type"' "$out/mqtt.txt") messages, first start: $(grep -m1 '"type": *"start"' "$out/mqtt.txt" | cut -c1-160)"
grep -q 'cpu: .*(aarch64' "$out/daemon.log" || die "the daemon log does not name the aarch64 CPU (daemon log: $out/daemon.log)"
say "the daemon saw: $(grep -m1 -o 'cpu: .*' "$out/daemon.log")"
say "passed (output in $out)"
