#!/usr/bin/env bash
# Set-up for `make bench` on top of deploy/setup.sh: the Python reference pipeline the
# cameras-per-box benchmark compares ioc-agent with (benches/python/reference.py) needs
# OpenCV, onnxruntime (the same version the agent loads) and numpy, from PyPI, in a venv
# under .deps/bench-venv. Idempotent; nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.deps/bench-venv
say() { printf '==> %s\n' "$*"; }
if ! "$VENV/bin/python" -c 'import cv2, numpy, onnxruntime' >/dev/null 2>&1; then
  say "making the Python reference's venv in $VENV (PyPI: opencv-python-headless, onnxruntime 1.31.1, numpy)"
  python3 -m venv "$VENV" 2>/dev/null || { python3 -m pip install --quiet --user virtualenv && python3 -m virtualenv -q "$VENV"; }
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "onnxruntime==1.31.1" "opencv-python-headless>=4.8,<5" "numpy<3"
fi
"$VENV/bin/python" -c 'import cv2, onnxruntime; print("bench venv: opencv", cv2.__version__, "onnxruntime", onnxruntime.__version__)'
