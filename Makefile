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

.PHONY: all deps sources unix qemu test test-unix test-qemu demo bench clean help

all: unix qemu

help:
	@echo "make demo    build the unix firmware and run the local AWS IoT stand-in demo"
	@echo "make test    build the unix and qemu firmware and run every test"
	@echo "make unix    build $(UNIX_BIN)"
	@echo "make qemu    build $(QEMU_ELF)"
	@echo "make clean   remove $(BUILD)"

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
		|| { echo "[venv] installing the host tool (pyproject.toml) failed"; exit 1; }
	@touch $@

sources: $(BUILD)/.deps-apt
	@BUILD=$(BUILD) bash firmware/fetch-sources.sh
	@mkdir -p $(MPY_LIB_STUB)
	@test -f $(MPY_LIB_STUB)/README.md || echo "Stand-in for micropython-lib (not used)." > $(MPY_LIB_STUB)/README.md

$(MPY_DIR)/mpy-cross/build/mpy-cross: | sources
	@echo "[build] mpy-cross"
	@$(MAKE) -s -C $(MPY_DIR)/mpy-cross -j$(JOBS) BUILD=build >/dev/null

unix: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	@echo "[build] unix firmware -> $(UNIX_BIN)"
	@$(MAKE) -s -C $(MPY_DIR)/ports/unix -j$(JOBS) $(COMMON_MAKE_ARGS) \
		VARIANT_DIR=$(CURDIR)/boards/unix BUILD=$(BUILD)/unix \
		> $(BUILD)/unix-build.log 2>&1 \
		|| { tail -n 30 $(BUILD)/unix-build.log; echo "[build] unix firmware failed; full log: $(BUILD)/unix-build.log"; exit 1; }

qemu: sources $(MPY_DIR)/mpy-cross/build/mpy-cross
	@echo "[build] qemu MPS2-AN385 firmware -> $(QEMU_ELF)"
	@$(MAKE) -s -C $(MPY_DIR)/ports/qemu -j$(JOBS) $(COMMON_MAKE_ARGS) \
		BOARD=MPS2_AN385 BOARD_DIR=$(CURDIR)/boards/qemu BUILD=$(BUILD)/qemu \
		FROZEN_MANIFEST=$(CURDIR)/boards/qemu/manifest.py \
		> $(BUILD)/qemu-build.log 2>&1 \
		|| { tail -n 30 $(BUILD)/qemu-build.log; echo "[build] qemu firmware failed; full log: $(BUILD)/qemu-build.log"; exit 1; }
	@arm-none-eabi-size $(QEMU_ELF)

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

clean:
	rm -rf $(BUILD)
