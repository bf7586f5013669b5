#!/usr/bin/env bash
# Builds the Debian packages of ioc-edge from built binaries (no Rust toolchain on the site box):
#
#   ioc-agent_VERSION_ARCH.deb      /usr/bin/ioc-agent, ONNX Runtime's library for ARCH
#                                   (/usr/lib/ioc-edge/), the default model
#                                   (/usr/share/ioc-edge/models/), /etc/ioc-edge/agent.toml,
#                                   the ioc-agent.service unit; depends on GStreamer.
#   ioc-collector_VERSION_ARCH.deb  /usr/bin/ioc-collector, /etc/ioc-edge/collector.toml, the
#                                   ioc-collector.service unit, the broker config and ACL
#                                   examples; depends on mosquitto.
#
# Both create the system user `ioc-edge`; state lives under /var/lib/ioc-edge/ (the units'
# StateDirectory). Units are installed, not started: edit the config, then
# `systemctl enable --now ioc-agent`.
#
#   [ARCH=arm64] bash deploy/package.sh [BIN_DIR] [OUT_DIR]
#       (default: this machine's architecture, target/release, target/packages)
#
# `make packages` builds the release binaries for amd64 and arm64 first (arm64 cross-compiled:
# deploy/cross-setup.sh). The packages take ONNX Runtime for ARCH from .deps/onnxruntime/
# (amd64) or .deps/onnxruntime-arm64/: the set-up fetched it from its PyPI wheel, sha256-pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$(realpath "${1:-target/release}")
OUT=$(realpath -m "${2:-target/packages}")
ARCH=${ARCH:-$(dpkg --print-architecture)}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
case $ARCH in
  amd64) ORT=.deps/onnxruntime/libonnxruntime.so.1.31.1 MACHINE="X86-64" STRIP=strip ;;
  arm64) ORT=.deps/onnxruntime-arm64/libonnxruntime.so.1.31.1 MACHINE=AArch64 STRIP=aarch64-linux-gnu-strip ;;
  *) echo "ARCH=$ARCH: packages are built for amd64 and arm64" >&2; exit 1 ;;
esac
say() { printf '==> %s\n' "$*"; }
for f in "$BIN/ioc-agent" "$BIN/ioc-collector" "$ORT"; do
  [ -f "$f" ] || { echo "missing $f (build first: make packages; ONNX Runtime: make setup)" >&2; exit 1; }
done
# A binary of the wrong architecture would install and then fail on the site box.
for f in "$BIN/ioc-agent" "$BIN/ioc-collector" "$ORT"; do
  readelf -h "$f" | grep -q "Machine: *.*$MACHINE" \
    || { echo "$f is not an $ARCH ($MACHINE) binary" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The maintainer scripts both packages share.
postinst() {
  cat <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd ioc-edge >/dev/null; then
    adduser --system --group --home /var/lib/ioc-edge --no-create-home \
      --gecos "ioc-edge services" ioc-edge >/dev/null
  fi
  install -d -o ioc-edge -g ioc-edge -m 0750 /var/lib/ioc-edge
  # The config holds passwords: readable by the service, not by everyone.
  for f in /etc/ioc-edge/*.toml; do
    [ -e "$f" ] && chown root:ioc-edge "$f" && chmod 0640 "$f"
  done
  if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
fi
exit 0
SH
}
postrm() {
  cat <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
SH
}

# pkg NAME DESCRIPTION DEPENDS: assembles $WORK/NAME into $OUT/NAME_VERSION_ARCH.deb.
pkg() {
  local name=$1 desc=$2 depends=$3 d=$WORK/$1
  mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$name"
  cp README.md "$d/usr/share/doc/$name/README.md"
  cat > "$d/DEBIAN/control" <<CTL
Package: $name
Version: $VERSION
Architecture: $ARCH
Maintainer: ioc-edge <ioc-edge@localhost>
Section: video
Priority: optional
Depends: adduser, $depends
Installed-Size: $(du -sk --exclude=DEBIAN "$d" | cut -f1)
Description: $desc
CTL
  (cd "$d" && find etc -type f 2>/dev/null | sed 's|^|/|') > "$d/DEBIAN/conffiles"
  postinst > "$d/DEBIAN/postinst"
  postrm > "$d/DEBIAN/postrm"
  chmod 0755 "$d/DEBIAN/postinst" "$d/DEBIAN/postrm"
  dpkg-deb --root-owner-group -Zgzip -z6 --build "$d" "$OUT/${name}_${VERSION}_${ARCH}.deb" >/dev/null
  say "$OUT/${name}_${VERSION}_${ARCH}.deb"
}

# Binaries without their debug sections (the build keeps line tables for backtraces).
install_bin() { install -D -m 0755 "$1" "$2"; "$STRIP" --strip-debug "$2"; }

# --- ioc-agent ---------------------------------------------------------------------------
a=$WORK/ioc-agent
install_bin "$BIN/ioc-agent" "$a/usr/bin/ioc-agent"
install -D -m 0644 "$ORT" "$a/usr/lib/ioc-edge/$(basename "$ORT")"
install -d "$a/usr/share/ioc-edge/models"
install -m 0644 models/*.onnx models/*.toml models/*.txt models/NOTICE models/PROVENANCE.md "$a/usr/share/ioc-edge/models/"
install -D -m 0644 deploy/systemd/ioc-agent.service "$a/lib/systemd/system/ioc-agent.service"
install -d "$a/etc/ioc-edge"
# The example config with the installed paths: the model under /usr/share, the outbox
# under the state directory (the unit lets the agent write nowhere else).
sed -e 's|^model = "../models/|model = "/usr/share/ioc-edge/models/|' \
    -e 's|^# \[outbox\]|[outbox]|' \
    -e 's|^# path = "/var/lib/ioc-agent/outbox.db"|path = "/var/lib/ioc-edge/agent/outbox.db"|' \
    config/agent.toml > "$a/etc/ioc-edge/agent.toml"
pkg ioc-agent "ioc-edge site agent: RTSP cameras, ONNX detection, tracking, incident rules, MQTT outbox" \
  "gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, gstreamer1.0-libav, libgstreamer1.0-0, libgstreamer-plugins-base1.0-0"

# --- ioc-collector -----------------------------------------------------------------------
c=$WORK/ioc-collector
install_bin "$BIN/ioc-collector" "$c/usr/bin/ioc-collector"
install -D -m 0644 deploy/systemd/ioc-collector.service "$c/lib/systemd/system/ioc-collector.service"
install -d "$c/etc/ioc-edge" "$c/usr/share/doc/ioc-collector/examples"
sed -e 's|/var/lib/ioc-collector/|/var/lib/ioc-edge/collector/|g' \
    config/collector.toml > "$c/etc/ioc-edge/collector.toml"
install -m 0644 config/mosquitto.conf config/mosquitto.acl "$c/usr/share/doc/ioc-collector/examples/"
pkg ioc-collector "ioc-edge collector: incident log, operator console, reports" "mosquitto"
