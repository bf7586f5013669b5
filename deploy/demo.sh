#!/usr/bin/env bash
# `make demo`: the bundled footage served as two live RTSP cameras on
# 127.0.0.1, and the agent pulling, decoding and detecting on both, logging
# detections and a health summary. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/debug
DEMO=$ROOT/.deps/demo
mkdir -p "$DEMO"
PORT=${IOC_DEMO_RTSP_PORT:-8554}

"$BIN/ioc-rtsp-server" --port "$PORT" \
  --mount "/vtest=$ROOT/.deps/footage/vtest_h264.mp4:h264:loop" \
  --mount "/synthetic=$ROOT/.deps/footage/synthetic_1080p_h265.mp4:h265:loop" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT INT TERM

cat > "$DEMO/agent.toml" <<TOML
# Written by deploy/demo.sh.
[agent]
id = "demo-site"
log_detections = true

[detect]
model = "$ROOT/models/nanodet-g-416.toml"
fps = 5
classes = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]

[[cameras]]
id = "vtest"
name = "Pedestrians (OpenCV vtest.avi)"
url = "rtsp://127.0.0.1:$PORT/vtest"

[[cameras]]
id = "synthetic-1080p"
name = "Synthetic 1080p25 H.265"
url = "rtsp://127.0.0.1:$PORT/synthetic"
detect_fps = 1
TOML

echo "RTSP cameras: rtsp://127.0.0.1:$PORT/vtest and rtsp://127.0.0.1:$PORT/synthetic"
echo "Agent config: $DEMO/agent.toml (Ctrl-C to stop)"
sleep 1
"$BIN/ioc-agent" run --config "$DEMO/agent.toml" --summary-every 10
