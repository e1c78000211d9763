#!/usr/bin/env bash
# screenshots.sh makes the desktop client's screenshots in docs/screenshots:
#
#   settings.png            the settings window, with sample settings
#   settings-invalid.png    the same after typing a server without a port
#   setup.png               the first-run setup window
#   tray-menu.png           the tray icon and its menu while connected
#   tray-menu-problem.png   the menu when there is a problem to report
#
# It runs cmd/uishots (the real UI on a canned controller: no engine,
# keyring or service) on a virtual X display (Xvfb), in a private D-Bus
# session whose StatusNotifierItem host is gtk-sni-tray-standalone, so the
# tray icon is real and its menu is the one a desktop shows. There is no
# window manager: windows have no title bar and are cropped by their
# geometry. The menu opens by clicking the tray icon with xdotool.
#
# Needs (Debian): xvfb dbus-x11 haskell-gtk-sni-tray-utils xdotool
# x11-utils imagemagick, and Fyne's build dependencies.
#
# Usage: scripts/screenshots.sh [OUTDIR]   (default ../docs/screenshots)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd) # client-gui

if [[ ${1:-} == --in-session ]]; then
	# Second stage, inside Xvfb and dbus-run-session.
	shift
	bin=$1 out=$2 work=$3
	pids=()
	stop() {
		local p
		for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
		for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
		pids=()
	}
	trap stop EXIT

	read -r sw sh < <(xdotool getdisplaygeometry)
	bar=32
	gtk-sni-tray-standalone --watcher --top --end --size "$bar" >"$work/tray.log" 2>&1 &
	tray=$!

	# window_geometry NAME prints "W H X Y" of the top-level window NAME
	# once it is mapped (up to 20 s).
	window_geometry() {
		local id
		id=$(timeout 20 xdotool search --sync --onlyvisible --name "^$1\$" | head -n1) || {
			echo "screenshots: no window named '$1'" >&2
			return 1
		}
		sleep 2 # let Fyne draw its first frames
		eval "$(xdotool getwindowgeometry --shell "$id")"
		echo "$WIDTH $HEIGHT $X $Y"
	}

	# popup_geometry prints "W H X Y" of the SNI host's open menu: a
	# top-level window of the host that is neither its bar nor tiny.
	popup_geometry() {
		xwininfo -root -tree | awk -v sw="$sw" '
			/"gtk-sni-tray-standalone": \("gtk-sni-tray-standalone"/ {
				for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+x[0-9]+\+-?[0-9]+\+-?[0-9]+$/) g = $i
				split(g, a, /[x+]/)
				if (a[1] > 60 && a[2] > 60 && a[1] != sw) { print a[1], a[2], a[3], a[4]; exit }
			}'
	}

	# shoot_menu FILE opens the tray menu by clicking the icon (the
	# only one, at the bar's end) and saves the menu with the icon.
	shoot_menu() {
		local g="" try
		for try in 1 2 3 4 5; do
			xdotool mousemove $((sw - bar / 2)) $((bar / 2)) click 1
			sleep 2
			g=$(popup_geometry)
			[[ -n $g ]] && break
		done
		if [[ -z $g ]]; then
			echo "screenshots: the tray menu did not open" >&2
			return 1
		fi
		local w h x y
		read -r w h x y <<<"$g"
		# From the menu's left edge to the screen's right edge, from the
		# top (the bar with the icon) to below the menu.
		local cx=$((x - 16)) ch=$((y + h + 16))
		import -window root -crop "$((sw - cx))x${ch}+${cx}+0" +repage "$1"
		xdotool mousemove $((sw - bar / 2)) $((bar / 2)) click 1 # close it
		sleep 1
	}

	# crop_window FILE W H X Y saves that part of the screen.
	crop_window() {
		import -window root -crop "${2}x${3}+${4}+${5}" +repage "$1"
	}

	# 1. Connected, settings open: settings.png and tray-menu.png.
	"$bin" -settings >"$work/app1.log" 2>&1 &
	pids+=($!)
	read -r w h x y < <(window_geometry "QTunnel settings")
	crop_window "$out/settings.png" "$w" "$h" "$x" "$y"
	# The window sits at 0,0 (no window manager), over the bar's left
	# part only: the icon and its menu are at the right end.
	shoot_menu "$out/tray-menu.png"
	# Retype the server without a port: the error shows under it. The
	# Server entry is the first row, right of its label.
	xdotool mousemove $((x + w / 2)) $((y + 21)) click 1
	sleep 0.5
	xdotool key ctrl+a
	xdotool type --delay 30 "vps.example.com"
	sleep 1
	crop_window "$out/settings-invalid.png" "$w" "$h" "$x" "$y"
	stop

	# 2. A problem: tray-menu-problem.png.
	"$bin" -problem >"$work/app2.log" 2>&1 &
	pids+=($!)
	sleep 4 # no window to wait for: give the icon time to register
	shoot_menu "$out/tray-menu-problem.png"
	stop

	# 3. First run: setup.png.
	"$bin" -setup >"$work/app3.log" 2>&1 &
	pids+=($!)
	read -r w h x y < <(window_geometry "Set up QTunnel")
	crop_window "$out/setup.png" "$w" "$h" "$x" "$y"
	stop

	kill "$tray" 2>/dev/null || true
	wait "$tray" 2>/dev/null || true
	exit 0
fi

out=${1:-$here/../docs/screenshots}
for t in go Xvfb dbus-run-session gtk-sni-tray-standalone xdotool xwininfo import; do
	command -v "$t" >/dev/null || {
		echo "screenshots: $t is missing (see the top of $0)" >&2
		exit 1
	}
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
xvfb=""
cleanup() {
	if [[ -n $xvfb ]]; then
		kill "$xvfb" 2>/dev/null || true
		wait "$xvfb" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$here" && go build -o "$work/uishots" ./cmd/uishots)

# A display number nobody uses.
n=90
while [[ -e /tmp/.X$n-lock || -e /tmp/.X11-unix/X$n ]]; do n=$((n + 1)); done
Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb=$!
export DISPLAY=":$n"
for _ in $(seq 50); do
	xdotool getdisplaygeometry >/dev/null 2>&1 && break
	sleep 0.2
done
# A real locale keeps Fyne from complaining about "C"; a fixed scale and
# theme keep the pictures the same from run to run.
export LANG=C.UTF-8 FYNE_SCALE=1 FYNE_THEME=dark
dbus-run-session -- "$0" --in-session "$work/uishots" "$out" "$work" || {
	echo "screenshots: failed; logs:" >&2
	tail -n 20 "$work"/*.log >&2 || true
	exit 1
}
ls -l "$out"
