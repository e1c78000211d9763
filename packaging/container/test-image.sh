#!/usr/bin/env bash
# make image-test: checks the image tarballs make image wrote, read with a
# standard tool (skopeo, Debian package skopeo; jq for its JSON):
#   - skopeo copies each tarball into an OCI layout (every blob read back
#     and checked against its digest) and shows its configuration;
#   - the configuration: a non-root user that /etc/passwd in the image
#     names, entrypoint /qtunnel, command -config=/etc/qtunnel/server.yaml,
#     ports 443/udp and 443/tcp, the health check (qtunnel health -server),
#     architecture, and the version, revision and source labels;
#   - the files: the binary a static ELF for the architecture, owned by
#     root; only the state directory owned by the image's user (0700);
#     /tmp 1777; nothing setuid or setgid; no file writable by others;
#   - for this machine's architecture, the image's own binary prints the
#     tree's version and accepts the image's server.yaml;
#   - the size: at most MAX_MIB (20) MiB unpacked;
#   - that the checks can fail: an image built as root must be refused.
# With podman installed and working, it also runs the image: -version, and
# a server whose health check (the image's HEALTHCHECK) passes.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo "")}
IMAGE_ARCHS=${IMAGE_ARCHS:-"amd64 arm64"}
MAX_MIB=${MAX_MIB:-20}
PODMAN=${PODMAN:-auto} # auto: run the image if podman works here; no: never; yes: must
HOST_ARCH=$($GO env GOARCH)
UID_WANT=65532

for tool in skopeo jq; do
	command -v $tool >/dev/null || { echo "image-test: $tool is needed (apt-get install skopeo jq)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# check_image TARBALL ARCH: every check on one tarball; prints a line per
# check and returns the number that failed.
check_image() {
	local tar=$1 arch=$2 before=$fails dir cfg manifest layer files
	dir=$tmp/$arch-$(basename "$tar" .tar)
	mkdir -p "$dir"
	if ! skopeo --insecure-policy copy -q "docker-archive:$tar" "oci:$dir/oci:qtunnel" >"$dir/copy.log" 2>&1; then
		fail "$tar: skopeo cannot load it: $(cat "$dir/copy.log")"
		return 1
	fi
	ok "$tar: skopeo loads it ($(skopeo --version))"
	cfg=$dir/config.json
	skopeo inspect --config --raw "docker-archive:$tar" >"$cfg"
	skopeo inspect --raw "oci:$dir/oci:qtunnel" >"$dir/manifest.json"
	manifest=$dir/manifest.json
	echo "   image ID sha256:$(sha256sum <"$cfg" | cut -d' ' -f1) (docker images shows its start)"

	jqc() { jq -r "$1" "$cfg"; }
	local user uid
	user=$(jqc '.config.User // ""')
	uid=${user%%:*}
	if [[ $uid =~ ^[0-9]+$ ]] && [ "$uid" -ne 0 ] && [ "$uid" = "$UID_WANT" ] && [ "$user" = "$UID_WANT:$UID_WANT" ]; then
		ok "user $user (not root)"
	else
		fail "user is \"$user\", want $UID_WANT:$UID_WANT (numeric, not root)"
	fi
	[ "$(jqc '.config.Entrypoint | tojson')" = '["/qtunnel"]' ] && ok "entrypoint /qtunnel" ||
		fail "entrypoint $(jqc '.config.Entrypoint | tojson'), want [\"/qtunnel\"]"
	[ "$(jqc '.config.Cmd | tojson')" = '["-config=/etc/qtunnel/server.yaml"]' ] && ok "command -config=/etc/qtunnel/server.yaml" ||
		fail "command $(jqc '.config.Cmd | tojson')"
	[ "$(jqc '.config.ExposedPorts | keys | join(" ")')" = "443/tcp 443/udp" ] && ok "ports 443/tcp 443/udp" ||
		fail "exposed ports: $(jqc '.config.ExposedPorts | keys | join(" ")'), want 443/tcp 443/udp"
	if [ "$(jqc '.config.Healthcheck.Test | tojson')" = '["CMD","/qtunnel","health","-server"]' ] &&
		[ "$(jqc '.config.Healthcheck.Interval // 0')" -gt 0 ] && [ "$(jqc '.config.Healthcheck.Retries // 0')" -gt 0 ]; then
		ok "health check $(jqc '.config.Healthcheck | "\(.Test[1:] | join(" ")) every \(.Interval / 1e9)s, timeout \(.Timeout / 1e9)s, \(.Retries) retries"')"
	else
		fail "health check: $(jqc '.config.Healthcheck | tojson')"
	fi
	[ "$(jqc '.architecture + "/" + .os')" = "$arch/linux" ] && ok "platform linux/$arch" ||
		fail "platform $(jqc '.os + "/" + .architecture'), want linux/$arch"
	[ "$(jqc '.config.Labels["org.opencontainers.image.version"]')" = "$VERSION" ] && ok "version label $VERSION" ||
		fail "version label $(jqc '.config.Labels["org.opencontainers.image.version"]'), want $VERSION"
	[ -z "$REVISION" ] || { [ "$(jqc '.config.Labels["org.opencontainers.image.revision"]')" = "$REVISION" ] && ok "revision label $REVISION" ||
		fail "revision label $(jqc '.config.Labels["org.opencontainers.image.revision"]'), want $REVISION"; }
	[ -n "$(jqc '.config.Labels["org.opencontainers.image.source"] // ""')" ] && ok "source label" || fail "no source label"

	# The files, from the layer skopeo wrote into the OCI layout.
	[ "$(jq '.layers | length' "$manifest")" = 1 ] || fail "$(jq '.layers | length' "$manifest") layers, want 1"
	layer=$dir/oci/blobs/sha256/$(jq -r '.layers[0].digest' "$manifest" | cut -d: -f2)
	mkdir -p "$dir/root"
	tar -xzf "$layer" -C "$dir/root" --no-same-owner
	files=$dir/files.txt
	tar -tvzf "$layer" --numeric-owner >"$files"
	local size
	size=$(gzip -dc "$layer" | wc -c)
	if [ "$size" -le $((MAX_MIB * 1024 * 1024)) ]; then
		ok "size $(awk -v s="$size" 'BEGIN{printf "%.1f", s/1048576}') MiB unpacked (limit $MAX_MIB MiB); the tarball $(awk -v s="$(stat -c %s "$tar")" 'BEGIN{printf "%.1f", s/1048576}') MiB"
	else
		fail "size $size bytes unpacked, over $MAX_MIB MiB"
	fi
	grep -q "^qtunnel:x:$uid:$uid:" "$dir/root/etc/passwd" 2>/dev/null && grep -q "^qtunnel:x:$uid:" "$dir/root/etc/group" &&
		ok "/etc/passwd and /etc/group name uid $uid" || fail "/etc/passwd or /etc/group has no user $uid"
	# tar -tv: MODE OWNER/GROUP SIZE DATE TIME NAME
	awk -v u="$UID_WANT" '
		$6 == "var/lib/qtunnel/" { state = $1 " " $2 }
		$6 == "tmp/" { tmpm = $1 " " $2 }
		$6 == "qtunnel" { bin = $1 " " $2 }
		$1 ~ /^.{3}[sS]/ || $1 ~ /^.{6}[sS]/ { print "FAIL: setuid or setgid: " $6; bad++ }
		$1 ~ /^.{8}w/ && $6 != "tmp/" { print "FAIL: writable by others: " $6; bad++ }
		$2 != "0/0" && $6 != "var/lib/qtunnel/" { print "FAIL: not owned by root: " $6 " (" $2 ")"; bad++ }
		END {
			if (state != "drwx------ " u "/" u) { print "FAIL: /var/lib/qtunnel is \"" state "\", want drwx------ " u "/" u; bad++ }
			else print "ok: /var/lib/qtunnel drwx------ " u "/" u
			if (tmpm != "drwxrwxrwt 0/0") { print "FAIL: /tmp is \"" tmpm "\", want drwxrwxrwt 0/0"; bad++ }
			else print "ok: /tmp drwxrwxrwt"
			if (bin != "-rwxr-xr-x 0/0") { print "FAIL: /qtunnel is \"" bin "\", want -rwxr-xr-x 0/0"; bad++ }
			else print "ok: /qtunnel -rwxr-xr-x root"
			exit bad > 0
		}' "$files" || fails=$((fails + 1))
	local elf
	elf=$(od -An -tx1 -j18 -N2 "$dir/root/qtunnel" | tr -d ' ')
	case "$arch/$elf" in
	amd64/3e00 | arm64/b700) ok "/qtunnel is an ELF for $arch" ;;
	*) fail "/qtunnel: ELF machine $elf, not $arch" ;;
	esac
	if grep -aq '/ld-linux' "$dir/root/qtunnel"; then
		fail "/qtunnel names a dynamic loader: not static"
	fi
	if [ "$arch" = "$HOST_ARCH" ]; then
		local v
		v=$("$dir/root/qtunnel" -version 2>&1) || true
		[[ $v == "qtunnel $VERSION "* ]] && ok "/qtunnel -version: $v" || fail "/qtunnel -version: $v (want qtunnel $VERSION)"
		"$dir/root/qtunnel" -check-config="$dir/root/etc/qtunnel/server.yaml" >"$dir/check.log" 2>&1 &&
			ok "the image's server.yaml passes -check-config" || fail "the image's server.yaml: $(cat "$dir/check.log")"
	fi
	return $((fails - before))
}

for arch in $IMAGE_ARCHS; do
	tar=dist/qtunnel-image-$arch.tar
	echo "== $tar"
	[ -f "$tar" ] || { fail "no $tar (make image)"; continue; }
	check_image "$tar" "$arch" || true
done

# The checks must be able to fail: the same image, but running as root.
echo "== an image that runs as root must be refused"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)} \
	$GO run ./tools/mkimage -arch "$HOST_ARCH" -bin "dist/linux-$HOST_ARCH/qtunnel" -version "$VERSION" -revision "$REVISION" \
	-user 0:0 -out "$tmp/root-image.tar" >/dev/null
saved=$fails
out=$(check_image "$tmp/root-image.tar" "$HOST_ARCH" 2>&1) && bad=0 || bad=$?
fails=$saved
if [ "$bad" -ge 1 ] && grep -q '^FAIL: user is "0:0"' <<<"$out"; then
	ok "refused: $(grep '^FAIL' <<<"$out" | head -1)"
else
	fail "an image running as root passed the checks"
fi

# Running it: podman, when it is installed and works here. runc rather than
# crun when there is one: crun refuses a machine whose cgroups are half v1,
# half v2, as this CI's are. The limits are set to what this shell has (a
# container may not raise them), and ports below 1024 are opened to the
# container's user as Docker does by default (podman 4.3 does not).
run_podman() {
	local tar=dist/qtunnel-image-$HOST_ARCH.tar img="localhost/qtunnel:$VERSION" name=qtunnel-image-test out
	local -a p=(podman) flags=(--network=none --sysctl net.ipv4.ip_unprivileged_port_start=0
		--ulimit "nofile=$(ulimit -n):$(ulimit -n)" --ulimit nproc=1000:1000)
	command -v runc >/dev/null && p+=(--runtime runc)
	"${p[@]}" load -q -i "$tar" >"$tmp/podman.log" 2>&1 || { echo "podman load: $(cat "$tmp/podman.log")"; return 1; }
	ok "podman load: $(tail -1 "$tmp/podman.log")"
	# (podman logs that it has no systemd for the health check's timer;
	# the check is run by hand below.)
	out=$("${p[@]}" run --rm "${flags[@]}" "$img" -version 2>"$tmp/podman.log") || { echo "podman run -version: $(cat "$tmp/podman.log")"; return 1; }
	[[ $out == "qtunnel $VERSION "* ]] && ok "podman run $img -version: $out" || fail "podman run -version: $out"
	# A server as the documentation runs it: the secret a file of mode 0600
	# owned by the image's user, mounted read-only.
	head -c 32 /dev/urandom | base64 | tr -d '=+/\n' >"$tmp/secret"
	chmod 600 "$tmp/secret"
	chown "$UID_WANT:$UID_WANT" "$tmp/secret"
	"${p[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
	"${p[@]}" run -d --name "$name" "${flags[@]}" -v "$tmp/secret:/etc/qtunnel/secret:ro" \
		"$img" -config=/etc/qtunnel/server.yaml -listen=127.0.0.1:443 >/dev/null 2>"$tmp/podman.log" ||
		{ fail "podman run (server): $(cat "$tmp/podman.log")"; return 0; }
	local i healthy=""
	for i in $(seq 1 20); do
		if "${p[@]}" healthcheck run "$name" >/dev/null 2>&1; then healthy=1; break; fi
		sleep 0.5
	done
	if [ -n "$healthy" ]; then
		ok "podman healthcheck run: $("${p[@]}" inspect "$name" --format '{{.State.Health.Status}}: {{range .State.Health.Log}}{{.Output}}{{end}}' 2>/dev/null | tail -1)"
		ok "the server runs as $("${p[@]}" top "$name" user huser 2>/dev/null | tail -1 | tr -s ' ')"
	else
		fail "podman healthcheck run never passed; logs: $("${p[@]}" logs "$name" 2>&1 | tail -3)"
	fi
	if out=$("${p[@]}" exec "$name" /qtunnel health 2>&1); then
		fail "qtunnel health (the client's) passed with no client running: $out"
	else
		ok "no client runs, so qtunnel health (the client's) fails: $out"
	fi
	"${p[@]}" rm -f -t 2 "$name" >/dev/null 2>&1 || true
	"${p[@]}" rmi -f "$img" >/dev/null 2>&1 || true
}
if [ "$PODMAN" != yes ] && [ "$(id -u)" != 0 ] && command -v podman >/dev/null; then
	# The secret file must belong to uid 65532, which only root can arrange.
	echo "skip: running the image with podman (needs root here; PODMAN=yes to insist)"
elif [ "$PODMAN" != no ] && command -v podman >/dev/null; then
	echo "== podman: running the image"
	if ! run_podman; then
		if [ "$PODMAN" = yes ]; then fail "podman could not run the image"; else echo "skip: podman does not work here"; fi
	fi
elif [ "$PODMAN" = yes ]; then
	fail "podman is not installed"
else
	echo "skip: running the image (podman not installed)"
fi

if [ "$fails" -gt 0 ]; then
	echo "image-test: $fails check(s) FAILED"
	exit 1
fi
echo "image-test: all checks passed"
