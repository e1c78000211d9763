#!/bin/sh
# qtunnel package: after install or upgrade (deb: "configure"; rpm: 1 or 2).
set -e
# A secret of its own for this server, made once, root's only (mode 0600);
# qtunnel.service gets a copy through LoadCredential.
if [ ! -e /etc/qtunnel/secret ]; then
	/usr/bin/qtunnel -generate-secret -secret-file=/etc/qtunnel/secret >/dev/null
	echo "qtunnel: wrote a new secret to /etc/qtunnel/secret; copy it to the clients (mode 0600)"
fi
# The UDP buffer sizes QUIC wants, now rather than at the next boot.
if command -v sysctl >/dev/null 2>&1; then
	sysctl -q -p /usr/lib/sysctl.d/99-qtunnel-udp.conf >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running server; a first install starts nothing:
	# set the backend in /etc/qtunnel/server.yaml, then
	# systemctl enable --now qtunnel.
	systemctl try-restart qtunnel.service >/dev/null 2>&1 || true
fi
exit 0
