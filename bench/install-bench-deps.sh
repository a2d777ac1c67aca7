#!/usr/bin/env bash
# What `make bench` needs beyond `make deps`, installed the first time the bench
# runs (never for `make test`), only when missing:
#   rv32          gcc-riscv64-unknown-elf + picolibc-riscv64-unknown-elf (the VIRT_RV32 build)
#   host VENV     qemu-system-misc (qemu-system-riscv32), softhsm2 (Debian);
#                 PyKCS11 and matplotlib into VENV (PyPI, versions pinned in
#                 firmware/requirements-host.txt)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
    rv32) PKGS=(gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf) ;;
    host) PKGS=(qemu-system-misc softhsm2 openssl) ;;
    *) echo "usage: $0 rv32 | host VENV" >&2; exit 2 ;;
esac
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "[bench-deps] missing Debian packages: ${missing[*]}" >&2
        echo "[bench-deps] run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "[bench-deps] installing Debian packages for the bench: ${missing[*]} (once)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || { echo "[bench-deps] apt-get update failed" >&2; exit 1; }
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { echo "[bench-deps] apt-get install failed for: ${missing[*]}" >&2; exit 1; }
fi
if [ "$1" = host ]; then
    VENV="$2"
    # The bench-only pins live in requirements-host.txt as comments "# bench: name==version".
    mapfile -t pins < <(sed -n 's/^# bench: *//p' "$ROOT/firmware/requirements-host.txt")
    need=()
    for pin in "${pins[@]}"; do
        name="${pin%%==*}"; want="${pin#*==}"
        have="$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)"
        [ "$have" = "$want" ] || need+=("$pin")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "[bench-deps] installing into the venv: ${need[*]} (once)"
        "$VENV/bin/pip" install -q --disable-pip-version-check "${need[@]}" \
            || { echo "[bench-deps] pip install failed: is PyPI reachable?" >&2; exit 1; }
    fi
fi
