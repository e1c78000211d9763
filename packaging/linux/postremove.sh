#!/bin/sh
# qtunnel package: after removal. /etc/qtunnel (the secret, the
# configuration) and /var/lib/private/qtunnel (the certificate) are kept.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
