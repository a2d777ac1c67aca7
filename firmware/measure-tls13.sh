#!/bin/sh
# Builds the qemu MPS2-AN385 firmware with mbedTLS's TLS 1.3 (client and, as
# MicroPython's config has MBEDTLS_SSL_SRV_C, server) into $BUILD/qemu-tls13 and
# prints its sizes next to $BUILD/qemu/firmware.elf's: the flash cost of TLS 1.3
# (issue 11 item 9). The qemu board stays at TLS 1.2; boards/unix has TLS 1.3
# on; both take the options and sources from firmware/tls13.mk.
#   BUILD=build sh firmware/measure-tls13.sh      (after make unix qemu)
# Then: BUILD=<dir with qemu -> qemu-tls13> pytest host_tests/tls/test_tls_qemu.py -s
# runs the board's loopback TLS test (it negotiates TLS 1.3) and prints the heap.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(cd "${BUILD:-$ROOT/build}" && pwd)
BOARD=$BUILD/qemu-tls13-board
rm -rf "$BOARD"
cp -r "$ROOT/boards/qemu" "$BOARD"
sed -i "s|^QEMU_EXT_DIR ?=.*|QEMU_EXT_DIR ?= $ROOT/firmware/qemu|" "$BOARD/mpconfigboard.mk"
echo "include $ROOT/firmware/tls13.mk" >> "$BOARD/mpconfigboard.mk"
make -s -C "$BUILD/micropython/ports/qemu" -j"${JOBS:-1}" USER_C_MODULES="$ROOT/firmware/cmodule" \
	MPY_LIB_DIR="$BUILD/mpylib" BOARD=MPS2_AN385 BOARD_DIR="$BOARD" BUILD="$BUILD/qemu-tls13" \
	FROZEN_MANIFEST="$ROOT/boards/qemu/manifest.py" > "$BUILD/qemu-tls13-build.log" 2>&1 \
	|| { tail -n 30 "$BUILD/qemu-tls13-build.log"; exit 1; }
arm-none-eabi-size "$BUILD/qemu/firmware.elf" "$BUILD/qemu-tls13/firmware.elf"

