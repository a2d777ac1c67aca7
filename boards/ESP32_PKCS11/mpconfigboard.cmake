# ESP32 with the PKCS#11 token: ports/esp32/boards/ESP32_GENERIC plus the token
# board's shared part (token_board.cmake: sdkconfig fragment, partition table,
# frozen manifest, all in this folder; ESP32_C3_PKCS11 uses the same files).
#
# Built by `make esp32` (top-level Makefile), which runs idf.py in ports/esp32 with
#   -D MICROPY_BOARD_DIR=<this folder>
#   -DUSER_C_MODULES=<repo>/firmware/cmodule/micropython.cmake
#   -DMICROPY_LIB_DIR=<stand-in> -DMICROPY_PY_BTREE=OFF

# The port's fragments, as ESP32_GENERIC names them (relative to ports/esp32).
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
)

include(${CMAKE_CURRENT_LIST_DIR}/token_board.cmake)
