#!/usr/bin/env bash
# make image: the container image, one `docker save` tarball per
# architecture in dist/ (qtunnel-image-amd64.tar, qtunnel-image-arm64.tar),
# built by tools/mkimage without a container engine from the static linux
# binaries of make release. A binary that is missing, or that was built
# from another tree, is built here with release.sh's very command, so it is
# byte for byte the one make release makes of this tree.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo "")}
IMAGE_ARCHS=${IMAGE_ARCHS:-"amd64 arm64"}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for arch in $IMAGE_ARCHS; do
	bin=dist/linux-$arch/qtunnel
	# The build is reproducible (and cached, so quick): what it makes is
	# what make release makes of this tree. The version is not in the
	# binary's build information (-trimpath leaves -ldflags out), so the
	# bytes are compared instead.
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch $GO build -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid= -X main.version=$VERSION" -o "$tmp/qtunnel" ./server
	if cmp -s "$tmp/qtunnel" "$bin"; then
		echo "== $bin: make release's binary of this tree ($VERSION)"
	else
		echo "== $bin: missing or built from another tree; now built from this one ($VERSION) as make release does"
		mkdir -p "dist/linux-$arch"
		mv "$tmp/qtunnel" "$bin"
	fi
	$GO run ./tools/mkimage -arch "$arch" -bin "$bin" -version "$VERSION" -revision "$REVISION" \
		-out "dist/qtunnel-image-$arch.tar"
done
