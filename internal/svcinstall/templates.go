package svcinstall

// The service definitions are in kardianos's own template language (not
// text/template): {{Key}}, {{Key | fn}}, {{if Key}}…{{end}},
// {{range Key}}…{{.}}…{{end}}, with the keys its backends pass. For
// systemd: Description, Path, Name, Arguments, EnvVars, … and the
// functions cmd (double-quote) and cmdEscape (spaces as \x20); for System
// V: Description, DisplayName, Path, Arguments, WorkingDirectory,
// LogDirectory, EnvVars. CheckArg has made sure that no argument holds a
// character either would interpret.

// SystemdUnit is the unit qtunnel -install-service writes on systemd, at
// /etc/systemd/system/NAME.service. It is packaging/linux/qtunnel.service
// with what a hand-installed service cannot have taken out: no
// DynamicUser and no LoadCredential (the secret and configuration files
// are wherever the command line names them, so the service runs as root
// and reads them there), and a file system that is read-only for /usr,
// /etc and /boot (ProtectSystem=full) and for home directories, not all
// of it (the default state directory /var/lib/qtunnel and control socket
// /run/qtunnel/server.sock of a root qtunnel stay writable). Root keeps
// one capability, binding ports below 1024: it cannot read files that
// root does not own unless others may read them, nor change owners, load
// modules, trace processes, or gain privileges.
const SystemdUnit = `# Installed by qtunnel -install-service; remove it with qtunnel -uninstall-service.
# It runs as root with one capability (binding ports below 1024): the files
# on its command line must be root's. Check with: systemd-analyze security {{Name}}
[Unit]
Description={{Description}}
Documentation=https://github.com/qtunnel/qtunnel
ConditionFileIsExecutable={{Path | cmdEscape}}
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=exec
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
# SIGTERM drains open connections for -drain-timeout (10 s by default).
TimeoutStopSec=30s
{{range EnvVars}}{{.}}
{{end}}
# Root, without root's powers but one.
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

# The file system: /usr, /etc, /boot and home directories read only; no
# /tmp of others, no devices.
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
UMask=0077

# The kernel: IP sockets, the control socket, netlink (network changes);
# no namespaces, no writable executable memory, the system calls of an
# ordinary service only.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`

// SysvScript is the init script qtunnel -install-service writes where
// there is no systemd (/etc/init.d/NAME): kardianos's own, but the command
// line is written inside double quotes and never globbed, the process
// gets 30 s to drain on stop (kardianos's waits 10 s, qtunnel's default
// drain time), start waits a second to catch a program that exits at
// once, a zombie does not count as running, the logs are created mode
// 0600, "reload" sends SIGHUP, and "status" exits 3 when stopped (LSB).
const SysvScript = `#!/bin/sh
# Installed by qtunnel -install-service; remove it with qtunnel -uninstall-service.
# chkconfig: 2345 99 01
# description: {{Description}}
### BEGIN INIT INFO
# Provides:          {{DisplayName}}
# Required-Start:    $network $remote_fs
# Required-Stop:     $network $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: {{Description}}
### END INIT INFO

# No argument holds white space, quotes, $, %, \ or a backquote (qtunnel
# checked), so $cmd is split on spaces only; set -f keeps it from globbing.
cmd="{{Path}}{{range Arguments}} {{.}}{{end}}"

name=$(basename "$(readlink -f "$0")")
pid_file="/var/run/$name.pid"
stdout_log="{{LogDirectory}}/$name.log"
stderr_log="{{LogDirectory}}/$name.err"
# On SIGTERM qtunnel lets open connections finish for -drain-timeout (10 s).
stop_wait=30
{{range EnvVars}}{{.}}
{{end}}
is_running() {
    [ -f "$pid_file" ] || return 1
    pid=$(cat "$pid_file")
    [ -r "/proc/$pid/stat" ] || return 1
    # The state follows the last ")" of /proc/PID/stat; Z is a zombie.
    state=$(sed 's/.*) //' "/proc/$pid/stat" | cut -c1)
    [ "$state" != Z ]
}

case "$1" in
    start)
        if is_running; then
            echo "Already started"
            exit 0
        fi
        echo "Starting $name"
        cd / || exit 1
        umask 077
        set -f
        $cmd >>"$stdout_log" 2>>"$stderr_log" </dev/null &
        echo $! >"$pid_file"
        sleep 1
        if ! is_running; then
            echo "Unable to start, see $stderr_log"
            rm -f "$pid_file"
            exit 1
        fi
    ;;
    stop)
        if ! is_running; then
            echo "Not running"
            rm -f "$pid_file"
            exit 0
        fi
        printf "Stopping %s" "$name"
        kill "$(cat "$pid_file")"
        i=0
        while is_running && [ "$i" -lt "$stop_wait" ]; do
            printf "."
            sleep 1
            i=$((i + 1))
        done
        echo
        if is_running; then
            echo "Not stopped after $stop_wait s"
            exit 1
        fi
        rm -f "$pid_file"
        echo "Stopped"
    ;;
    restart)
        "$0" stop || exit 1
        "$0" start
    ;;
    reload)
        if ! is_running; then
            echo "Not running"
            exit 7
        fi
        kill -HUP "$(cat "$pid_file")"
    ;;
    status)
        if is_running; then
            echo "Running"
        else
            echo "Stopped"
            exit 3
        fi
    ;;
    *)
        echo "Usage: $0 {start|stop|restart|reload|status}"
        exit 2
    ;;
esac
exit 0
`
