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
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}

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
utc_offset_minutes = 420

[detect]
model = "$ROOT/models/nanodet-g-416.toml"
fps = 5
classes = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]

[[cameras]]
id = "vtest"
name = "Pedestrians (OpenCV vtest.avi)"
url = "rtsp://127.0.0.1:$PORT/vtest"

# The line and zone of tests/data/vtest_ground_truth.toml.
[cameras.analytics]
counts_interval_sec = 60
[[cameras.analytics.zones]]
name = "west_end"
points = [[0.02, 0.32], [0.143, 0.32], [0.143, 0.48], [0.02, 0.48]]
[[cameras.analytics.lines]]
name = "walkway_west"
points = [[0.21, 0.31], [0.21, 0.50]]
in_side = "right"
[[cameras.analytics.rules]]
name = "people crossing the west walkway"
kind = "line_crossing"
line = "walkway_west"
classes = ["person"]
[[cameras.analytics.rules]]
name = "someone at the west end"
kind = "intrusion"
zone = "west_end"
classes = ["person"]
severity = "warning"
[[cameras.analytics.rules]]
name = "lingering at the west end"
kind = "loitering"
zone = "west_end"
classes = ["person"]
min_duration_sec = 5
severity = "warning"
[[cameras.analytics.rules]]
name = "camera covered or moved"
kind = "camera_tamper"
severity = "critical"
[[cameras.analytics.rules]]
name = "camera offline"
kind = "camera_offline"
min_duration_sec = 30
severity = "critical"

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
