#!/usr/bin/env bash
# Runs the tests of internal/secretstore and internal/bgservice for real:
#
#   - against gnome-keyring, in a D-Bus session and a HOME of their own
#     (throwaway: the real keyring and HOME are never touched), with the
#     login keyring created and unlocked with a throwaway password;
#   - as root, installing, starting, stopping and removing a real system
#     service (unix-systemv or systemd) under a unique name.
#
# QTUNNEL_REQUIRE_KEYRING=1 (always) and QTUNNEL_REQUIRE_SERVICE=1 (as
# root) turn "cannot test this here, skipped" into a failure, so that CI
# cannot pass by skipping. Extra arguments go to "go test" (-v, -run ...).
#
# Needs: go, dbus-run-session (dbus), gnome-keyring-daemon (gnome-keyring);
# on Debian: apt-get install dbus-x11 gnome-keyring.
set -euo pipefail

cd "$(dirname "$0")/.."

for tool in go dbus-run-session gnome-keyring-daemon; do
	if ! command -v "$tool" >/dev/null; then
		echo "test-keyring-service: $tool is missing (Debian: apt-get install dbus-x11 gnome-keyring)" >&2
		exit 1
	fi
done

# Go keeps its caches under HOME by default: pin them, or the throwaway
# HOME would mean a cold cache and a module download.
GOCACHE="$(go env GOCACHE)"
GOMODCACHE="$(go env GOMODCACHE)"
GOPATH="$(go env GOPATH)"
GOENV="$(go env GOENV)"
export GOCACHE GOMODCACHE GOPATH GOENV

home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT

export QTUNNEL_REQUIRE_KEYRING=1
if [ "$(id -u)" -eq 0 ]; then
	export QTUNNEL_REQUIRE_SERVICE=1
else
	echo "test-keyring-service: not root: the real service test will be skipped" >&2
fi

# A session of its own: no runtime dir or keyring control socket of the
# user's desktop (gnome-keyring-daemon --unlock would otherwise try to
# unlock the user's real keyring), and keyrings under the throwaway HOME.
# gnome-keyring-daemon exits when dbus-run-session closes the bus.
env -u XDG_RUNTIME_DIR -u GNOME_KEYRING_CONTROL -u XDG_DATA_HOME \
	-u XDG_CONFIG_HOME -u XDG_CACHE_HOME -u DBUS_SESSION_BUS_ADDRESS \
	HOME="$home" \
	dbus-run-session -- bash -c '
		set -euo pipefail
		echo -n pass | gnome-keyring-daemon --unlock --components=secrets >/dev/null
		exec go test -race -count=1 "$@" ./internal/secretstore/ ./internal/bgservice/
	' test-keyring-service "$@"
