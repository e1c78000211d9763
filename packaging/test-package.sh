#!/usr/bin/env bash
# make package-test: checks the .deb that make release built for this
# machine's architecture (dist/qtunnel_*_ARCH.deb): unpacked into a throwaway
# root, its binary prints the version the tree describes, the unit, the
# configuration (qtunnel -check-config), the sysctl snippet and the
# maintainer scripts are there and right, the unit carries its hardening, and
# systemd-analyze (when installed) verifies it and scores its exposure.
# Every failed check is printed; the exit code is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=0
fail() { echo "FAIL: $*"; failed=1; }
ok() { echo "ok: $*"; }

arch=$(dpkg --print-architecture 2>/dev/null || go env GOARCH)
want_version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
debs=(dist/qtunnel_*_"$arch".deb)
[ -f "${debs[0]}" ] || { echo "FAIL: no dist/qtunnel_*_$arch.deb: run make release first"; exit 1; }
[ ${#debs[@]} = 1 ] || { echo "FAIL: more than one .deb for $arch: ${debs[*]}"; exit 1; }
deb=${debs[0]}
echo "== $deb"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root/fs" || { echo "FAIL: dpkg-deb -x $deb"; exit 1; }
dpkg-deb -e "$deb" "$root/DEBIAN" || { echo "FAIL: dpkg-deb -e $deb"; exit 1; }

# The control file.
ctl=$root/DEBIAN/control
grep -qx "Package: qtunnel" "$ctl" && ok "control: Package" || fail "control: no 'Package: qtunnel'"
grep -qx "Architecture: $arch" "$ctl" && ok "control: Architecture $arch" || fail "control: not Architecture $arch"
grep -q '^Version: [0-9]' "$ctl" && ok "control: $(grep ^Version: "$ctl")" || fail "control: Version must start with a digit"
grep -qx /etc/qtunnel/server.yaml "$root/DEBIAN/conffiles" 2>/dev/null &&
	ok "conffiles: /etc/qtunnel/server.yaml" || fail "/etc/qtunnel/server.yaml is not a conffile"

# The maintainer scripts: present, valid sh, doing what they must.
for s in postinst prerm postrm; do
	[ -x "$root/DEBIAN/$s" ] || { fail "no executable $s"; continue; }
	sh -n "$root/DEBIAN/$s" && ok "$s: valid sh" || fail "$s: sh -n fails"
done
grep -q -- '-generate-secret -secret-file=/etc/qtunnel/secret' "$root/DEBIAN/postinst" &&
	grep -q '! -e /etc/qtunnel/secret' "$root/DEBIAN/postinst" &&
	ok "postinst: makes a secret only when there is none" || fail "postinst: does not make a missing secret"
grep -q 'disable --now qtunnel' "$root/DEBIAN/prerm" && ok "prerm: stops the service" || fail "prerm: does not stop the service"

# The files and their modes.
check_file() { # path mode
	local f=$root/fs$1 m
	if [ ! -f "$f" ]; then fail "$1 missing"; return; fi
	m=$(stat -c %a "$f")
	[ "$m" = "$2" ] && ok "$1 (mode $m)" || fail "$1 has mode $m, want $2"
}
check_file /usr/bin/qtunnel 755
check_file /usr/lib/systemd/system/qtunnel.service 644
check_file /etc/qtunnel/server.yaml 644
check_file /usr/lib/sysctl.d/99-qtunnel-udp.conf 644
check_file /usr/share/doc/qtunnel/README.md 644
[ -e "$root/fs/etc/qtunnel/secret" ] && fail "the package ships a secret"

bin=$root/fs/usr/bin/qtunnel
if [ -x "$bin" ]; then
	out=$("$bin" -version 2>&1)
	[[ $out == "qtunnel $want_version "* ]] && ok "qtunnel -version: $out" || fail "qtunnel -version printed '$out', want 'qtunnel $want_version ...'"
	out=$("$bin" -check-config="$root/fs/etc/qtunnel/server.yaml" 2>&1) &&
		ok "qtunnel -check-config /etc/qtunnel/server.yaml" || fail "qtunnel -check-config /etc/qtunnel/server.yaml: $out"
fi

sysctl_conf=$root/fs/usr/lib/sysctl.d/99-qtunnel-udp.conf
for k in net.core.rmem_max net.core.wmem_max; do
	grep -Eq "^$k *= *7500000$" "$sysctl_conf" 2>/dev/null && ok "sysctl: $k = 7500000" || fail "sysctl: no '$k = 7500000'"
done

# The unit: the keys its sandbox depends on, each with its value.
unit=$root/fs/usr/lib/systemd/system/qtunnel.service
for kv in \
	'ExecStart=/usr/bin/qtunnel -config=/etc/qtunnel/server.yaml -secret-file=${CREDENTIALS_DIRECTORY}/secret' \
	'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' \
	'DynamicUser=yes' 'LoadCredential=secret:/etc/qtunnel/secret' \
	'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
	'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'PrivateDevices=yes' \
	'ProtectKernelTunables=yes' 'ProtectKernelModules=yes' 'ProtectKernelLogs=yes' 'ProtectControlGroups=yes' \
	'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK' 'RestrictNamespaces=yes' \
	'LockPersonality=yes' 'MemoryDenyWriteExecute=yes' 'SystemCallArchitectures=native' \
	'SystemCallFilter=@system-service' 'StateDirectory=qtunnel' 'RuntimeDirectory=qtunnel' \
	'ConfigurationDirectory=qtunnel' 'WantedBy=multi-user.target'; do
	grep -qxF -- "$kv" "$unit" 2>/dev/null && ok "unit: $kv" || fail "unit: no line '$kv'"
done
# The control socket the configuration names must be in the runtime directory.
grep -q '^control: /run/qtunnel/' "$root/fs/etc/qtunnel/server.yaml" &&
	ok "server.yaml: control socket in /run/qtunnel" || fail "server.yaml: control socket not in /run/qtunnel (RuntimeDirectory)"

if command -v systemd-analyze >/dev/null; then
	# verify wants the commands to exist on this machine: a copy of the unit
	# runs the unpacked binary instead of /usr/bin/qtunnel.
	mkdir -p "$root/verify"
	sed "s|/usr/bin/qtunnel|$bin|g" "$unit" >"$root/verify/qtunnel.service"
	out=$(systemd-analyze verify "$root/verify/qtunnel.service" 2>&1)
	if [ $? = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify"; else fail "systemd-analyze verify: $out"; fi
	out=$(systemd-analyze security --offline=yes --root="$root/fs" --threshold=20 qtunnel.service 2>&1)
	score=$(sed -n 's/.*Overall exposure level for qtunnel.service: \([0-9.]*\).*/\1/p' <<<"$out")
	if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
		ok "systemd-analyze security --offline=yes: exposure $score (at most 2.0)"
	else
		fail "systemd-analyze security: exposure '${score:-?}' above 2.0: $(grep '✗' <<<"$out")"
	fi
else
	echo "skip: systemd-analyze not installed (apt-get install systemd)"
fi

[ $failed = 0 ] && echo "package-test: all checks passed" || echo "package-test: FAILED"
exit $failed
