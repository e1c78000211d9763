#!/usr/bin/env bash
# make release: qtunnel for every released platform, .deb and .rpm for Linux
# amd64 and arm64, and SHA256SUMS, all in dist/. Two runs on one commit give
# the same bytes: no cgo, -trimpath, no VCS stamp, no build id, and package
# file times from the last commit (SOURCE_DATE_EPOCH).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
# Pinned: nfpm v2.48.0 is the newest release the Go module proxy serves
# (go list -m -versions github.com/goreleaser/nfpm/v2) and is built with Go
# 1.26; a fixed version also keeps the packages' bytes from changing under
# us between builds. It runs through `go run`, so it is not in go.mod.
NFPM=${NFPM:-"$GO run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0"}
PLATFORMS=${PLATFORMS:-"linux/amd64 linux/arm64 windows/amd64 darwin/amd64 darwin/arm64"}
PKG_ARCHS=${PKG_ARCHS:-"amd64 arm64"}

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
PKG_MTIME=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# Debian and RPM versions must start with a digit and may not hold '-' (RPM):
# v1.2.3 -> 1.2.3; v1.2.3-4-gabcdef -> 1.2.3+4.gabcdef; a commit without a
# tag -> 0.0.0+git20260101.abcdef; -dirty -> .dirty.
pkg_version() {
	local v=$1 base rest
	if [[ $v =~ ^v?([0-9]+(\.[0-9]+)*)(-(.*))?$ ]]; then
		base=${BASH_REMATCH[1]} rest=${BASH_REMATCH[4]}
	else
		base=0.0.0 rest="git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$v"
	fi
	rest=${rest//-/.}
	echo "$base${rest:++$rest}"
}
PKG_VERSION=$(pkg_version "$VERSION")

mkdir -p dist
rm -f dist/SHA256SUMS dist/qtunnel_*.deb dist/qtunnel-*.rpm
files=()
for p in $PLATFORMS; do
	os=${p%/*} arch=${p#*/} exe=qtunnel
	[ "$os" = windows ] && exe=qtunnel.exe
	out=dist/$os-$arch/$exe
	rm -f "$out"
	echo "== $out ($VERSION)"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch $GO build -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid= -X main.version=$VERSION" -o "$out" ./server
	files+=("$out")
done

# nfpm expands $VAR only in some fields (not mtime, not contents), so the
# values are written into a copy of the configuration.
cfg=$(mktemp --suffix=.yaml)
trap 'rm -f "$cfg"' EXIT
for arch in $PKG_ARCHS; do
	sed -e "s|\${PKG_ARCH}|$arch|" -e "s|\${PKG_VERSION}|$PKG_VERSION|" \
		-e "s|\${PKG_BIN}|dist/linux-$arch/qtunnel|" -e "s|\${PKG_MTIME}|$PKG_MTIME|" \
		packaging/linux/nfpm.yaml >"$cfg"
	if grep -q '\${PKG_' "$cfg"; then echo "release: unexpanded in nfpm.yaml: $(grep '\${PKG_' "$cfg")" >&2; exit 1; fi
	[ -f "dist/linux-$arch/qtunnel" ] || { echo "release: no dist/linux-$arch/qtunnel to package" >&2; exit 1; }
	for fmt in deb rpm; do
		echo "== $fmt $arch ($PKG_VERSION)"
		out=$($NFPM package --config "$cfg" --packager "$fmt" --target dist/ 2>&1) ||
			{ echo "$out" >&2; exit 1; }
		f=$(sed -n 's/.*created package: \(.*\)$/\1/p' <<<"$out" | tail -1)
		[ -f "$f" ] || { echo "$out" >&2; echo "release: nfpm made no $fmt" >&2; exit 1; }
		files+=("${f#./}")
	done
done

(cd dist && sha256sum "${files[@]#dist/}" >SHA256SUMS)
echo "== dist/SHA256SUMS"
cat dist/SHA256SUMS
