#!/usr/bin/env bash
# Install the Debian packages the build and the tests need, only when missing.
# Quiet when everything is already there.
set -euo pipefail
PKGS=(build-essential gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
      mosquitto socat openssl xz-utils bzip2 patch pkg-config python3-venv
      libp11-kit-dev cmake procps clang-14 libclang-rt-14-dev
      p11-kit p11-kit-modules opensc libengine-pkcs11-openssl)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "[deps] missing Debian packages: ${missing[*]}" >&2
    echo "[deps] run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
echo "[deps] installing Debian packages: ${missing[*]} (once; takes a few minutes)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || { echo "[deps] apt-get update failed: is the Debian archive reachable?" >&2; exit 1; }
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "[deps] apt-get install failed for: ${missing[*]}" >&2; exit 1; }
# Debian starts mosquitto as a system service on install; the tests start
# their own brokers on 127.0.0.1, so the system one is not wanted.
if [[ " ${missing[*]} " == *" mosquitto "* ]]; then
    (service mosquitto stop || true) >/dev/null 2>&1
fi
echo "[deps] done"
