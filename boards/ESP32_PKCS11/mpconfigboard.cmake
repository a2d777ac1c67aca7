# ESP32 with the PKCS#11 token: ports/esp32/boards/ESP32_GENERIC plus our
# sdkconfig fragment, partition table and frozen manifest.
#
# Built by `make esp32` (top-level Makefile), which runs the port's Makefile with
#   BOARD_DIR=<this folder>
#   CMAKE_ARGS="-DUSER_C_MODULES=<repo>/firmware/cmodule/micropython.cmake
#               -DMICROPY_LIB_DIR=<stand-in> -DMICROPY_PY_BTREE=OFF"
# Paths in SDKCONFIG_DEFAULTS are relative to ports/esp32 (the CMake project),
# so the port's fragments are named as ESP32_GENERIC names them and ours by
# absolute path.

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# ESP-IDF resolves CONFIG_PARTITION_TABLE_CUSTOM_FILENAME relative to the
# project folder (ports/esp32); give it this board's table by absolute path.
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.partitions
    "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions.csv\"\n"
)
list(APPEND SDKCONFIG_DEFAULTS ${CMAKE_BINARY_DIR}/sdkconfig.partitions)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
