# Bench-only board (bench row 2): MicroPython's VIRT_RV32 board (32-bit RISC-V,
# the ESP32-C3's instruction set) with mbedTLS, the project's C module and frozen
# modules, and an instruction counter. No filesystem, UART as the stock board.
# Built by `make bench-rv32` into build/bench-rv32; run with
# qemu-system-riscv32 -machine virt -bios none -semihosting -icount ...
include $(TOP)/ports/qemu/boards/VIRT_RV32/mpconfigboard.mk

CFLAGS += -DMICROPY_BOARD_CONFIG_FILE='"mpconfigboard.h"'
CFLAGS += -I$(BOARD_DIR)

SRC_C += $(BOARD_DIR)/rv32_bench.c shared/timeutils/timeutils.c

MICROPY_SSL_MBEDTLS = 1
MICROPY_PY_SSL = 1

QSTR_GLOBAL_DEPENDENCIES += $(BOARD_DIR)/mpconfigboard.h $(BOARD_DIR)/mpconfigboard.mk
QSTR_GLOBAL_DEPENDENCIES += $(wildcard $(USER_C_MODULES)/*/micropython.mk)

# Debian's riscv64-unknown-elf toolchain has no rv32imac_zicsr multilib: the port's
# -march=rv32imac_zicsr would link the 64-bit default libgcc and picolibc. Build for
# rv32imac (the rv32imac/ilp32 multilib) with the 2.2 ISA spec, where the CSR
# instructions are still part of the base ISA: the same machine code.
RV32_ARCH = rv32imac
AFLAGS += -misa-spec=2.2
