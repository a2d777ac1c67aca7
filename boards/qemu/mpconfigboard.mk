# The project's emulated board: MicroPython's MPS2-AN385 (Cortex-M3) qemu board,
# plus a littlefs2 filesystem on a host file, time, interrupt-driven UART RX with
# Ctrl-C, an idle loop that sleeps (WFI), host entropy and mbedTLS.
# Used as BOARD_DIR by `make qemu`; the port code lives in firmware/qemu/ and
# the port hooks it needs in firmware/patches/qemu-*.patch.
include $(TOP)/ports/qemu/boards/MPS2_AN385/mpconfigboard.mk

QEMU_EXT_DIR ?= $(abspath $(BOARD_DIR)/../../firmware/qemu)

CFLAGS += -DMICROPY_BOARD_CONFIG_FILE='"mpconfigboard.h"'
CFLAGS += -I$(BOARD_DIR) -I$(QEMU_EXT_DIR)

SRC_C += \
	$(QEMU_EXT_DIR)/qemu_port.c \
	$(QEMU_EXT_DIR)/qemu_flash.c \
	$(QEMU_EXT_DIR)/qemu_mbedtls.c \
	shared/timeutils/timeutils.c \

FROZEN_MANIFEST ?= $(BOARD_DIR)/manifest.py

MICROPY_VFS_LFS2 = 1
MICROPY_SSL_MBEDTLS = 1
MICROPY_PY_SSL = 1

# Re-extract all qstrs when the board configuration or a C module's source list
# changes: a source newly listed but older than the last extraction would
# otherwise be skipped ("MP_QSTR_... undeclared").
QSTR_GLOBAL_DEPENDENCIES += $(BOARD_DIR)/mpconfigboard.h $(BOARD_DIR)/mpconfigboard.mk
QSTR_GLOBAL_DEPENDENCIES += $(wildcard $(USER_C_MODULES)/*/micropython.mk)
