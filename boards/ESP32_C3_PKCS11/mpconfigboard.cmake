# ESP32-C3 (RISC-V) with the PKCS#11 token: ports/esp32/boards/ESP32_GENERIC_C3
# plus the token board's shared part from ../ESP32_PKCS11 (token_board.cmake:
# the same sdkconfig fragment, partition table and frozen manifest as the ESP32
# board; nothing is copied). `make esp32 BOARD=ESP32_C3_PKCS11` builds it.
set(IDF_TARGET esp32c3)

# The port's fragments, as ESP32_GENERIC_C3 names them (relative to ports/esp32).
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/ESP32_GENERIC_C3/sdkconfig.c3usb
)

include(${CMAKE_CURRENT_LIST_DIR}/../ESP32_PKCS11/token_board.cmake)
