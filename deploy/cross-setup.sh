#!/usr/bin/env bash
# Idempotent set-up for building the arm64 (aarch64) binaries and packages on an amd64
# Debian 12 machine, by cross-compiling with Debian multiarch, and for running them under
# qemu-user (the package test runs the arm64 agent's `detect`). Safe to run again.
#
#   - Debian: the aarch64 cross compiler, GStreamer's arm64 libraries (multiarch,
#     libgstreamer1.0-dev:arm64 with the plugins-base runtime), and qemu-user from
#     bookworm-backports: bookworm's qemu 7.2 passes the host's x86 /proc/cpuinfo through,
#     and ONNX Runtime's CPU detection crashes on it; qemu 8 and later show an ARM one.
#   - The plugins-base development files for arm64 can't be installed beside the amd64 ones
#     (that Debian package is not multiarch-coinstallable): its pkg-config files are taken
#     from the Debian package into .deps/arm64/, pointing at the installed arm64 libraries.
#   - Rust's standard library for aarch64-unknown-linux-gnu (rustup).
#   - ONNX Runtime's arm64 library from its PyPI wheel (sha256-pinned), .deps/onnxruntime-arm64/.
#
# deploy/cross.sh runs cargo with the environment of the cross build.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=$PWD/.deps
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
source deploy/lib.sh

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  say "adding the arm64 architecture to dpkg (multiarch)"
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
# liborc-0.4-dev:arm64: gstreamer-video-1.0.pc requires orc-0.4 (pkg-config refuses without it).
PKGS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
      libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-0:arm64 libstdc++6:arm64
      liborc-0.4-dev:arm64)
install_missing "${PKGS[@]}"

# (Not installed at all on a fresh machine: that must not stop the script under pipefail.)
qemu_major=$( (qemu-aarch64 --version 2>/dev/null || true) | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
if [ "${qemu_major:-0}" -lt 8 ]; then
  if ! apt-cache policy qemu-user | grep -q bookworm-backports; then
    say "adding Debian's bookworm-backports (for qemu-user)"
    echo "deb http://deb.debian.org/debian bookworm-backports main" \
      | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    $SUDO apt-get update -qq
  fi
  say "installing qemu-user from bookworm-backports"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports qemu-user
fi

# GStreamer plugins-base pkg-config files for arm64, at the version of the installed runtime.
A=$DEPS/arm64
VER=$(dpkg-query -W -f='${Version}' libgstreamer-plugins-base1.0-0:arm64)
if [ "$(cat "$A/version" 2>/dev/null)" != "$VER" ]; then
  say "extracting GStreamer plugins-base $VER arm64 pkg-config files"
  rm -rf "$A" && mkdir -p "$A/debs" "$A/pkgconfig" "$A/lib"
  ( cd "$A/debs" && apt-get download "libgstreamer-plugins-base1.0-dev:arm64=$VER" >/dev/null )
  x=$(mktemp -d)
  dpkg-deb -x "$A"/debs/*.deb "$x"
  for pc in "$x"/usr/lib/aarch64-linux-gnu/pkgconfig/*.pc; do
    sed "s|^libdir=.*|libdir=$A/lib|" "$pc" > "$A/pkgconfig/$(basename "$pc")"
  done
  # The link-time names (libgstapp-1.0.so) point at the installed arm64 libraries.
  for so in "$x"/usr/lib/aarch64-linux-gnu/*.so; do
    ln -sf "/usr/lib/aarch64-linux-gnu/$(readlink "$so")" "$A/lib/$(basename "$so")"
  done
  rm -rf "$x" "$A/debs"
  echo "$VER" > "$A/version"
fi

if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    || { say "adding Rust target aarch64-unknown-linux-gnu"; rustup target add aarch64-unknown-linux-gnu; }
elif ! rustc --print target-libdir --target aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  echo "Rust's aarch64-unknown-linux-gnu standard library is missing (rustup target add)" >&2
  exit 1
fi

fetch_ort manylinux_2_28_aarch64 \
  da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3 \
  8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467 \
  "$DEPS/onnxruntime-arm64"
say "cross set-up complete"
