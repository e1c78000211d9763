#!/usr/bin/env bash
# profile.sh: CPU and allocation profiles of a qtunnel client and server under
# bulk load on loopback (iperf3 through the tunnel), for docs/performance.md.
#
#   bench/profile.sh [SECONDS] [OUTDIR] [extra qtunnel flags...]
#
# Writes OUTDIR/{client,server}.cpu.pprof and .allocs.pprof and a top-25
# summary of each (OUTDIR defaults to bench/tmp/profile). Needs iperf3.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}; out=${2:-bench/tmp/profile}; shift $(( $# > 2 ? 2 : $# )) || true
extra=("$@")
command -v iperf3 >/dev/null || { echo "profile.sh: iperf3 is missing (apt-get install iperf3)" >&2; exit 1; }
make -s build
mkdir -p "$out"
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/secret"; chmod 600 "$dir/secret"
iperf3 -s -p 25301 >/dev/null 2>&1 & pids+=($!)
bin/qtunnel -listen=127.0.0.1:25302 -backend=127.0.0.1:25301 -secret-file="$dir/secret" -quic=true \
  -state-dir="$dir/state" -log-level=warn -pprof=127.0.0.1:25311 "${extra[@]}" & pids+=($!)
sleep 0.3
bin/qtunnel -listen=127.0.0.1:25303 -backend=127.0.0.1:25302 -clientmode=true -secret-file="$dir/secret" \
  -quic=true -log-level=warn -pprof=127.0.0.1:25312 "${extra[@]}" & pids+=($!)
sleep 1
iperf3 -c 127.0.0.1 -p 25303 -t $((secs + 4)) -f m > "$out/iperf3.txt" &
ip=$!
sleep 2
curl -s -o "$out/server.cpu.pprof" "http://127.0.0.1:25311/debug/pprof/profile?seconds=$secs" &
sc=$!
curl -s -o "$out/client.cpu.pprof" "http://127.0.0.1:25312/debug/pprof/profile?seconds=$secs"
wait "$sc"
curl -s -o "$out/server.allocs.pprof" "http://127.0.0.1:25311/debug/pprof/allocs"
curl -s -o "$out/client.allocs.pprof" "http://127.0.0.1:25312/debug/pprof/allocs"
wait "$ip"
tail -4 "$out/iperf3.txt"
for side in client server; do
  go tool pprof -top -nodecount=25 bin/qtunnel "$out/$side.cpu.pprof" > "$out/$side.cpu.top.txt" 2>/dev/null
  go tool pprof -top -nodecount=25 -sample_index=alloc_space bin/qtunnel "$out/$side.allocs.pprof" > "$out/$side.allocs.top.txt" 2>/dev/null
done
echo "profiles in $out"
