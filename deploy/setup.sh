#!/usr/bin/env bash
# Idempotent set-up for a Debian 12 machine: installs what is missing and
# prepares what the build, tests and demo need. Safe to run again; a second
# run only checks.
#
#   - Debian packages: GStreamer 1.22 (dev headers, base/good/bad/ugly/libav
#     plugins, gst-rtsp-server), mosquitto and its clients, PostgreSQL (the
#     collector's scale-out store; the tests start their own temporary
#     clusters with it), Chromium and its WebDriver (console tests), systemd and binutils
#     (the package test: systemd-analyze verify, strip).
#   - ONNX Runtime 1.31.1: the C library out of the PyPI wheel (sha256-pinned),
#     into .deps/onnxruntime/. Nothing is downloaded at build or run time.
#   - Test footage and images from Debian packages (opencv-doc: vtest.avi;
#     darknet: dog.jpg, person.jpg; tuxpaint-stamps-default: vehicle photographs for
#     the scenario clips), re-encoded once into .deps/footage/.
#
# Only package registries are used (Debian, PyPI). Run as root or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.deps
mkdir -p "$DEPS"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
source deploy/lib.sh

# --- Debian packages -------------------------------------------------------
PKGS=(
  pkg-config build-essential python3 python3-pip
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  mosquitto mosquitto-clients
  postgresql procps
  chromium chromium-driver
  systemd binutils
)
install_missing "${PKGS[@]}"
# The tests start their own brokers; a system one would only hold port 1883.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
# The postgresql package's own cluster (port 5432), if it started, is left alone: tests and
# benchmarks start their own on free ports.

# --- Rust toolchain ----------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (rustup, or Debian's cargo is too old: needs 1.92+)" >&2
  exit 1
fi

# --- ONNX Runtime --------------------------------------------------------------
fetch_ort manylinux_2_28_x86_64 \
  5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f \
  fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3 \
  "$DEPS/onnxruntime"

# --- Footage -------------------------------------------------------------------
FOOT=$DEPS/footage
mkdir -p "$FOOT" "$DEPS/debs"
VTEST_SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
fetch_deb() { # package, path inside, destination
  local pkg=$1 inside=$2 dest=$3
  [ -s "$dest" ] && return 0
  say "extracting $inside from Debian package $pkg"
  ( cd "$DEPS/debs" && ls ${pkg}_*.deb >/dev/null 2>&1 || apt-get download "$pkg" >/dev/null )
  local x; x=$(mktemp -d)
  dpkg-deb -x "$(ls "$DEPS"/debs/${pkg}_*.deb | head -n1)" "$x"
  cp "$x/$inside" "$dest"
  rm -rf "$x"
}
if ! ls "$DEPS"/debs/opencv-doc_*.deb >/dev/null 2>&1 || ! ls "$DEPS"/debs/darknet_*.deb >/dev/null 2>&1 \
   || ! ls "$DEPS"/debs/tuxpaint-stamps-default_*.deb >/dev/null 2>&1; then
  $SUDO apt-get update -qq || true
fi
fetch_deb opencv-doc usr/share/doc/opencv-doc/examples/data/vtest.avi "$FOOT/vtest.avi"
echo "$VTEST_SHA256  $FOOT/vtest.avi" | sha256sum -c --quiet
for img in dog.jpg person.jpg horses.jpg; do
  fetch_deb darknet "usr/share/darknet/data/$img" "$FOOT/$img"
done
# Vehicle photographs cut out on transparent backgrounds, for the scenario clips (ioc-eval):
# Debian's tuxpaint-stamps-default (GPL-2). One extraction for all of them.
STAMPS=usr/share/tuxpaint/stamps/vehicles
SPRITES=(auto/sedan.png auto/beetle.png auto/sportscar2.png auto/truck.png garbagetruck.png
         emergency/firetruck.png masstransit/green_korean_bus.png)
mkdir -p "$FOOT/sprites"
missing_sprites=0
for s in "${SPRITES[@]}"; do [ -s "$FOOT/sprites/$(basename "$s")" ] || missing_sprites=1; done
if [ "$missing_sprites" = 1 ]; then
  say "extracting vehicle sprites from Debian package tuxpaint-stamps-default"
  ( cd "$DEPS/debs" && ls tuxpaint-stamps-default_*.deb >/dev/null 2>&1 || apt-get download tuxpaint-stamps-default >/dev/null )
  x=$(mktemp -d)
  dpkg-deb -x "$(ls "$DEPS"/debs/tuxpaint-stamps-default_*.deb | head -n1)" "$x"
  for s in "${SPRITES[@]}"; do cp "$x/$STAMPS/$s" "$FOOT/sprites/"; done
  cp "$x/usr/share/doc/tuxpaint-stamps-default/copyright" "$FOOT/sprites/COPYRIGHT"
  rm -rf "$x"
fi

encode() { # output, gst-launch pipeline (without the sink)
  local out=$1; shift
  [ -s "$FOOT/$out" ] && return 0
  say "encoding $out"
  gst-launch-1.0 -q "$@" ! filesink location="$FOOT/$out.tmp"
  mv "$FOOT/$out.tmp" "$FOOT/$out"
}
# vtest (768x576, 10 fps) as a camera would send it: H.264, a key frame every 2 s.
encode vtest_h264.mp4 filesrc location="$FOOT/vtest.avi" ! decodebin ! videoconvert \
  ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=20 bitrate=1500 \
  ! h264parse ! mp4mux
# A synthetic 1080p25 scene, 10 s, in H.265 and H.264 (decode cost and codec coverage).
encode synthetic_1080p_h265.mp4 videotestsrc num-buffers=250 pattern=smpte horizontal-speed=6 \
  ! video/x-raw,width=1920,height=1080,framerate=25/1 \
  ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=50 bitrate=4000 ! h265parse ! mp4mux
encode synthetic_1080p_h264.mp4 videotestsrc num-buffers=250 pattern=smpte horizontal-speed=6 \
  ! video/x-raw,width=1920,height=1080,framerate=25/1 \
  ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=50 bitrate=4000 ! h264parse ! mp4mux

say "set-up complete"
