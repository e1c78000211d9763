#!/bin/sh
# qtunnel package: before removal (deb: "remove"; rpm: 0 when the last
# version goes, 1 on an upgrade, which must leave the service alone).
set -e
case "$1" in
remove|0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now qtunnel.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
