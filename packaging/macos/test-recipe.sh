#!/bin/sh
# Checks what of the macOS recipe can be checked on Linux (make gui-test runs
# it): make-app.sh passes sh -n and shellcheck and refuses to run off a Mac;
# the Info.plist it writes is well-formed XML (xmllint) with the keys a tray
# app bundle needs, the client's app ID, and versions made from git describe
# as make-app.sh promises. It does not build the app: that needs a Mac.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
script=packaging/macos/make-app.sh
failed=0
fail() {
	echo "test-recipe: FAIL: $*" >&2
	failed=1
}
ok() { echo "test-recipe: ok: $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if sh -n "$script"; then ok "sh -n $script"; else fail "sh -n $script"; fi
if command -v shellcheck >/dev/null; then
	if shellcheck "$script" "$0"; then ok "shellcheck"; else fail "shellcheck"; fi
else
	echo "test-recipe: shellcheck not found (apt-get install shellcheck): not run" >&2
fi
if [ "$(uname -s)" != Darwin ]; then
	if VERSION=v1.0.0 "$script" >"$tmp/out" 2>&1; then
		fail "$script ran on $(uname -s)"
	elif grep -q "run this on a Mac" "$tmp/out"; then
		ok "$script refuses to run off a Mac"
	else
		fail "$script failed otherwise: $(cat "$tmp/out")"
	fi
fi
if file assets/icons/app.png | grep -q "PNG image data, 512 x 512"; then
	ok "the icon's source, assets/icons/app.png, is a 512x512 PNG"
else
	fail "assets/icons/app.png: $(file -b assets/icons/app.png)"
fi

if ! command -v xmllint >/dev/null; then
	echo "test-recipe: xmllint not found (apt-get install libxml2-utils): the Info.plist was not checked" >&2
else
	value() { # FILE KEY: the element after <key>KEY</key>, as name:text
		xmllint --nonet --xpath "concat(name(/plist/dict/key[.='$2']/following-sibling::*[1]), ':', /plist/dict/key[.='$2']/following-sibling::*[1])" "$1" 2>/dev/null || true
	}
	app_id=$(sed -n -E 's/.*app\.NewWithID\("([^"]+)"\).*/\1/p' client-gui/main.go)
	for case in "v1.2.3|1.2.3|1.2.3" "v1.2.3-4-gabcdef0-dirty|1.2.3|1.2.3.4" "abc1234|0.0.0|0.0.0.$(git rev-list --count HEAD)"; do
		version=${case%%|*}
		rest=${case#*|}
		short=${rest%%|*}
		build=${rest#*|}
		plist=$tmp/Info.plist
		VERSION=$version "$script" -plist "$plist"
		if xmllint --nonet --noout "$plist"; then
			ok "VERSION=$version: Info.plist is well-formed XML"
		else
			fail "VERSION=$version: Info.plist is not well-formed"
			continue
		fi
		if grep -q @ "$plist"; then
			fail "VERSION=$version: a placeholder is left: $(grep @ "$plist")"
		fi
		for kv in "CFBundleIdentifier=string:$app_id" "CFBundleExecutable=string:qtunnel-gui" \
			"CFBundleIconFile=string:QTunnel" "CFBundlePackageType=string:APPL" "CFBundleName=string:QTunnel" \
			"CFBundleShortVersionString=string:$short" "CFBundleVersion=string:$build" \
			"CFBundleGetInfoString=string:QTunnel $version" "LSUIElement=true:" \
			"NSHighResolutionCapable=true:" "LSMinimumSystemVersion=string:12.0"; do
			got=$(value "$plist" "${kv%%=*}")
			if [ "$got" = "${kv#*=}" ]; then
				ok "VERSION=$version: ${kv%%=*} = $got"
			else
				fail "VERSION=$version: ${kv%%=*} = \"$got\", want \"${kv#*=}\""
			fi
		done
	done
	if grep -qF 'Contents/Resources/QTunnel.icns' "$script"; then
		ok "make-app.sh writes the icon CFBundleIconFile names"
	else
		fail "make-app.sh does not write Contents/Resources/QTunnel.icns"
	fi
fi

if [ "$failed" != 0 ]; then
	exit 1
fi
echo "test-recipe: all checks passed"
exit 0
