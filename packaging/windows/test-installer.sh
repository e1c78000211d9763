#!/bin/sh
# Checks the Windows setup that build-installer.sh made (make gui-installer):
# a 64-bit Windows GUI executable (file(1) and its MZ/PE header), an NSIS
# installer holding the very qtunnel-gui.exe that make gui-windows built and
# the uninstaller (listed and extracted with 7z, package p7zip-full), and
# version information that carries the version. Where Wine is installed
# (apt-get install --no-install-recommends wine64), it also runs the setup and
# then its uninstaller, silently, in a throwaway Wine prefix, and checks what
# each leaves: files, Start menu shortcut, uninstall entry, the "Start at
# login" value, and that the uninstaller removes a service named like the
# app's. Each failed check is printed; the exit code is 1 if any failed.
set -eu
cd "$(dirname "$0")/../.."
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
SRC=${SRC:-dist/windows-amd64/qtunnel-gui.exe}
SETUP=dist/qtunnel-gui-setup-$VERSION.exe
failed=0
fail() {
	echo "test-installer: FAIL: $*" >&2
	failed=1
}
ok() { echo "test-installer: ok: $*"; }
check() { # OK-MESSAGE FAIL-MESSAGE COMMAND...: ok if the command succeeds
	okmsg=$1 failmsg=$2
	shift 2
	if "$@"; then ok "$okmsg"; else fail "$failmsg"; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$SETUP" ]; then
	echo "test-installer: $SETUP not found: run make gui-installer" >&2
	exit 1
fi
echo "test-installer: $SETUP, $(wc -c <"$SETUP") bytes"

# The header: "MZ", and at the offset in 0x3c "PE\0\0" and the machine
# (0x8664, x86-64).
mz=$(od -An -N2 -tx1 "$SETUP" | tr -d ' \n')
peoff=$(od -An -j60 -N4 -tu4 "$SETUP" | tr -d ' \n')
pe=$(od -An -j"$peoff" -N6 -tx1 "$SETUP" | tr -d ' \n')
if [ "$mz" = 4d5a ] && [ "$pe" = 504500006486 ]; then
	ok "MZ and PE headers, machine x86-64"
else
	fail "not a PE executable for x86-64 (MZ: $mz; at $peoff: $pe)"
fi
if command -v file >/dev/null; then
	desc=$(file -b "$SETUP")
	case $desc in
	"PE32+ executable (GUI) x86-64"*) ok "file: $desc" ;;
	*) fail "file says: $desc" ;;
	esac
fi

# The version information: UTF-16 strings in the resources.
if command -v strings >/dev/null; then
	for want in "$VERSION" "QTunnel desktop client setup" "qtunnel-gui-setup-$VERSION.exe"; do
		if strings -el "$SETUP" | grep -qxF -- "$want"; then
			ok "version information holds \"$want\""
		else
			fail "no \"$want\" in the version information"
		fi
	done
fi

# The contents.
if ! command -v 7z >/dev/null; then
	echo "test-installer: 7z not found (apt-get install p7zip-full): contents not checked" >&2
else
	list=$(7z l "$SETUP")
	if printf '%s\n' "$list" | grep -q '^Type = Nsis$'; then
		ok "7z reads an NSIS installer"
	else
		fail "7z does not see an NSIS installer"
	fi
	for f in qtunnel-gui.exe uninstall.exe; do
		if printf '%s\n' "$list" | grep -qE " $f\$"; then
			ok "contains $f"
		else
			fail "$f is not in the installer"
		fi
	done
	if 7z x -y -o"$tmp" "$SETUP" qtunnel-gui.exe >/dev/null && cmp -s "$tmp/qtunnel-gui.exe" "$SRC"; then
		ok "its qtunnel-gui.exe is $SRC, byte for byte"
	else
		fail "its qtunnel-gui.exe differs from $SRC"
	fi
fi

# The setup and its uninstaller under Wine.
wine=$(command -v wine64 || command -v /usr/lib/wine/wine64 || true)
if [ -z "$wine" ]; then
	echo "test-installer: Wine not found (apt-get install --no-install-recommends wine64): the setup was not run" >&2
else
	WINEPREFIX=$tmp/wine WINEDEBUG=-all
	export WINEPREFIX WINEDEBUG
	wineserver=$(dirname "$wine")/wineserver
	[ -x "$wineserver" ] || wineserver=wineserver
	trap '"$wineserver" -k 2>/dev/null || true; rm -rf "$tmp"' EXIT
	"$wine" wineboot --init >/dev/null 2>&1
	run() { # a Windows program, waiting for every process it starts
		"$wine" "$@"
		rc=$?
		"$wineserver" -w
		return $rc
	}
	reg_value() { # KEY VALUE: the value's data, empty if there is none
		"$wine" reg query "$1" /v "$2" 2>/dev/null | tr -d '\r' | sed -n -E "s/^ +$2 +REG_[A-Z_]+ +//p"
	}
	uninst='HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\QTunnel'
	runkey='HKCU\Software\Microsoft\Windows\CurrentVersion\Run'
	dir="$WINEPREFIX/drive_c/Program Files/QTunnel"
	lnk="$WINEPREFIX/drive_c/ProgramData/Microsoft/Windows/Start Menu/Programs/QTunnel.lnk"
	# A stand-in for the background service the app installs: the uninstaller
	# must stop and remove it by its name.
	run sc create qtunnel-client binPath= 'C:\windows\system32\notepad.exe' >/dev/null
	if run "$SETUP" /S; then
		ok "Wine: the setup ran (/S)"
	else
		fail "Wine: the setup failed"
	fi
	if cmp -s "$dir/qtunnel-gui.exe" "$SRC" && [ -f "$dir/uninstall.exe" ]; then
		ok "Wine: C:\Program Files\QTunnel holds qtunnel-gui.exe and uninstall.exe"
	else
		fail "Wine: C:\Program Files\QTunnel does not hold $SRC and uninstall.exe"
	fi
	check "Wine: the Start menu shortcut" "Wine: no Start menu shortcut" test -f "$lnk"
	for kv in "DisplayName=QTunnel" "DisplayVersion=$VERSION" "Publisher=QTunnel" \
		'UninstallString="C:\Program Files\QTunnel\uninstall.exe"'; do
		got=$(reg_value "$uninst" "${kv%%=*}")
		if [ "$got" = "${kv#*=}" ]; then
			ok "Wine: uninstall entry ${kv%%=*} = $got"
		else
			fail "Wine: uninstall entry ${kv%%=*} = \"$got\", want \"${kv#*=}\""
		fi
	done
	got=$(reg_value "$runkey" qtunnel)
	if [ "$got" = '"C:\Program Files\QTunnel\qtunnel-gui.exe"' ]; then
		ok "Wine: Start at login (HKCU Run qtunnel = $got)"
	else
		fail "Wine: HKCU Run qtunnel = \"$got\""
	fi

	if run 'C:\Program Files\QTunnel\uninstall.exe' /S; then
		ok "Wine: the uninstaller ran (/S)"
	else
		fail "Wine: the uninstaller failed"
	fi
	check "Wine: C:\Program Files\QTunnel is gone" "Wine: C:\Program Files\QTunnel is still there" test ! -e "$dir"
	check "Wine: the shortcut is gone" "Wine: the shortcut is still there" test ! -e "$lnk"
	check "Wine: the uninstall entry is gone" "Wine: the uninstall entry is still there" test -z "$(reg_value "$uninst" DisplayName)"
	check "Wine: the Start at login value is gone" "Wine: the Start at login value is still there" test -z "$(reg_value "$runkey" qtunnel)"
	if run sc query qtunnel-client >/dev/null 2>&1; then
		fail "Wine: the qtunnel-client service is still there"
	else
		ok "Wine: the qtunnel-client service was removed"
	fi
fi

if [ "$failed" != 0 ]; then
	exit 1
fi
echo "test-installer: all checks passed"
exit 0
