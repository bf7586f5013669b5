#!/usr/bin/env bash
# Re-makes the committed model variants (models/make_variants.py says what and why):
#   nanodet_g_416_coco.onnx       float, any input size (multiples of 32)
#   nanodet_g_416_coco_int8.onnx  its INT8 twin
# from the float file as tf2onnx wrote it (sha256 below, PROVENANCE.md). Needs `make setup`
# (GStreamer, the footage), a release build of ioc-eval (made here) and PyPI; prints the
# sha256 values for nanodet-g-416.toml. A developer's tool: nothing at set-up, build or run
# time calls it.
#
#   bash models/make-variants.sh ORIGINAL_FLOAT.onnx
set -euo pipefail
cd "$(dirname "$0")/.."
ORIG=${1:?usage: make-variants.sh ORIGINAL_FLOAT.onnx (the tf2onnx output, sha256 b15c8751…)}
ORIG_SHA256=b15c87513a83017c8dce97dad8c9162a56e3d00c84ed8827aba8f0397780bc07
echo "$ORIG_SHA256  $ORIG" | sha256sum -c --quiet
FOOTAGE=${IOC_FOOTAGE_DIR:-.deps/footage}
[ -s "$FOOTAGE/vtest.avi" ] || { echo "$FOOTAGE/vtest.avi missing: run make setup" >&2; exit 1; }
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so.1.31.1}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet onnxruntime==1.31.1 onnx==1.23.2 numpy==2.4.6

# Calibration frames, stretched and in BGR as the agent feeds the model, at the square and the
# 4:3 input shapes: every 16th frame of vtest (50), and a frame every 2 s of three road scenes
# from the scenario generator (vehicles; their people cut out by the float model).
cargo build --release --locked -p ioc-eval --bins
clips=("$FOOTAGE/vtest.avi:5/8")
for sc in traffic_flowing wrong_way parked_behind_bus; do
  clip=$(IOC_EVAL_PRECISION=float ./target/release/ioc-eval generate "tests/scenarios/$sc.toml" \
    | sed -n 's/^[a-z_]*: \(.*\.mp4\) .*/\1/p')
  clips+=("$clip:1/2")
done
mkdir -p "$work/frames"
for entry in "${clips[@]}"; do
  clip=${entry%:*} rate=${entry##*:}
  for size in 416x416 416x320; do
    w=${size%x*} h=${size#*x}
    gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! videorate drop-only=true \
      ! video/x-raw,framerate="$rate" ! videoconvert ! videoscale \
      ! video/x-raw,format=BGR,width="$w",height="$h" \
      ! filesink location="$work/frames/$(basename "$clip").$size.bgr"
  done
done
"$work/venv/bin/python" models/make_variants.py "$ORIG" "$work/float.onnx" "$work/int8.onnx" "$work/frames"
cp "$work/float.onnx" models/nanodet_g_416_coco.onnx
cp "$work/int8.onnx" models/nanodet_g_416_coco_int8.onnx
sha256sum models/nanodet_g_416_coco.onnx models/nanodet_g_416_coco_int8.onnx
