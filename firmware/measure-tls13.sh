#!/bin/sh
# Builds the qemu MPS2-AN385 firmware with mbedTLS's TLS 1.3 (client and, as
# MicroPython's config has MBEDTLS_SSL_SRV_C, server) into $BUILD/qemu-tls13 and
# prints its sizes next to $BUILD/qemu/firmware.elf's: the flash cost of TLS 1.3
# (issue 11 item 9). The unix counterpart is a variant in the tree,
# boards/unix_tls13 (`make unix-tls13`, built by `make test` for
# host_tests/tls/test_tls13.py); its options and sources are the same as here.
#   BUILD=build sh firmware/measure-tls13.sh      (after make unix qemu)
# Then: BUILD=<dir with qemu -> qemu-tls13> pytest host_tests/test_tls_qemu.py -s
# runs the board's loopback TLS test (it negotiates TLS 1.3) and prints the heap.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(cd "${BUILD:-$ROOT/build}" && pwd)
BOARD=$BUILD/qemu-tls13-board
rm -rf "$BOARD"
cp -r "$ROOT/boards/qemu" "$BOARD"
sed -i "s|^QEMU_EXT_DIR ?=.*|QEMU_EXT_DIR ?= $ROOT/firmware/qemu|" "$BOARD/mpconfigboard.mk"
sed -i 's|^#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)|&\
#define MBEDTLS_PSA_CRYPTO_C\
#define MBEDTLS_SSL_PROTO_TLS1_3\
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE\
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED\
#define MBEDTLS_PKCS1_V21\
#define MBEDTLS_HKDF_C\
#define MBEDTLS_X509_RSASSA_PSS_SUPPORT|' "$BOARD/mbedtls/mbedtls_config_port.h"
SOURCES='SRC_THIRDPARTY_C += $(addprefix lib/mbedtls/library/, ssl_tls13_client.c ssl_tls13_generic.c ssl_tls13_keys.c ssl_tls13_server.c hkdf.c psa_crypto.c psa_crypto_aead.c psa_crypto_cipher.c psa_crypto_client.c psa_crypto_driver_wrappers_no_static.c psa_crypto_ecp.c psa_crypto_ffdh.c psa_crypto_hash.c psa_crypto_mac.c psa_crypto_pake.c psa_crypto_random.c psa_crypto_rsa.c psa_crypto_slot_management.c psa_crypto_storage.c psa_util.c)'
echo "$SOURCES" >> "$BOARD/mpconfigboard.mk"
make -s -C "$BUILD/micropython/ports/qemu" -j"${JOBS:-1}" USER_C_MODULES="$ROOT/firmware/cmodule" \
	MPY_LIB_DIR="$BUILD/mpylib" BOARD=MPS2_AN385 BOARD_DIR="$BOARD" BUILD="$BUILD/qemu-tls13" \
	FROZEN_MANIFEST="$ROOT/boards/qemu/manifest.py" > "$BUILD/qemu-tls13-build.log" 2>&1 \
	|| { tail -n 30 "$BUILD/qemu-tls13-build.log"; exit 1; }
arm-none-eabi-size "$BUILD/qemu/firmware.elf" "$BUILD/qemu-tls13/firmware.elf"

