#!/usr/bin/env bash
# Validate an installed config the way the service will read it, credentials included.
#
#   deploy/check-config.sh CONFIG_DIR EDGE_DAEMON_BINARY
#
# The unit's LoadCredential=edge:CONFIG_DIR/credentials hands every file F of that
# directory to the service as $CREDENTIALS_DIRECTORY/edge_F, so the config refers to it as
# ${credential:edge_F}. Outside systemd there is no $CREDENTIALS_DIRECTORY, and a config
# that uses credentials would fail to validate (an upgrade used to abort right there):
# this builds the same view (links, in a private temporary directory) and validates
# against it. Exit status: validate-config's (0 valid, 2 not).
set -euo pipefail
CONFIG_DIR="${1:?usage: check-config.sh CONFIG_DIR EDGE_DAEMON_BINARY}"
BIN="${2:?usage: check-config.sh CONFIG_DIR EDGE_DAEMON_BINARY}"
VIEW="$(mktemp -d)"  # mode 0700: only we can follow the links
trap 'rm -rf "$VIEW"' EXIT
if [ -d "$CONFIG_DIR/credentials" ]; then
  for f in "$CONFIG_DIR/credentials"/*; do
    [ -f "$f" ] || continue
    ln -s "$f" "$VIEW/edge_$(basename "$f")"
  done
fi
status=0
CREDENTIALS_DIRECTORY="$VIEW" "$BIN" validate-config -c "$CONFIG_DIR/config.yaml" || status=$?
if [ "$status" -ne 0 ] && grep -q 'credential:' "$CONFIG_DIR/config.yaml"; then
  echo "hint: \${credential:edge_NAME} reads $CONFIG_DIR/credentials/NAME" \
    "(a root-only file, mode 0600), as the unit's LoadCredential= does" >&2
fi
exit "$status"
