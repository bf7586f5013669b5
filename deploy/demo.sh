#!/usr/bin/env bash
# `make demo`: the whole system on one machine, on loopback only:
#   - the bundled footage served as two live RTSP cameras,
#   - mosquitto with a password per client and an ACL (the agent writes only
#     its own topics),
#   - the agent pulling, decoding, detecting, applying the line/zone rules and
#     publishing incidents through its durable outbox,
#   - the collector storing them (SQLite) and serving the operator console.
# It prints the console URL and a freshly generated operator password.
# Ctrl-C stops everything. State lives in .deps/demo/ (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/debug
DEMO=$ROOT/.deps/demo
mkdir -p "$DEMO"
# The configs written below hold the demo's MQTT passwords: readable by this user only.
umask 077
PORT=${IOC_DEMO_RTSP_PORT:-8554}
MQTT_PORT=${IOC_DEMO_MQTT_PORT:-18830}
HTTP_PORT=${IOC_DEMO_HTTP_PORT:-8080}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}

"$BIN/ioc-rtsp-server" --port "$PORT" \
  --mount "/vtest=$ROOT/.deps/footage/vtest_h264.mp4:h264:loop" \
  --mount "/synthetic=$ROOT/.deps/footage/synthetic_1080p_h265.mp4:h265:loop" &
PIDS=($!)
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# --- broker: per-client passwords and ACL, loopback only ---------------------
secret() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }
[ -f "$DEMO/agent.secret" ] || secret > "$DEMO/agent.secret"
[ -f "$DEMO/collector.secret" ] || secret > "$DEMO/collector.secret"
: > "$DEMO/passwd"
mosquitto_passwd -b "$DEMO/passwd" demo-site "$(cat "$DEMO/agent.secret")"
mosquitto_passwd -b "$DEMO/passwd" collector "$(cat "$DEMO/collector.secret")"
chmod 600 "$DEMO/passwd"
cat > "$DEMO/acl" <<ACL
user demo-site
topic write ioc/v1/agents/demo-site/status
topic write ioc/v1/agents/demo-site/cameras/+/status
topic write ioc/v1/agents/demo-site/events
topic write ioc/v1/agents/demo-site/snapshots/+
topic write ioc/v1/agents/demo-site/clips/+
topic write ioc/v1/agents/demo-site/counts
topic write ioc/v1/agents/demo-site/previews/+
topic write ioc/v1/agents/demo-site/analytics-state/+
topic read ioc/v1/agents/demo-site/acks
topic read ioc/v1/agents/demo-site/preview-requests
topic read ioc/v1/agents/demo-site/analytics/+

user collector
topic read ioc/#
topic write ioc/v1/agents/+/acks
topic write ioc/v1/agents/+/preview-requests
topic write ioc/v1/agents/+/analytics/+
ACL
cat > "$DEMO/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous false
password_file $DEMO/passwd
acl_file $DEMO/acl
use_username_as_clientid true
persistence true
persistence_location $DEMO/
# QoS 1 messages beyond a subscriber's queue limit would be dropped (the outbox
# would re-send them, but there is no reason to make it). Bounded: see config/mosquitto.conf.
max_queued_messages 100000
max_inflight_messages 1000
max_inflight_bytes 33554432
max_queued_bytes 536870912
user $(id -un)
CONF
mosquitto -c "$DEMO/mosquitto.conf" > "$DEMO/mosquitto.log" 2>&1 &
PIDS+=($!)

# --- collector ---------------------------------------------------------------
cat > "$DEMO/collector.toml" <<TOML
# Written by deploy/demo.sh.
[mqtt]
host = "127.0.0.1"
port = $MQTT_PORT
client_id = "demo-collector"
username = "collector"
password = "$(cat "$DEMO/collector.secret")"
[store]
path = "$DEMO/collector/ioc.db"
snapshot_dir = "$DEMO/collector/snapshots"
[http]
listen = "127.0.0.1:$HTTP_PORT"
[reports]
dir = "$DEMO/collector/reports"
utc_offset_minutes = 420
TOML
OPERATOR_LINE=$("$BIN/ioc-collector" user add --config "$DEMO/collector.toml" --name operator --role operator)
ADMIN_LINE=$("$BIN/ioc-collector" user add --config "$DEMO/collector.toml" --name admin --role admin)
RUST_LOG=${RUST_LOG:-info} "$BIN/ioc-collector" run --config "$DEMO/collector.toml" > "$DEMO/collector.log" 2>&1 &
PIDS+=($!)

cat > "$DEMO/agent.toml" <<TOML
# Written by deploy/demo.sh.
[agent]
id = "demo-site"
name = "Trạm thử nghiệm / Demo site"
log_detections = false   # true logs every frame's detections (debugging)
utc_offset_minutes = 420

[detect]
model = "$ROOT/models/nanodet-g-416.toml"
fps = 5
classes = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]

[mqtt]
host = "127.0.0.1"
port = $MQTT_PORT
username = "demo-site"
password = "$(cat "$DEMO/agent.secret")"

[outbox]
path = "$DEMO/outbox.db"

[metrics]
listen = "127.0.0.1:${IOC_DEMO_METRICS_PORT:-9464}"

[[cameras]]
id = "vtest"
name = "Pedestrians (OpenCV vtest.avi)"
url = "rtsp://127.0.0.1:$PORT/vtest"

# Zones, lines and rules of this scene: one file, shared with the end-to-end tests.
analytics_file = "$ROOT/config/scenes/vtest.toml"

[[cameras]]
id = "synthetic-1080p"
name = "Synthetic 1080p25 H.265"
url = "rtsp://127.0.0.1:$PORT/synthetic"
detect_fps = 1
TOML

sleep 1
cat <<MSG

  Console:   http://127.0.0.1:$HTTP_PORT/
  Log in as: $OPERATOR_LINE
  or, to edit zones and rules (Health → Edit zones & rules): $ADMIN_LINE
  (in the vtest camera, someone lingering at the west end becomes a warning within a minute;
   people crossing the walkway are counted: Charts, or "with counts" in the list)
  Metrics:   http://127.0.0.1:${IOC_DEMO_METRICS_PORT:-9464}/metrics (agent), /metrics on the console (collector, token or login)

  RTSP cameras: rtsp://127.0.0.1:$PORT/vtest, rtsp://127.0.0.1:$PORT/synthetic
  Configs and logs: $DEMO/ (collector.log, mosquitto.log); Ctrl-C stops everything.

MSG
"$BIN/ioc-agent" run --config "$DEMO/agent.toml" --summary-every 10
