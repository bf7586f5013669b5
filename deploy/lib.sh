# What deploy/setup.sh and deploy/cross-setup.sh share (sourced; both set SUDO first).
say() { printf '==> %s\n' "$*"; }

# install_missing PKG...: apt-installs those of the Debian packages that are not installed.
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ONNX Runtime's C library out of its PyPI wheel, sha256-pinned. Nothing is downloaded at
# build or run time.
#
#   fetch_ort PLATFORM WHEEL_SHA256 LIB_SHA256 DIR
#     PLATFORM is the wheel's platform tag (manylinux_2_28_x86_64, manylinux_2_28_aarch64);
#     the library lands in DIR/libonnxruntime.so.$ORT_VERSION.
ORT_VERSION=1.31.1
fetch_ort() {
  local platform=$1 wheel_sha=$2 lib_sha=$3 dir=$4
  local wheel=onnxruntime-${ORT_VERSION}-cp311-cp311-${platform}.whl
  local lib=libonnxruntime.so.${ORT_VERSION}
  echo "$lib_sha  $dir/$lib" | sha256sum -c --status 2>/dev/null && return 0
  say "fetching ONNX Runtime $ORT_VERSION ($platform) from PyPI"
  mkdir -p "$dir/wheel"
  if ! echo "$wheel_sha  $dir/wheel/$wheel" | sha256sum -c --status 2>/dev/null; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform "$platform" --python-version 3.11 \
      "onnxruntime==$ORT_VERSION" -d "$dir/wheel"
  fi
  echo "$wheel_sha  $dir/wheel/$wheel" | sha256sum -c --quiet
  python3 - "$dir/wheel/$wheel" "$dir" "$lib" <<'PY'
import sys, zipfile, shutil, os
wheel, out, lib = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(f"onnxruntime/capi/{lib}") as src, open(os.path.join(out, lib), "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$lib_sha  $dir/$lib" | sha256sum -c --quiet
  rm -rf "$dir/wheel"
}
