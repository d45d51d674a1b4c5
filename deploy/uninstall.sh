#!/usr/bin/env bash
# Remove edge-daemon installed by deploy/install.sh. Idempotent.
#
#   sudo deploy/uninstall.sh           # stop + disable the service, remove venv and unit
#   sudo deploy/uninstall.sh --purge   # also the config, credentials, state and the user
#   deploy/uninstall.sh --prefix DIR   # a staged install under DIR
set -euo pipefail
PREFIX=""
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$PREFIX" ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root (or use --prefix DIR)" >&2
  exit 2
fi
UNIT="$PREFIX/etc/systemd/system/edge-daemon.service"
if [ -z "$PREFIX" ] && [ -d /run/systemd/system ]; then
  systemctl disable --now edge-daemon 2>/dev/null || true
fi
rm -f "$UNIT"
rm -rf "$PREFIX/opt/edge-daemon"
if [ "$PURGE" -eq 1 ]; then
  rm -rf "$PREFIX/etc/edge-daemon"
  # The unit's StateDirectory= (undelivered events, seq, instance_id).
  rm -rf "$PREFIX/var/lib/edge-daemon"
  if [ -z "$PREFIX" ] && id edge-daemon >/dev/null 2>&1; then
    userdel edge-daemon || true
  fi
  echo "edge-daemon: removed, including configuration and state"
else
  echo "edge-daemon: removed (configuration kept in $PREFIX/etc/edge-daemon and state in" \
    "$PREFIX/var/lib/edge-daemon; --purge removes them)"
fi
if [ -z "$PREFIX" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
