# Out-of-tree unix variant: freezes modules/ and links firmware/cmodule.
FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py
MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
# VfsLfs2 comes from the -D the make variable adds
MICROPY_VFS_LFS2 = 1
MICROPY_PY_THREAD = 1
MICROPY_SSL_MBEDTLS = 1
MICROPY_PY_SSL = 1
# TLS 1.3 as well as 1.2 (issue 11 item 9): the options and mbedTLS sources the
# port leaves out (firmware/tls13.mk, shared with the qemu size measurement).
# Found from this file's real location: the fuzz build links it from elsewhere.
UNIX_BOARD_DIR := $(dir $(realpath $(firstword $(filter %/mpconfigvariant.mk,$(MAKEFILE_LIST)))))
include $(UNIX_BOARD_DIR)../../firmware/tls13.mk
QSTR_GLOBAL_DEPENDENCIES += $(UNIX_BOARD_DIR)../../firmware/tls13.mk
# Board-style REPL with raw REPL and raw-paste (firmware/patches/unix-raw-repl.patch)
MICROPY_UNIX_PYEXEC_REPL = 1
# Re-extract qstrs when a C module's source list changes: a source newly listed
# but older than the last extraction would otherwise be skipped.
QSTR_GLOBAL_DEPENDENCIES += $(VARIANT_DIR)/mpconfigvariant.mk
QSTR_GLOBAL_DEPENDENCIES += $(wildcard $(USER_C_MODULES)/*/micropython.mk)
