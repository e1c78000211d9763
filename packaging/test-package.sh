#!/usr/bin/env bash
# make package-test: checks the .deb that make release built for this
# machine's architecture (dist/qtunnel_*_ARCH.deb): installed with
# dpkg --root into a throwaway root (as root; otherwise only unpacked with
# dpkg-deb -x), its binary prints the version the tree describes, the unit,
# the configuration (qtunnel -check-config), the sysctl snippet and the
# maintainer scripts are there and right, the unit carries its hardening, and
# systemd-analyze (when installed) verifies it and scores its exposure. Then,
# in that root: reinstall, upgrade, remove, purge, and what each leaves.
# The .rpm of the same architecture (dist/qtunnel-*.RPMARCH.rpm; RPM=path
# for another) is read with rpm -qp and compared with the .deb, then
# installed with rpm --root into a throwaway root, reinstalled and erased
# (when rpm is installed: apt-get install rpm).
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
make_root() { # [dir], by default $fs
	local fs=${1:-$fs} l tools
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

# The .rpm, made by nfpm from the same nfpm.yaml: read with rpm -qp (when
# rpm is installed: apt-get install rpm), compared with the .deb, and, as
# root, installed with rpm --root into a throwaway root of its own (with its
# scriptlets, which rpm runs chrooted in it, as dpkg does), reinstalled and
# erased.
case $arch in amd64) rpm_arch=x86_64 ;; arm64) rpm_arch=aarch64 ;; *) rpm_arch=$arch ;; esac
# shellcheck disable=SC2206
rpms=(${RPM:-dist/qtunnel-*."$rpm_arch".rpm})
if ! command -v rpm >/dev/null; then
	echo "skip: rpm not installed (apt-get install rpm): the .rpm is not checked"
elif [ ! -f "${rpms[0]}" ] || [ ${#rpms[@]} != 1 ]; then
	fail "want one dist/qtunnel-*.$rpm_arch.rpm, found: ${rpms[*]}"
else
	rpm=${rpms[0]}
	echo "== $rpm"
	rq() { rpm -qp "$@" "$rpm" 2>&1; }
	s=$(rq --qf '%{NAME} %{VERSION}-%{RELEASE} %{ARCH} %{OS}')
	[ "$s" = "qtunnel $(dpkg-deb -f "$deb" Version) $rpm_arch linux" ] &&
		ok "rpm: name, version-release and architecture those of the .deb: $s" ||
		fail "rpm: '$s', want 'qtunnel $(dpkg-deb -f "$deb" Version) $rpm_arch linux'"
	out=$(rpm -K "$rpm" 2>&1) && ok "rpm -K: ${out#"$rpm": }" || fail "rpm -K: $out"
	# The same files as the .deb, byte for byte, with the same modes; every
	# one root's.
	mkdir -p "$root/rpmx" "$root/debx"
	rpm2archive - <"$rpm" | tar -xzf - -C "$root/rpmx" && dpkg-deb -x "$deb" "$root/debx" || fail "could not unpack $rpm and $deb"
	files() { (cd "$1" && find . -type f -printf '%m %P\n' | sort); }
	if [ -n "$(files "$root/rpmx")" ] && d=$(diff <(files "$root/debx") <(files "$root/rpmx")); then
		same=1
		while read -r _ f; do cmp -s "$root/debx/$f" "$root/rpmx/$f" || { same=0; fail "rpm: /$f differs from the .deb's"; }; done < <(files "$root/rpmx")
		[ $same = 1 ] && ok "rpm: the .deb's files, byte for byte, same modes: $(files "$root/rpmx" | awk '{ printf "/%s %s, ", $2, $1 }')"
	else
		fail "rpm: its files and modes differ from the .deb's (< deb, > rpm): $d"
	fi
	s=$(rq --qf '[%{FILEUSERNAME}:%{FILEGROUPNAME}\n]' | sort -u | tr '\n' ' ')
	[ "$s" = "root:root " ] && ok "rpm: every file root:root" || fail "rpm: owners $s"
	s=$(rq --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' | grep '^d' | tr '\n' ' ')
	[ "$s" = "drwxr-xr-x /etc/qtunnel drwxr-xr-x /usr/share/doc/qtunnel " ] &&
		ok "rpm: owns its directories (755): /etc/qtunnel, /usr/share/doc/qtunnel" || fail "rpm: directories: '$s'"
	# %config(noreplace) for the configuration only: the unit is the
	# package's in /usr/lib, replaced on upgrade (overrides go to /etc).
	s=$(rq --qf '[%{FILEFLAGS:fflags}:%{FILENAMES}\n]' | grep '^[a-z]*c[a-z]*:' | tr ':\n' '  ')
	[ "$s" = "cn /etc/qtunnel/server.yaml " ] && ok "rpm: %config(noreplace) /etc/qtunnel/server.yaml only (flags: $s)" ||
		fail "rpm: config files '$s', want 'cn /etc/qtunnel/server.yaml' only"
	# The scriptlets: the .deb's maintainer scripts (packaging/linux/*.sh),
	# run by /bin/sh.
	for x in POSTIN:post:postinst PREUN:preun:prerm POSTUN:postun:postrm; do
		IFS=: read -r tag name m <<<"$x"
		s=$(rq --qf "%{${tag}PROG}")
		if [ "$s" = /bin/sh ] && diff <(rq --qf "%{$tag}") "$root/DEBIAN/$m" >/dev/null; then
			ok "rpm: its %$name scriptlet (/bin/sh) is the .deb's $m"
		else
			fail "rpm: its %$name scriptlet ($s) is not the .deb's $m"
		fi
	done
	s=$(rq --qf '%{PRETRANS}%{PREIN}%{POSTTRANS}%{TRIGGERSCRIPTS}')
	[ "$s" = "(none)(none)(none)(none)" ] && ok "rpm: no other scriptlet or trigger" || fail "rpm: other scriptlets: $s"
	s=$(rq --requires | grep -v '^rpmlib(' | tr '\n' ' ')
	[ -z "$s" ] && ok "rpm: requires nothing but rpmlib features (Fedora and RHEL have /usr/bin/kill in util-linux-core)" || fail "rpm: requires $s"
	s=$(rq --provides | tr '\n' ' ')
	[[ $s == "qtunnel = $(rq --qf '%{VERSION}-%{RELEASE}') "* ]] && ok "rpm: provides $s" || fail "rpm: provides '$s'"

	if [ "$(id -u)" = 0 ] && command -v dash >/dev/null; then
		rfs=$root/rpmroot
		# --nodeps: the root has no packages (the .rpm requires none, as
		# checked above).
		rpm_root() { rpm --root="$rfs" --dbpath=/var/lib/rpm "$@"; }
		if make_root "$rfs" && rpm_root --initdb; then
			(cd "$rfs" && find . | sed 's/^\.//' | grep -v '^/var/lib/rpm' | sort) >"$root/rpm-before"
			if out=$(rpm_root -i --nodeps "$rpm" 2>&1); then
				ok "rpm --root=ROOT -i $(basename "$rpm") (scriptlets run chrooted in it)"
			else
				fail "rpm --root=ROOT -i: $out"
			fi
			s=$(rpm_root -q qtunnel 2>&1)
			[ "$s" = "$(basename "$rpm" .rpm)" ] && ok "rpm -q: $s" || fail "rpm -q qtunnel: $s"
			s=$(rpm_root -V --nodeps qtunnel 2>&1)
			[ -z "$s" ] && ok "rpm -V: every file as packaged (digest, mode, owner, time)" || fail "rpm -V: $s"
			for f in /usr/bin/qtunnel /usr/lib/systemd/system/qtunnel.service /etc/qtunnel/server.yaml; do
				s=$(rpm_root -qf "$f" 2>&1)
				[ "$s" = "$(basename "$rpm" .rpm)" ] || fail "rpm -qf $f: $s"
			done
			rsecret=$rfs/etc/qtunnel/secret
			if [ "$(stat -c '%a %U:%G' "$rsecret" 2>&1)" = "600 root:root" ] && grep -q 'wrote a new secret' <<<"$out"; then
				ok "rpm: the post-install scriptlet made /etc/qtunnel/secret (600 root:root)"
			else
				fail "rpm: no new secret 600 root:root ($(stat -c '%a %U:%G' "$rsecret" 2>&1)); rpm said: $out"
			fi
			rsum=$( (sha256sum <"$rsecret") 2>/dev/null)
			cmp -s /etc/passwd "$rfs/etc/passwd" && cmp -s /etc/group "$rfs/etc/group" && ok "rpm: no user or group added" ||
				fail "rpm: passwd or group changed"
			# A reinstall (rpm -U --replacepkgs: post-install with 2,
			# the old instance's pre- and post-uninstall with 1) keeps
			# the secret and an edit of the configuration.
			echo '# edited by package-test' 2>/dev/null >>"$rfs/etc/qtunnel/server.yaml"
			out=$(rpm_root -U --replacepkgs --nodeps "$rpm" 2>&1) && ok "rpm -U --replacepkgs (reinstall)" || fail "rpm -U --replacepkgs: $out"
			[ -f "$rsecret" ] && [ "$( (sha256sum <"$rsecret") 2>&1)" = "$rsum" ] &&
				[ "$(tail -1 "$rfs/etc/qtunnel/server.yaml" 2>&1)" = '# edited by package-test' ] &&
				! grep -q 'wrote a new secret' <<<"$out" && [ ! -e "$rfs/etc/qtunnel/server.yaml.rpmnew" ] &&
				ok "rpm reinstall: the secret and the edited server.yaml kept" || fail "rpm reinstall: secret or server.yaml changed: $out"
			# Erase: the files go; the edited configuration is kept as
			# .rpmsave, the secret (not the package's) stays. Left too:
			# the directories rpm made for the files and does not own
			# (on Fedora the filesystem and systemd packages do), and
			# rpm's own /var/tmp.
			out=$(rpm_root -e qtunnel 2>&1) && ok "rpm -e qtunnel" || fail "rpm -e: $out"
			s=$(rpm_root -q qtunnel 2>&1)
			[ "$s" = "package qtunnel is not installed" ] && ok "rpm -q after -e: $s" || fail "rpm -q after -e: $s"
			(cd "$rfs" && find . | sed 's/^\.//' | grep -v '^/var/lib/rpm' | sort) >"$root/rpm-after"
			s=$(comm -3 "$root/rpm-before" "$root/rpm-after" | tr -d '\t' |
				grep -Evx '/usr/lib/sysctl.d|/usr/lib/systemd(/system)?|/usr/share(/doc)?|/var/tmp' | tr '\n' ' ')
			[ "$s" = "/etc/qtunnel /etc/qtunnel/secret /etc/qtunnel/server.yaml.rpmsave " ] &&
				ok "rpm -e: only /etc/qtunnel with the secret and server.yaml.rpmsave (the edited configuration) left" ||
				fail "rpm -e: left, beyond the root before the install: $s"
		else
			fail "could not make the throwaway root for rpm"
		fi
	else
		echo "skip: installing the .rpm with rpm --root needs root and dash"
	fi
fi

[ $failed = 0 ] && echo "package-test: all checks passed" || echo "package-test: FAILED"
exit $failed
