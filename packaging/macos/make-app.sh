#!/bin/sh
# QTunnel.app for macOS: the desktop client (client-gui) built for Apple
# silicon and Intel, joined into one universal program with lipo, in an app
# bundle with its Info.plist and icon, signed ad hoc (or with your Developer
# ID), and packed as a .zip and a .dmg in dist/macos/.
#
# Run it ON A MAC, from anywhere in the repository, with Go 1.26 and the
# Xcode command line tools (xcode-select --install): Fyne needs cgo and
# Apple's SDK, so this cannot run on Linux. See packaging/macos/README.md.
#
#   packaging/macos/make-app.sh                 build dist/macos/QTunnel.app, .zip, .dmg
#   packaging/macos/make-app.sh -plist FILE     only write the Info.plist (any system)
#
# Environment: VERSION (default: git describe), SIGN_IDENTITY (default "-":
# ad hoc; a "Developer ID Application: ..." identity signs for
# notarization), MACOSX_DEPLOYMENT_TARGET (default 12.0), GO (default go).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
GO=${GO:-go}
SIGN_IDENTITY=${SIGN_IDENTITY:--}
MACOSX_DEPLOYMENT_TARGET=${MACOSX_DEPLOYMENT_TARGET:-12.0}
export MACOSX_DEPLOYMENT_TARGET

# CFBundleShortVersionString wants three numbers, CFBundleVersion one that
# grows: tag v1.2.3 -> 1.2.3 (build 1.2.3), three commits after it -> 1.2.3
# (build 1.2.3.3); no tag -> 0.0.0 (build 0.0.0.N, N the number of commits).
short=$(printf '%s\n' "$VERSION" | sed -n -E 's/^v?([0-9]+\.[0-9]+\.[0-9]+)(-[0-9]+-g[0-9a-f]+)?(-dirty)?$/\1/p')
commits=$(printf '%s\n' "$VERSION" | sed -n -E 's/^v?[0-9]+\.[0-9]+\.[0-9]+-([0-9]+)-g.*/\1/p')
if [ -z "$short" ]; then
	short=0.0.0
	commits=$(git rev-list --count HEAD 2>/dev/null || echo 0)
fi
build=$short${commits:+.$commits}

write_plist() {
	sed -e "s|@VERSION@|$VERSION|g" -e "s|@SHORT_VERSION@|$short|g" -e "s|@BUILD@|$build|g" \
		"$here/Info.plist.in" >"$1"
}

if [ "${1:-}" = -plist ]; then
	write_plist "${2:?usage: make-app.sh -plist FILE}"
	exit 0
fi
if [ "$(uname -s)" != Darwin ]; then
	echo "make-app.sh: run this on a Mac (Fyne needs cgo and Apple's SDK); see packaging/macos/README.md" >&2
	exit 1
fi
for tool in lipo sips iconutil codesign ditto hdiutil plutil; do
	command -v "$tool" >/dev/null || { echo "make-app.sh: $tool not found: install the Xcode command line tools (xcode-select --install)" >&2; exit 1; }
done

out=$root/dist/macos
app=$out/QTunnel.app
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"

# The program, once per architecture (clang -arch picks the SDK's slice),
# then one universal file.
for arch in arm64 amd64; do
	carch=$arch
	[ "$arch" = amd64 ] && carch=x86_64
	echo "make-app.sh: building qtunnel-gui for darwin/$arch"
	(cd client-gui && CGO_ENABLED=1 GOOS=darwin GOARCH=$arch CC="clang -arch $carch" \
		CGO_CFLAGS="-mmacosx-version-min=$MACOSX_DEPLOYMENT_TARGET" \
		CGO_LDFLAGS="-mmacosx-version-min=$MACOSX_DEPLOYMENT_TARGET" \
		"$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$work/qtunnel-gui-$arch" .)
done
lipo -create -output "$app/Contents/MacOS/qtunnel-gui" "$work/qtunnel-gui-arm64" "$work/qtunnel-gui-amd64"
lipo "$app/Contents/MacOS/qtunnel-gui" -verify_arch arm64 x86_64

# The icon: an iconset made from the 512x512 app.png, turned into .icns.
iconset=$work/QTunnel.iconset
mkdir -p "$iconset"
for size in 16 32 128 256 512; do
	sips -z "$size" "$size" assets/icons/app.png --out "$iconset/icon_${size}x${size}.png" >/dev/null
	double=$((size * 2))
	if [ "$double" -le 512 ]; then
		sips -z "$double" "$double" assets/icons/app.png --out "$iconset/icon_${size}x${size}@2x.png" >/dev/null
	fi
done
iconutil -c icns -o "$app/Contents/Resources/QTunnel.icns" "$iconset"

write_plist "$app/Contents/Info.plist"
plutil -lint "$app/Contents/Info.plist"
printf 'APPL????' >"$app/Contents/PkgInfo"

# Signing: ad hoc by default (it runs on this Mac; Apple silicon runs
# nothing unsigned). With a Developer ID: the hardened runtime and a secure
# timestamp, which notarization requires.
if [ "$SIGN_IDENTITY" = - ]; then
	codesign --force --sign - "$app"
else
	codesign --force --options runtime --timestamp --sign "$SIGN_IDENTITY" "$app"
fi
codesign --verify --strict --verbose=2 "$app"

# The archives: a zip (ditto keeps what a Finder copy keeps) and a disk
# image with a link to /Applications to drag the app onto.
zip=$out/QTunnel-$VERSION.zip
dmg=$out/QTunnel-$VERSION.dmg
rm -f "$zip" "$dmg"
ditto -c -k --sequesterRsrc --keepParent "$app" "$zip"
mkdir "$work/dmg"
cp -R "$app" "$work/dmg/"
ln -s /Applications "$work/dmg/Applications"
hdiutil create -volname QTunnel -srcfolder "$work/dmg" -ov -format UDZO "$dmg" >/dev/null
if [ "$SIGN_IDENTITY" != - ]; then
	codesign --force --timestamp --sign "$SIGN_IDENTITY" "$dmg"
fi
echo "make-app.sh: $app ($(lipo -archs "$app/Contents/MacOS/qtunnel-gui")), $zip, $dmg"
