#!/bin/bash
# Peak RSS and detection rate of `ioc-agent run` on N live copies of vtest (default 4) at
# 5 detection fps, A/B against glibc's default malloc arenas, alternating, same script:
#   bash benches/agent-rss.sh [rounds] [cameras]
# Needs the built binaries (cargo build -p ioc-agent -p ioc-rtsp-server --bins; release with
# BIN=target/release) and `make setup` (footage, ONNX Runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3} CAMS=${2:-4} BIN=${BIN:-target/debug}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so.1.31.1}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/ioc-rtsp-server" --port "$PORT" --mount "vtest=$PWD/.deps/footage/vtest_h264.mp4:h264:loop" >/dev/null 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null' EXIT
sleep 2
D=$(mktemp -d)
{
  printf '[agent]\nid = "bench"\nlog_detections = false\n[detect]\nmodel = "%s"\nfps = 5\n' "$PWD/models/nanodet-g-416.toml"
  for i in $(seq 0 $((CAMS - 1))); do
    printf '[[cameras]]\nid = "cam%s"\nurl = "rtsp://127.0.0.1:%s/vtest"\n' "$i" "$PORT"
  done
} > "$D/agent.toml"
one() { # $1: label, rest: env
  local label=$1; shift
  env "$@" NO_COLOR=1 RUST_LOG=info,retina=warn "$BIN/ioc-agent" run --config "$D/agent.toml" --summary-every 4 > "$D/out.log" 2>&1 &
  local ag=$! max=0 r
  for t in $(seq 1 60); do
    sleep 0.5
    if [ "$t" -gt 24 ]; then # after 12 s of warm-up
      r=$(awk '/VmRSS/{print $2}' "/proc/$ag/status" 2>/dev/null || true)
      if [ -n "$r" ] && [ "$r" -gt "$max" ]; then max=$r; fi
    fi
  done
  kill $ag; wait $ag 2>/dev/null || true
  echo "$label RSS $((max / 1024)) MiB, $(grep 'detector health' "$D/out.log" | tail -1 | grep -o 'inferences_per_s="[0-9.]*"')"
}
for r in $(seq 1 "$ROUNDS"); do
  one "glibc default arenas (MALLOC_ARENA_MAX=16):" MALLOC_ARENA_MAX=16
  one "agent default (2 arenas):                " X=1
done
