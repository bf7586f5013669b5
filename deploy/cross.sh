#!/usr/bin/env bash
# Runs a command (cargo) with the environment of the aarch64 cross build, after
# deploy/cross-setup.sh:  bash deploy/cross.sh cargo build --target aarch64-unknown-linux-gnu ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Tests (and `cargo run`) of the arm64 binaries go through qemu-user.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
# pkg-config sees the arm64 .pc files only: Debian's multiarch ones and the plugins-base ones
# cross-setup.sh put in .deps/arm64/.
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=$root/.deps/arm64/pkgconfig
export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
exec "$@"
