#!/usr/bin/env bash
# Installs the system packages the tests and the embedded tools need (Debian/Ubuntu).
# As root they are installed with apt-get; otherwise the missing ones are named.
set -euo pipefail
need_cmds=(mosquitto ffmpeg)
# chromium: the live view is tested in a real headless browser; systemd: systemd-analyze
# checks the unit file; qemu-user-static: int8 results are checked on an emulated CPU
# without VNNI (tests/classify/test_int8_isa.py).
pkgs=(mosquitto mosquitto-clients ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0
      gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-rtsp
      chromium fonts-noto-color-emoji systemd qemu-user-static)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: not a Debian system; please install: ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
  # The Debian package starts a system mosquitto on :1883; tests start their own on free ports.
else
  echo "system-deps: not root, so not installing. Tests that need them will skip. Install with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
fi
