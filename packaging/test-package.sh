#!/usr/bin/env bash
# make package-test: checks the .deb that make release built for this
# machine's architecture (dist/qtunnel_*_ARCH.deb): installed with
# dpkg --root into a throwaway root (as root; otherwise only unpacked with
# dpkg-deb -x), its binary prints the version the tree describes, the unit,
# the configuration (qtunnel -check-config), the sysctl snippet and the
# maintainer scripts are there and right, the unit carries its hardening, and
# systemd-analyze (when installed) verifies it and scores its exposure. Then,
# in that root: reinstall, upgrade, remove, purge, and what each leaves.
# Every failed check is printed; the exit code is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

failed=0
fail() { echo "FAIL: $*"; failed=1; }
ok() { echo "ok: $*"; }

arch=$(dpkg --print-architecture 2>/dev/null || go env GOARCH)
want_version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
# DEB=path checks another .deb (a broken one, to see the checks fail).
# shellcheck disable=SC2206
debs=(${DEB:-dist/qtunnel_*_"$arch".deb})
[ -f "${debs[0]}" ] || { echo "FAIL: no dist/qtunnel_*_$arch.deb: run make release first"; exit 1; }
[ ${#debs[@]} = 1 ] || { echo "FAIL: more than one .deb for $arch: ${debs[*]}"; exit 1; }
deb=${debs[0]}
echo "== $deb"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -e "$deb" "$root/DEBIAN" || { echo "FAIL: dpkg-deb -e $deb"; exit 1; }

# The throwaway root dpkg installs into: an empty dpkg database and what the
# maintainer scripts need, since dpkg runs them chrooted in it: /bin/sh (the
# host's dash), rm and rmdir (postrm purge), their libraries and /dev/null;
# and a copy of the host's passwd and group, to see that the package adds no
# user (the unit's DynamicUser makes one at each start). There is no systemd
# in it and no sysctl, so the scripts' systemctl and sysctl steps are skipped
# (make systemd-test runs them under a real systemd).
fs=$root/fs
installed=0
make_root() {
	local l tools
	tools="$(command -v dash) $(command -v rm) $(command -v rmdir)"
	mkdir -p "$fs"/var/lib/dpkg/info "$fs"/var/lib/dpkg/updates "$fs"/usr/bin "$fs"/usr/lib \
		"$fs"/usr/lib64 "$fs"/etc "$fs"/dev &&
		touch "$fs"/var/lib/dpkg/status "$fs"/var/lib/dpkg/available &&
		ln -s usr/bin "$fs/bin" && ln -s usr/lib "$fs/lib" && ln -s usr/lib64 "$fs/lib64" &&
		cp "$(command -v dash)" "$fs/usr/bin/sh" && cp "$(command -v rm)" "$(command -v rmdir)" "$fs/usr/bin/" &&
		mknod -m 666 "$fs/dev/null" c 1 3 && cp /etc/passwd /etc/group "$fs/etc/" || return 1
	# shellcheck disable=SC2086
	for l in $(ldd $tools | grep -o '/[^ ]*' | grep -v ':$' | sort -u); do
		mkdir -p "$fs$(dirname "$l")" && cp -L "$l" "$fs$l" || return 1
	done
	chroot "$fs" /bin/sh -c 'rm --version && rmdir --version' >/dev/null
}
# The root has none of the package's dependencies (procps): --force-depends.
dpkg_root() { dpkg --root="$fs" --force-unsafe-io --force-depends "$@"; }
listing() { (cd "$fs" && find . | sed 's/^\.//' | grep -v '^/var/lib/dpkg/' | sort); }
if [ "$(id -u)" = 0 ] && command -v dash >/dev/null && make_root; then
	listing >"$root/before"
	if install_out=$(dpkg_root -i "$deb" 2>&1); then
		installed=1
		ok "dpkg --root=ROOT -i $(basename "$deb")"
	else
		fail "dpkg --root=ROOT -i $deb: $install_out"
	fi
else
	echo "skip: installing with dpkg --root needs root and dash: only unpacking (dpkg-deb -x)"
	rm -rf "$fs" && mkdir -p "$fs"
	dpkg-deb -x "$deb" "$fs" || { echo "FAIL: dpkg-deb -x $deb"; exit 1; }
fi

# The control file.
ctl=$root/DEBIAN/control
grep -qx "Package: qtunnel" "$ctl" && ok "control: Package" || fail "control: no 'Package: qtunnel'"
grep -qx "Architecture: $arch" "$ctl" && ok "control: Architecture $arch" || fail "control: not Architecture $arch"
grep -q '^Version: [0-9]' "$ctl" && ok "control: $(grep ^Version: "$ctl")" || fail "control: Version must start with a digit"
# ExecReload's /bin/kill is procps's in Debian.
grep -Eq '^Depends:(.*[ ,])?procps(,|$)' "$ctl" && ok "control: Depends: procps (/bin/kill, the unit's ExecReload)" ||
	fail "control: no 'Depends: procps' (the unit's ExecReload runs /bin/kill)"
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
	local f=$fs$1 m
	if [ ! -f "$f" ]; then fail "$1 missing"; return; fi
	m=$(stat -c %a "$f")
	[ "$m" = "$2" ] && ok "$1 (mode $m)" || fail "$1 has mode $m, want $2"
	if [ $installed = 1 ]; then
		m=$(stat -c %U:%G "$f")
		[ "$m" = root:root ] && ok "$1 is root's" || fail "$1 is owned by $m, want root:root"
		[ "$(dpkg-query --admindir="$fs/var/lib/dpkg" -S "$1" 2>/dev/null)" = "qtunnel: $1" ] &&
			ok "$1 is qtunnel's (dpkg -S)" || fail "$1: dpkg -S does not say it is qtunnel's"
	fi
}
check_file /usr/bin/qtunnel 755
check_file /usr/lib/systemd/system/qtunnel.service 644
check_file /etc/qtunnel/server.yaml 644
check_file /usr/lib/sysctl.d/99-qtunnel-udp.conf 644
check_file /usr/share/doc/qtunnel/README.md 644
dpkg-deb -c "$deb" | grep -q "/etc/qtunnel/secret$" && fail "the package ships a secret"

bin=$fs/usr/bin/qtunnel
if [ -x "$bin" ]; then
	out=$("$bin" -version 2>&1)
	[[ $out == "qtunnel $want_version "* ]] && ok "qtunnel -version: $out" || fail "qtunnel -version printed '$out', want 'qtunnel $want_version ...'"
	out=$("$bin" -check-config="$fs/etc/qtunnel/server.yaml" 2>&1) &&
		ok "qtunnel -check-config /etc/qtunnel/server.yaml" || fail "qtunnel -check-config /etc/qtunnel/server.yaml: $out"
fi

sysctl_conf=$fs/usr/lib/sysctl.d/99-qtunnel-udp.conf
for k in net.core.rmem_max net.core.wmem_max; do
	grep -Eq "^$k *= *7500000$" "$sysctl_conf" 2>/dev/null && ok "sysctl: $k = 7500000" || fail "sysctl: no '$k = 7500000'"
done

# The unit: the keys its sandbox depends on, each with its value.
unit=$fs/usr/lib/systemd/system/qtunnel.service
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
grep -q '^control: /run/qtunnel/' "$fs/etc/qtunnel/server.yaml" &&
	ok "server.yaml: control socket in /run/qtunnel" || fail "server.yaml: control socket not in /run/qtunnel (RuntimeDirectory)"

if command -v systemd-analyze >/dev/null; then
	# verify wants the commands to exist on this machine: a copy of the unit
	# runs the unpacked binary instead of /usr/bin/qtunnel.
	mkdir -p "$root/verify"
	sed "s|/usr/bin/qtunnel|$bin|g" "$unit" >"$root/verify/qtunnel.service"
	out=$(systemd-analyze verify "$root/verify/qtunnel.service" 2>&1)
	if [ $? = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify"; else fail "systemd-analyze verify: $out"; fi
	out=$(systemd-analyze security --offline=yes --root="$fs" --threshold=20 qtunnel.service 2>&1)
	score=$(sed -n 's/.*Overall exposure level for qtunnel.service: \([0-9.]*\).*/\1/p' <<<"$out")
	if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
		ok "systemd-analyze security --offline=yes: exposure $score (at most 2.0)"
	else
		fail "systemd-analyze security: exposure '${score:-?}' above 2.0: $(grep '✗' <<<"$out")"
	fi
else
	echo "skip: systemd-analyze not installed (apt-get install systemd)"
fi

# The installed package's life in the throwaway root: what dpkg records, the
# secret, the users; then reinstall, upgrade, remove, purge, and an install
# over a secret that is already there.
if [ $installed = 1 ]; then
	q() { dpkg-query --admindir="$fs/var/lib/dpkg" "$@" 2>/dev/null; }
	secret=$fs/etc/qtunnel/secret
	secret_ok() { [ -f "$secret" ] && [ "$(stat -c %a:%U:%G "$secret")" = 600:root:root ]; }
	secret_desc() { if [ -e "$secret" ]; then stat -c '%a %U:%G' "$secret"; else echo missing; fi; }
	status_is() { # what want
		local st
		st=$(q -W -f='${Status} ${Version}' qtunnel)
		[ "$st" = "$2" ] && ok "$1: dpkg-query: $st" || fail "$1: dpkg-query says '$st', want '$2'"
	}
	version=$(dpkg-deb -f "$deb" Version)

	status_is install "install ok installed $version"
	out=$(dpkg_root --verify qtunnel 2>&1)
	[ $? = 0 ] && [ -z "$out" ] && ok "dpkg --verify: every installed file matches its md5sum" || fail "dpkg --verify: $out"
	sum=$(md5sum <"$fs/etc/qtunnel/server.yaml" | cut -d' ' -f1)
	q -W -f='${Conffiles}' qtunnel | grep -qx " /etc/qtunnel/server.yaml $sum" &&
		ok "conffile registered: /etc/qtunnel/server.yaml $sum" ||
		fail "conffile not registered with the file's md5 $sum: '$(q -W -f='${Conffiles}' qtunnel)'"
	if secret_ok && [ "$(tr -d '\n' <"$secret" | wc -c)" -ge 40 ] && grep -q 'wrote a new secret' <<<"$install_out"; then
		ok "postinst: made /etc/qtunnel/secret (0600 root:root, $(tr -d '\n' <"$secret" | wc -c) characters)"
	else
		fail "postinst: no new secret of mode 0600 root:root (/etc/qtunnel/secret: $(secret_desc)); it said: $install_out"
	fi
	secret_sum=$(sha256sum <"$secret" 2>/dev/null)
	cmp -s /etc/passwd "$fs/etc/passwd" && cmp -s /etc/group "$fs/etc/group" &&
		ok "no user or group added (passwd, group unchanged: the unit's DynamicUser makes one at each start)" ||
		fail "the install changed passwd or group: $(diff /etc/passwd "$fs/etc/passwd"; diff /etc/group "$fs/etc/group")"
	[ ! -e "$fs/etc/systemd" ] && ok "nothing enabled (no /etc/systemd)" || fail "the install made $(find "$fs/etc/systemd")"
	# Everything the install made is the package's (dpkg -L) or the secret.
	listing >"$root/after"
	{ q -L qtunnel; echo /etc/qtunnel/secret; } | sort -u >"$root/expected"
	extra=$(comm -23 <(comm -13 "$root/before" "$root/after") "$root/expected")
	[ -z "$extra" ] && ok "the install made only the package's files and the secret" || fail "the install made also: $extra"

	# Reinstall with an edited configuration: the secret and the edit stay.
	echo '# edited by package-test' >>"$fs/etc/qtunnel/server.yaml"
	out=$(dpkg_root -i "$deb" 2>&1) && ok "reinstall: dpkg --root=ROOT -i" || fail "reinstall: $out"
	status_is reinstall "install ok installed $version"
	secret_ok && [ "$(sha256sum <"$secret")" = "$secret_sum" ] && ! grep -q 'wrote a new secret' <<<"$out" &&
		ok "reinstall: the secret kept (same bytes, 0600 root:root)" || fail "reinstall: the secret changed (now: $(secret_desc)); postinst said: $out"
	[ "$(tail -1 "$fs/etc/qtunnel/server.yaml")" = '# edited by package-test' ] &&
		ok "reinstall: the edited server.yaml kept" || fail "reinstall: the edit of server.yaml is lost"

	# Upgrade to the same package with a higher version (repacked).
	up=$version+up1
	if dpkg-deb -R "$deb" "$root/up" && sed -i "s/^Version: .*/Version: $up/" "$root/up/DEBIAN/control" &&
		dpkg-deb -Zgzip -z1 -b "$root/up" "$root/up.deb" >/dev/null; then
		out=$(dpkg_root -i "$root/up.deb" 2>&1) && ok "upgrade to $up: dpkg --root=ROOT -i" || fail "upgrade to $up: $out"
		status_is upgrade "install ok installed $up"
		secret_ok && [ "$(sha256sum <"$secret")" = "$secret_sum" ] && ! grep -q 'wrote a new secret' <<<"$out" &&
			ok "upgrade: the secret kept" || fail "upgrade: the secret changed (now: $(secret_desc)); postinst said: $out"
		[ "$(tail -1 "$fs/etc/qtunnel/server.yaml")" = '# edited by package-test' ] &&
			ok "upgrade: the edited server.yaml kept" || fail "upgrade: the edit of server.yaml is lost"
	else
		fail "could not repack $deb as version $up"
	fi

	# Remove: the files go, the configuration and the secret stay.
	out=$(dpkg_root -r qtunnel 2>&1) && ok "dpkg --root=ROOT -r qtunnel" || fail "dpkg -r: $out"
	status_is remove "deinstall ok config-files $up"
	gone=1
	for f in /usr/bin/qtunnel /usr/lib/systemd/system/qtunnel.service /usr/lib/sysctl.d/99-qtunnel-udp.conf /usr/share/doc/qtunnel; do
		[ -e "$fs$f" ] && { fail "remove: $f is still there"; gone=0; }
	done
	[ $gone = 1 ] && ok "remove: binary, unit, sysctl snippet and docs gone"
	[ -f "$fs/etc/qtunnel/server.yaml" ] && secret_ok && [ "$(sha256sum <"$secret")" = "$secret_sum" ] &&
		ok "remove: /etc/qtunnel/server.yaml and the secret kept" || fail "remove: /etc/qtunnel not kept (secret: $(secret_desc))"

	# Purge: the configuration, the secret and the certificate the service
	# generated (what systemd leaves of StateDirectory= with DynamicUser=) go.
	mkdir -p "$fs/var/lib/private/qtunnel" && touch "$fs/var/lib/private/qtunnel/cert.pem" && ln -s private/qtunnel "$fs/var/lib/qtunnel"
	out=$(dpkg_root -P qtunnel 2>&1) && ok "dpkg --root=ROOT -P qtunnel" || fail "dpkg -P: $out"
	st=$(q -W -f='${Status}' qtunnel)
	[ -z "$st" ] || [ "$st" = "unknown ok not-installed" ] && ok "purge: dpkg no longer knows qtunnel" || fail "purge: dpkg-query says '$st'"
	left=$(cd "$fs" && ls -d etc/qtunnel var/lib/qtunnel var/lib/private/qtunnel 2>/dev/null)
	[ -z "$left" ] && ok "purge: /etc/qtunnel (secret included) and /var/lib/private/qtunnel (the certificate) gone" ||
		fail "purge left: $left"
	listing >"$root/purged"
	extra=$(comm -3 "$root/before" "$root/purged" | grep -v '^\s*/var/lib/private$')
	[ -z "$extra" ] && ok "purge: the root is as before the install" || fail "purge: the root differs from before the install: $extra"

	# An install over a secret already there keeps it.
	mkdir -p "$fs/etc/qtunnel" && echo preexisting-secret-of-package-test-0123456789 >"$secret" && chmod 600 "$secret"
	secret_sum=$(sha256sum <"$secret")
	out=$(dpkg_root -i "$deb" 2>&1) && ok "install over an existing secret" || fail "install over an existing secret: $out"
	secret_ok && [ "$(sha256sum <"$secret")" = "$secret_sum" ] && ! grep -q 'wrote a new secret' <<<"$out" &&
		ok "install: an existing secret kept" || fail "install: the existing secret was replaced (now: $(secret_desc)); postinst said: $out"
fi

[ $failed = 0 ] && echo "package-test: all checks passed" || echo "package-test: FAILED"
exit $failed
