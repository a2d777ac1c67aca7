# The token board's shared part, kept once in this folder and included by
# ESP32_PKCS11/mpconfigboard.cmake and ESP32_C3_PKCS11/mpconfigboard.cmake
# after they have set the chip (IDF_TARGET) and the port's sdkconfig fragments
# of the matching generic board. It adds, for every chip:
#   sdkconfig.board  4 MiB flash, custom partition table, the mbedTLS options
#                    _pkcs11 and the TLS sign hook rely on
#   partitions.csv   the 4 MiB table with the "token" littlefs partition
#   manifest.py      the frozen modules (port modules, our _boot.py, the token)
# Paths in SDKCONFIG_DEFAULTS are relative to ports/esp32 (the CMake project),
# so ours are given by absolute path.
get_filename_component(PKCS11_TOKEN_BOARD_DIR ${CMAKE_CURRENT_LIST_DIR} ABSOLUTE)

list(APPEND SDKCONFIG_DEFAULTS ${PKCS11_TOKEN_BOARD_DIR}/sdkconfig.board)

# ESP-IDF resolves CONFIG_PARTITION_TABLE_CUSTOM_FILENAME relative to the
# project folder (ports/esp32); give it the table by absolute path.
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.partitions
    "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${PKCS11_TOKEN_BOARD_DIR}/partitions.csv\"\n"
)
list(APPEND SDKCONFIG_DEFAULTS ${CMAKE_BINARY_DIR}/sdkconfig.partitions)

set(MICROPY_FROZEN_MANIFEST ${PKCS11_TOKEN_BOARD_DIR}/manifest.py)
