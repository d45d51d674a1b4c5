#!/usr/bin/env bash
# Install edge-daemon as a systemd service. Idempotent: run it again to upgrade.
#
#   sudo deploy/install.sh                  # /opt/edge-daemon, /etc/edge-daemon, the unit
#   deploy/install.sh --prefix /tmp/stage   # everything under a prefix (testing)
#
# Puts the package in a venv under <prefix>/opt/edge-daemon/venv, a config in
# <prefix>/etc/edge-daemon/config.yaml (only if there is none: yours is never
# overwritten), a root-only credentials directory, and the unit in
# <prefix>/etc/systemd/system/edge-daemon.service. Without --prefix, as root, it also
# creates the system user edge-daemon and reloads systemd; it never starts the service.
set -euo pipefail

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --prefix DIR  --python PYTHON  --no-systemd  -h|--help"
}

PREFIX=""
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
USE_SYSTEMD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
    --python) PYTHON="${2:?--python needs a path}"; shift 2 ;;
    --no-systemd) USE_SYSTEMD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$PYTHON" ] || { echo "install.sh: python3 not found (use --python)" >&2; exit 2; }
if [ -n "$PREFIX" ]; then
  mkdir -p "$PREFIX"
  PREFIX="$(cd "$PREFIX" && pwd)"
  USE_SYSTEMD=0  # a staged install must not touch the running system
elif [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (or use --prefix DIR to install elsewhere)" >&2
  exit 2
fi

SRC="$(cd "$(dirname "$0")/.." && pwd)"
APP_DIR="$PREFIX/opt/edge-daemon"
VENV="$APP_DIR/venv"
CONFIG_DIR="$PREFIX/etc/edge-daemon"
UNIT_DIR="$PREFIX/etc/systemd/system"

echo "edge-daemon: installing from $SRC"
mkdir -p "$APP_DIR" "$CONFIG_DIR" "$UNIT_DIR"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "$SRC"
"$VENV/bin/python" -m compileall -q "$VENV/lib" >/dev/null || true  # read-only at run time
cp "$SRC/README.md" "$APP_DIR/README.md"

if [ ! -e "$CONFIG_DIR/config.yaml" ]; then
  install -m 0640 "$SRC/config.yaml" "$CONFIG_DIR/config.yaml"
  echo "edge-daemon: wrote $CONFIG_DIR/config.yaml (edit it, then: systemctl reload edge-daemon)"
else
  echo "edge-daemon: kept existing $CONFIG_DIR/config.yaml"
fi
install -d -m 0700 "$CONFIG_DIR/credentials"

sed -e "s|@VENV@|$VENV|g" -e "s|@CONFIG_DIR@|$CONFIG_DIR|g" \
  "$SRC/deploy/edge-daemon.service" > "$UNIT_DIR/edge-daemon.service.tmp"
mv "$UNIT_DIR/edge-daemon.service.tmp" "$UNIT_DIR/edge-daemon.service"
chmod 0644 "$UNIT_DIR/edge-daemon.service"

# As the service will read it: with the unit's credentials (see check-config.sh).
install -m 0755 "$SRC/deploy/check-config.sh" "$APP_DIR/check-config.sh"
"$APP_DIR/check-config.sh" "$CONFIG_DIR" "$VENV/bin/edge-daemon"

if [ "$USE_SYSTEMD" -eq 1 ]; then
  if ! id edge-daemon >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group edge-daemon
  fi
  getent group video >/dev/null && usermod -a -G video edge-daemon
  chgrp edge-daemon "$CONFIG_DIR/config.yaml"
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "edge-daemon: installed. Start it with: systemctl enable --now edge-daemon"
  else
    echo "edge-daemon: installed (systemd is not running here; unit in $UNIT_DIR)"
  fi
else
  echo "edge-daemon: installed under ${PREFIX:-/} (systemd untouched)"
fi
