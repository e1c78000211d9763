#!/bin/sh
# qtunnel package: after removal. A removal keeps /etc/qtunnel (the secret,
# the configuration) and /var/lib/private/qtunnel (the certificate); a purge
# (deb: dpkg --purge, apt purge; rpm has none) removes them too.
set -e
case "$1" in
purge)
	# The secret the post-install script made, and the certificate the
	# service generated in its StateDirectory (with DynamicUser=,
	# /var/lib/qtunnel links to /var/lib/private/qtunnel). dpkg has already
	# removed server.yaml; /etc/qtunnel goes if nothing else is left in it.
	rm -f /etc/qtunnel/secret
	rm -rf /var/lib/private/qtunnel /var/lib/qtunnel
	rmdir /etc/qtunnel 2>/dev/null || true
	;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
