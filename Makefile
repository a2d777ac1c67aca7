# One entry point. `make demo` runs the product's main job, `make test` the tests.
# Every target installs what it needs the first time and is quick after that.

SHELL := /bin/bash

BUILD ?= $(CURDIR)/build
override BUILD := $(abspath $(BUILD))
MPY_DIR := $(BUILD)/micropython
VENV := $(BUILD)/venv
PY := $(VENV)/bin/python
UNIX_BIN := $(BUILD)/unix/micropython
QEMU_ELF := $(BUILD)/qemu/firmware.elf
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Sub-makes get BUILD on their command line: a BUILD given to this Makefile
# would otherwise reach mpy-cross's make through MAKEFLAGS and mix its objects
# with a port's.

# MicroPython's build wants a micropython-lib checkout whenever it freezes
# anything; Debian's source has none and we need nothing from it.
MPY_LIB_STUB := $(BUILD)/mpylib
COMMON_MAKE_ARGS := USER_C_MODULES=$(CURDIR)/firmware/cmodule MPY_LIB_DIR=$(MPY_LIB_STUB)

.PHONY: all deps sources unix qemu stock-unix esp32 flash test test-unix test-qemu demo demo-fleet bench check fuzz clean help

all: unix qemu

help:
	@echo "make demo    build the unix firmware and run the local AWS IoT stand-in demo"
	@echo "make demo-fleet   fleet provisioning by claim on the unix firmware (local AWS IoT stand-in)"
	@echo "make test    build the unix (also with TLS 1.3) and qemu firmware and run every test"
	@echo "make unix    build $(UNIX_BIN)"
	@echo "make qemu    build $(QEMU_ELF)"
	@echo "make stock-unix   build $(STOCK_UNIX_BIN) (stock MicroPython, no C module, nothing frozen)"
	@echo "make bench   C module vs pure Python, and vs mbedTLS, RISC-V, openssl/SoftHSM2, key in RAM, serial bytes, scaling, size, boot (bench/README.md)"
	@echo "make esp32 [BOARD=ESP32_C3_PKCS11]   build the ESP32 (or ESP32-C3) firmware (needs ESP-IDF v5.2-v5.4: . \$$IDF_PATH/export.sh)"
	@echo "make flash PORT=/dev/ttyUSB0 [BOARD=...]   write the board's app partition (the token partition is kept)"
	@echo "make fuzz [FUZZ_SECONDS=300]   fuzz the C parsers (parse.c, pem.c, DER) with libFuzzer, ASan, UBSan"
	@echo "make clean   remove $(BUILD) (user state lives outside it and is kept: see below)"
	@echo "make test-unix | make test-qemu   the tests of one firmware only"
	@echo "make check [CA=root.pem] [TOKEN_DIR=dir]   p11board check of the provisioned unix token (with CA: live MQTT to a local broker)"
	@echo ""
	@echo "variables:"
	@echo "  BUILD=<dir>          where every build product goes (default ./build)"
	@echo "  PYTEST_ARGS='...'    extra pytest options for test, test-unix, test-qemu (e.g. -k tool -x)"
	@echo "  JOBS=<n>             parallel compile jobs (default: nproc)"
	@echo "  ENDPOINT=<host> THING=<name> [TOKEN_DIR=<dir>]   make demo against AWS IoT Core"
	@echo "  FULL=1               make flash: also write the bootloader and the partition table"
	@echo "  ERASE_TOKEN=1        make flash: erase the token partition (every key on it is lost)"
	@echo ""
	@echo "user state (not in BUILD): p11board --qemu's flash image ~/.local/share/p11board/qemu-flash.img,"
	@echo "the unix firmware's token ~/.micropython/pkcs11-token"

deps: $(BUILD)/.deps-apt $(VENV)/.installed

$(BUILD)/.deps-apt: firmware/install-deps.sh
	@mkdir -p $(BUILD)
	@bash firmware/install-deps.sh
	@touch $@

$(VENV)/.installed: pyproject.toml firmware/requirements-host.txt | $(BUILD)/.deps-apt
	@echo "[venv] creating $(VENV) with the pinned host tools (once)"
	@python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r firmware/requirements-host.txt 2>&1 \
		| { grep -v '^WARNING: Location' || true; }; test $${PIPESTATUS[0]} -eq 0 \
		|| { echo "[venv] pip install failed: is PyPI reachable?"; exit 1; }
	@$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e . \
		|| { echo "[venv] installing the host packages p11board and p11lab (pyproject.toml) failed"; exit 1; }
	@touch $@

sources: $(BUILD)/.deps-apt
	@BUILD=$(BUILD) bash firmware/fetch-sources.sh
	@mkdir -p $(MPY_LIB_STUB)
	@test -f $(MPY_LIB_STUB)/README.md || echo "Stand-in for micropython-lib (not used)." > $(MPY_LIB_STUB)/README.md

$(MPY_DIR)/mpy-cross/build/mpy-cross: | sources
	@echo "[build] mpy-cross"
	@$(MAKE) -s -C $(MPY_DIR)/mpy-cross -j$(JOBS) BUILD=build >/dev/null

unix: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	@echo "[build] unix firmware -> $(UNIX_BIN) (about a minute the first time; log: $(BUILD)/unix-build.log)"
	@$(MAKE) -s -C $(MPY_DIR)/ports/unix -j$(JOBS) $(COMMON_MAKE_ARGS) \
		VARIANT_DIR=$(CURDIR)/boards/unix BUILD=$(BUILD)/unix \
		> $(BUILD)/unix-build.log 2>&1 \
		|| { tail -n 30 $(BUILD)/unix-build.log; echo "[build] unix firmware failed; full log: $(BUILD)/unix-build.log"; exit 1; }

qemu: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	@echo "[build] qemu MPS2-AN385 firmware -> $(QEMU_ELF) (about a minute the first time; log: $(BUILD)/qemu-build.log)"
	@$(MAKE) -s -C $(MPY_DIR)/ports/qemu -j$(JOBS) $(COMMON_MAKE_ARGS) \
		BOARD=MPS2_AN385 BOARD_DIR=$(CURDIR)/boards/qemu BUILD=$(BUILD)/qemu \
		FROZEN_MANIFEST=$(CURDIR)/boards/qemu/manifest.py \
		> $(BUILD)/qemu-build.log 2>&1 \
		|| { tail -n 30 $(BUILD)/qemu-build.log; echo "[build] qemu firmware failed; full log: $(BUILD)/qemu-build.log"; exit 1; }
	@arm-none-eabi-size $(QEMU_ELF)

# Stock unix MicroPython from the same source tree, for installing the device packages
# with `mpremote mip install` (host_tests/token/test_mip_stock.py): the standard variant with
# no user C module and nothing frozen. Off, because Debian's source lacks what they need:
# frozen micropython-lib packages (no micropython-lib), btree (no berkeley-db), ffi
# (no libffi in our Debian packages). On: the board REPL with raw REPL that mpremote
# drives (firmware/patches/unix-raw-repl.patch), as on every board.
# (The board REPL's banner needs a board and MCU name.)
STOCK_UNIX_BIN := $(BUILD)/stock-unix/micropython
STOCK_UNIX_NAMES := -DMICROPY_HW_BOARD_NAME='\"unix standard variant\"' -DMICROPY_HW_MCU_NAME='\"host CPU\"'

stock-unix: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	@echo "[build] stock unix MicroPython (standard variant, no C module) -> $(STOCK_UNIX_BIN)"
	@$(MAKE) -s -C $(MPY_DIR)/ports/unix -j$(JOBS) VARIANT=standard BUILD=$(BUILD)/stock-unix \
		FROZEN_MANIFEST= MPY_LIB_DIR=$(MPY_LIB_STUB) MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 \
		MICROPY_UNIX_PYEXEC_REPL=1 CFLAGS_EXTRA="$(STOCK_UNIX_NAMES)" > $(BUILD)/stock-unix-build.log 2>&1 \
		|| { tail -n 30 $(BUILD)/stock-unix-build.log; echo "[build] stock unix MicroPython failed; full log: $(BUILD)/stock-unix-build.log"; exit 1; }

# ESP32 boards: ESP-IDF v5.2-v5.4 must be installed and exported
# (`. $IDF_PATH/export.sh`). BOARD=ESP32_PKCS11 (classic ESP32, the default) or
# BOARD=ESP32_C3_PKCS11 (ESP32-C3); both share the partition table, sdkconfig
# fragment and frozen manifest in boards/ESP32_PKCS11. Debian's MicroPython source
# lacks the berkeley-db and micropython-lib submodules: btree is off and the
# manifest skips micropython-lib.
BOARD ?= ESP32_PKCS11
comma := ,
ESP32_BOARD := $(CURDIR)/boards/$(BOARD)
ESP32_BOARD_NAME = $(notdir $(ESP32_BOARD))
# The chip: the board's IDF_TARGET (mpconfigboard.cmake), esp32 if it sets none.
ESP32_CHIP := $(or $(shell sed -n 's/^[ \t]*set([ \t]*IDF_TARGET[ \t][ \t]*\([a-z0-9]*\)[ \t]*)/\1/p' \
	$(ESP32_BOARD)/mpconfigboard.cmake 2>/dev/null),esp32)
# One build folder per chip: build/esp32, build/esp32c3.
ESP32_BUILD := $(BUILD)/$(ESP32_CHIP)
ESP32_CSV = $(ESP32_BOARD)/partitions.csv
# The ROM loads the bootloader from 0x1000 on the ESP32 and ESP32-S2, from 0x0 on
# the later chips (C3, S3, C6, ...).
ESP32_BOOT_OFFSET = $(if $(filter esp32 esp32s2,$(ESP32_CHIP)),0x1000,0x0)
ESPTOOL ?= $(VENV)/bin/esptool
BAUD ?= 460800
# Offset and size of a partition, by name, from the board's partition table.
esp32_part = $(shell awk -F, '$$1 ~ /^[ \t]*$(1)[ \t]*$$/ {gsub(/[ \t]/, "", $$$(2)); print $$$(2)}' $(ESP32_CSV))
ESP32_IDF_HELP := Install ESP-IDF v5.2, v5.3 or v5.4 (MicroPython 1.25 supports these), \
then run: . <esp-idf>/export.sh (it sets IDF_PATH and puts idf.py on PATH), then make esp32 again.
# What ports/esp32/Makefile would hand to idf.py, run here directly: that Makefile
# would put BUILD into MAKEFLAGS, and the `make -C mpy-cross` a fresh CMake build
# runs would then build mpy-cross into the ESP32 build folder and overwrite its
# genhdr. MAKEFLAGS (which holds this Makefile's own command-line variables) is
# cleared, and CMake is given the mpy-cross built above (MICROPY_MPYCROSS), so it
# runs no make at all. JOBS=<n> on the command line caps the compile jobs.
ESP32_IDF_ARGS = -D MICROPY_BOARD=$(ESP32_BOARD_NAME) -D MICROPY_BOARD_DIR=$(ESP32_BOARD) \
	-DUSER_C_MODULES=$(CURDIR)/firmware/cmodule/micropython.cmake \
	-DMICROPY_LIB_DIR=$(MPY_LIB_STUB) -DMICROPY_PY_BTREE=OFF \
	$(if $(filter command line,$(origin JOBS)),-DCMAKE_JOB_POOLS=jobs=$(JOBS) -DCMAKE_JOB_POOL_COMPILE=jobs -DCMAKE_JOB_POOL_LINK=jobs)
# ESP-IDF makes BUILD/sdkconfig from the board's fragments once and then keeps it:
# a changed fragment (a pulled board change) or another board of the same chip (one
# build folder per chip) would not reach an existing build. sdkconfig.board there
# names the board its sdkconfig was made for.
ESP32_SDKCONFIG_SOURCES = $(wildcard $(CURDIR)/boards/ESP32_PKCS11/sdkconfig.* \
	$(CURDIR)/boards/ESP32_PKCS11/token_board.cmake $(ESP32_BOARD)/sdkconfig.* \
	$(ESP32_BOARD)/mpconfigboard.cmake $(MPY_DIR)/ports/esp32/boards/sdkconfig.*)
ESP32_ENV = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u BUILD \
	MICROPY_MPYCROSS=$(MPY_DIR)/mpy-cross/build/mpy-cross

esp32:
	@test -f $(ESP32_BOARD)/mpconfigboard.cmake || { \
		echo "[esp32] no board at $(ESP32_BOARD): BOARD=ESP32_PKCS11 (ESP32) or BOARD=ESP32_C3_PKCS11 (ESP32-C3)"; exit 2; }
	@if [ -z "$(IDF_PATH)" ]; then \
		echo "[esp32] IDF_PATH is not set: the ESP32 build needs ESP-IDF."; \
		echo "[esp32] $(ESP32_IDF_HELP)"; exit 2; fi
	@if [ ! -f "$(IDF_PATH)/tools/cmake/project.cmake" ]; then \
		echo "[esp32] IDF_PATH=$(IDF_PATH) is not an ESP-IDF tree (no tools/cmake/project.cmake)."; \
		echo "[esp32] $(ESP32_IDF_HELP)"; exit 2; fi
	@v=$$(awk '/set\(IDF_VERSION_(MAJOR|MINOR)/ {gsub(/\)/, "", $$2); printf "%s.", $$2}' \
		"$(IDF_PATH)/tools/cmake/version.cmake" 2>/dev/null); v=$${v%.}; \
	case "$$v" in 5.2|5.3|5.4) ;; \
	*) echo "[esp32] ESP-IDF $${v:-of unknown version} at $(IDF_PATH); MicroPython 1.25 needs v5.2, v5.3 or v5.4."; \
	   echo "[esp32] $(ESP32_IDF_HELP)"; exit 2;; esac
	@command -v idf.py >/dev/null || { \
		echo "[esp32] idf.py is not on PATH: run . $(IDF_PATH)/export.sh first."; exit 2; }
	@$(MAKE) --no-print-directory sources $(MPY_DIR)/mpy-cross/build/mpy-cross BUILD=$(BUILD)
	@if [ -f $(ESP32_BUILD)/sdkconfig ] && { [ "$$(cat $(ESP32_BUILD)/sdkconfig.board 2>/dev/null)" != "$(ESP32_BOARD)" ] \
		|| [ -n "$$(find $(ESP32_SDKCONFIG_SOURCES) -newer $(ESP32_BUILD)/sdkconfig)" ]; }; then \
		echo "[esp32] $(ESP32_BUILD)/sdkconfig was made for another board or from older fragments: making it again"; \
		rm -f $(ESP32_BUILD)/sdkconfig; fi
	@mkdir -p $(ESP32_BUILD) && echo "$(ESP32_BOARD)" > $(ESP32_BUILD)/sdkconfig.board
	@echo "[build] $(ESP32_CHIP) firmware (boards/$(ESP32_BOARD_NAME)) -> $(ESP32_BUILD)/micropython.bin"
	@cd $(MPY_DIR)/ports/esp32 && { $(ESP32_ENV) idf.py $(ESP32_IDF_ARGS) -B $(ESP32_BUILD) build \
		&& $(ESP32_ENV) python3 makeimg.py $(ESP32_BUILD)/sdkconfig $(ESP32_BUILD)/bootloader/bootloader.bin \
			$(ESP32_BUILD)/partition_table/partition-table.bin $(ESP32_BUILD)/micropython.bin \
			$(ESP32_BUILD)/firmware.bin $(ESP32_BUILD)/micropython.uf2; } \
		> $(BUILD)/esp32-build.log 2>&1 \
		|| { tail -n 30 $(BUILD)/esp32-build.log; echo "[build] ESP32 firmware failed (boards/$(ESP32_BOARD_NAME), $(ESP32_CHIP)); full log: $(BUILD)/esp32-build.log"; exit 1; }
	@echo "[build] app $(ESP32_BUILD)/micropython.bin, full image $(ESP32_BUILD)/firmware.bin (at $(ESP32_BOOT_OFFSET)); make flash BOARD=$(ESP32_BOARD_NAME) PORT=..."

# Writes the app partition only: the token partition (keys, certificates, PINs)
# and the filesystem are kept. FULL=1 also writes the bootloader and the
# partition table (first install, or coming from another partition layout);
# ERASE_TOKEN=1 erases the token partition (every key on it is lost).
flash: $(VENV)/.installed
	@if [ -z "$(PORT)" ]; then echo "[flash] usage: make flash PORT=/dev/ttyUSB0 [BOARD=ESP32_PKCS11|ESP32_C3_PKCS11] [BAUD=460800] [FULL=1] [ERASE_TOKEN=1]"; exit 2; fi
	@test -f $(ESP32_BUILD)/micropython.bin || { echo "[flash] $(ESP32_BUILD)/micropython.bin is missing: run make esp32 BOARD=$(ESP32_BOARD_NAME) first"; exit 1; }
	@size=$$(stat -c %s $(ESP32_BUILD)/micropython.bin); max=$$(( $(call esp32_part,factory,5) )); \
	if [ $$size -gt $$max ]; then echo "[flash] boards/$(ESP32_BOARD_NAME): micropython.bin ($$size bytes) does not fit the app partition ($$max bytes)"; exit 1; fi
	@echo "[flash] boards/$(ESP32_BOARD_NAME) ($(ESP32_CHIP)): app -> $(call esp32_part,factory,4) on $(PORT)$(if $(FULL),$(comma) bootloader -> $(ESP32_BOOT_OFFSET)$(comma) partition table -> 0x8000); token partition at $(call esp32_part,token,4) $(if $(ERASE_TOKEN),ERASED (ERASE_TOKEN=1),kept)"
	@$(ESPTOOL) --chip $(ESP32_CHIP) --port $(PORT) --baud $(BAUD) write-flash \
		$(if $(FULL),$(ESP32_BOOT_OFFSET) $(ESP32_BUILD)/bootloader/bootloader.bin 0x8000 $(ESP32_BUILD)/partition_table/partition-table.bin) \
		$(call esp32_part,factory,4) $(ESP32_BUILD)/micropython.bin
	$(if $(ERASE_TOKEN),@$(ESPTOOL) --chip $(ESP32_CHIP) --port $(PORT) --baud $(BAUD) erase-region $(call esp32_part,token,4) $(call esp32_part,token,5))

test: deps unix qemu
	@BUILD=$(BUILD) $(PY) -m pytest -q host_tests $(PYTEST_ARGS)

test-unix: deps unix
	@BUILD=$(BUILD) $(PY) -m pytest -q host_tests -m "not qemu" $(PYTEST_ARGS)

test-qemu: deps qemu
	@BUILD=$(BUILD) $(PY) -m pytest -q host_tests -m qemu $(PYTEST_ARGS)

# The product's main job (demo/run.py): a local CA and mosquitto stand in for AWS IoT
# Core, a fresh token gets a key, a CSR and a certificate, and MQTT runs through it.
# `make demo ENDPOINT=<name>-ats.iot.<region>.amazonaws.com THING=<thing>` talks to AWS
# IoT Core instead, with an already-provisioned token (TOKEN_DIR=<dir>, default: the
# firmware's own); see demo/README.md.
demo: deps unix
	@$(PY) demo/run.py --firmware $(UNIX_BIN) --workdir $(BUILD)/demo \
		$(if $(ENDPOINT),--endpoint $(ENDPOINT)) $(if $(THING),--thing $(THING)) \
		$(if $(TOKEN_DIR),--token-dir $(TOKEN_DIR))

# Fleet provisioning by claim (demo/fleet.py): a local CA, mosquitto with the fleet
# ACLs and the provisioning responder (tools/p11lab/fleet_responder.py) stand in for
# AWS IoT; a fresh token gets the batch's claim, then provisions itself on first boot.
# See docs/fleet-provisioning.md.
demo-fleet: deps unix
	@$(PY) demo/fleet.py --firmware $(UNIX_BIN) --workdir $(BUILD)/demo-fleet

# Is the provisioned unix token ready? `p11board check`: stored endpoint/thing, key,
# certificate, root CA; with CA=<the CA that issued the certificate> also a live MQTT
# connect/publish through the token to a local mosquitto (127.0.0.1) that trusts it.
# TOKEN_DIR=<dir> (default: the firmware's own token directory).
check: deps unix
	@BUILD=$(BUILD) $(VENV)/bin/p11board --unix $(if $(TOKEN_DIR),--token-dir $(TOKEN_DIR)) check $(if $(CA),--ca $(CA))

# Speed and heap of the crypto and token calls, C module vs the pure-Python baseline,
# on the unix firmware (wall time) and the qemu board (instruction counts under -icount);
# prints a table, writes $(BUILD)/bench/results.{md,json}. See bench/README.md.
bench: deps unix qemu bench-builds bench-deps
	@BUILD=$(BUILD) $(PY) bench/bench.py --out $(BUILD)/bench $(BENCH_ARGS)

# Firmware variants only the bench uses (bench/README.md), each in $(BUILD)/bench-*:
#   bench-qemu       the qemu board plus _bench_mbedtls (mbedTLS's own ECDSA/RSA, row 1)
#   bench-qemu-m4    the same built for a Cortex-M4, run on mps2-an386 (row 1)
#   bench-qemu-bare  the qemu board without our frozen modules and C module (row 7)
#   bench-unix-bare  the unix firmware without them (row 7)
#   bench-rv32       the qemu port's VIRT_RV32 board with our modules and C module (row 2)
BENCH_BARE_MANIFEST := $(CURDIR)/bench/boards/qemu_bare.py
BENCH_QEMU_ARGS = BOARD=MPS2_AN385 BOARD_DIR=$(CURDIR)/boards/qemu MPY_LIB_DIR=$(MPY_LIB_STUB)
bench_build = @echo "[build] $(1) -> $(BUILD)/$(1)"; \
	$(MAKE) -s -C $(MPY_DIR)/ports/$(2) -j$(JOBS) BUILD=$(BUILD)/$(1) $(3) \
		> $(BUILD)/$(1)-build.log 2>&1 \
		|| { tail -n 30 $(BUILD)/$(1)-build.log; echo "[build] $(1) failed; full log: $(BUILD)/$(1)-build.log"; exit 1; }

.PHONY: bench-builds bench-deps bench-qemu bench-qemu-m4 bench-qemu-bare bench-unix-bare bench-rv32
bench-builds: bench-qemu bench-qemu-m4 bench-qemu-bare bench-unix-bare bench-rv32

# the qemu board with our modules plus _bench_mbedtls
BENCH_QEMU_TOKEN_ARGS = $(BENCH_QEMU_ARGS) USER_C_MODULES=$(CURDIR)/firmware/cmodule \
	BENCH_MBEDTLS=1 FROZEN_MANIFEST=$(CURDIR)/boards/qemu/manifest.py

bench-qemu: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	$(call bench_build,bench-qemu,qemu,$(BENCH_QEMU_TOKEN_ARGS))

# The same for a Cortex-M4 (QEMU's mps2-an386, the AN385's M4 twin: same memory map and
# UART): p256-m takes its Armv7E-M (UMAAL) path there (row 1).
bench-qemu-m4: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	$(call bench_build,bench-qemu-m4,qemu,$(BENCH_QEMU_TOKEN_ARGS) \
		QEMU_MACHINE=mps2-an386 CFLAGS_EXTRA=-mcpu=cortex-m4)

bench-qemu-bare: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	$(call bench_build,bench-qemu-bare,qemu,$(BENCH_QEMU_ARGS) FROZEN_MANIFEST=$(BENCH_BARE_MANIFEST) \
		CFLAGS_EXTRA=-DMICROPY_BOARD_LOCK=0)

bench-unix-bare: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	$(call bench_build,bench-unix-bare,unix,VARIANT_DIR=$(CURDIR)/boards/unix MPY_LIB_DIR=$(MPY_LIB_STUB) FROZEN_MANIFEST=)

# Needs a bare-metal RISC-V compiler: installed here, for the bench only.
bench-rv32: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	@bash bench/install-bench-deps.sh rv32
	$(call bench_build,bench-rv32,qemu,BOARD=VIRT_RV32 BOARD_DIR=$(CURDIR)/bench/boards/rv32 \
		USER_C_MODULES=$(CURDIR)/firmware/cmodule BENCH_MBEDTLS=1 MPY_LIB_DIR=$(MPY_LIB_STUB) \
		FROZEN_MANIFEST=$(CURDIR)/bench/boards/rv32/manifest.py)

# SoftHSM2 and qemu-system-riscv32 (Debian), PyKCS11 and matplotlib (PyPI, pinned in
# firmware/requirements-host.txt but installed by this target only).
bench-deps: deps
	@bash bench/install-bench-deps.sh host $(VENV)

# The user's tokens are not in BUILD. An image left there by an older p11board
# (BUILD/p11board-qemu/flash.img) is moved to the new place first, never deleted.
OLD_QEMU_FLASH := $(BUILD)/p11board-qemu/flash.img
USER_QEMU_FLASH := $(or $(XDG_DATA_HOME),$(HOME)/.local/share)/p11board/qemu-flash.img
# The C module's parsers (parse.c: private keys, public keys, certificates, its
# DER checks; pem.c) under libFuzzer with ASan and UBSan, natively, for
# FUZZ_SECONDS (default 300); prints executions and findings, fails on a finding.
# make test runs it for 30 s (host_tests/cmodule/test_fuzz_parsers.py).
FUZZ_SECONDS ?= 300
fuzz: deps sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	@BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) bash firmware/fuzz/fuzz.sh

clean:
	@if [ -f "$(OLD_QEMU_FLASH)" ]; then \
		if [ -e "$(USER_QEMU_FLASH)" ]; then \
			echo "[clean] $(OLD_QEMU_FLASH) holds a token and $(USER_QEMU_FLASH) exists too: move one away, then make clean again"; exit 1; \
		fi; \
		mkdir -p "$(dir $(USER_QEMU_FLASH))" && mv "$(OLD_QEMU_FLASH)" "$(USER_QEMU_FLASH)" && \
		echo "[clean] kept the p11board --qemu token: moved $(OLD_QEMU_FLASH) to $(USER_QEMU_FLASH)"; \
	fi
	rm -rf $(BUILD)
