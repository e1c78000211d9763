#!/bin/sh
# make gui-installer: the Windows setup of the desktop client, made with NSIS
# (makensis, Debian package nsis) from the qtunnel-gui.exe that make
# gui-windows built, into dist/qtunnel-gui-setup-VERSION.exe.
#
# VERSION is git describe's, as for the binaries; the version resource
# needs four numbers (VIProductVersion), made from it: tag v1.2.3 -> 1.2.3.0,
# three commits after it -> 1.2.3.3, no tag -> 0.0.0.N with N the number of
# commits (so that later builds have higher numbers).
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
SRC=${SRC:-dist/windows-amd64/qtunnel-gui.exe}
OUT=dist/qtunnel-gui-setup-$VERSION.exe

if ! command -v makensis >/dev/null; then
	echo "build-installer: makensis not found: apt-get install nsis" >&2
	exit 1
fi
if [ ! -f "$SRC" ]; then
	echo "build-installer: $SRC not found: run make gui-windows first" >&2
	exit 1
fi

numeric=$(printf '%s\n' "$VERSION" | sed -n -E 's/^v?([0-9]+)\.([0-9]+)\.([0-9]+)(-([0-9]+)-g[0-9a-f]+)?(-dirty)?$/\1.\2.\3.\5/p')
case $numeric in
'') numeric=0.0.0.$(git rev-list --count HEAD 2>/dev/null || echo 0) ;;
*.) numeric=${numeric}0 ;;
esac
# Each number of a Windows version is 16 bits.
for n in $(printf '%s' "$numeric" | tr . ' '); do
	if [ "$n" -gt 65535 ]; then
		numeric=0.0.0.0
	fi
done

mkdir -p dist
makensis -V2 -WX -NOCD \
	"-DVERSION=$VERSION" "-DVERSION_NUMERIC=$numeric" \
	"-DSRC=$root/$SRC" "-DICON=$root/assets/icons/app.ico" "-DOUTFILE=$root/$OUT" \
	packaging/windows/qtunnel.nsi
echo "build-installer: $OUT ($(wc -c <"$OUT") bytes; version $VERSION, $numeric)"
