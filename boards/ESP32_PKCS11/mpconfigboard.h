// ESP32 with the PKCS#11 token (see ports/esp32/boards/ESP32_GENERIC).

#ifndef MICROPY_HW_BOARD_NAME
#define MICROPY_HW_BOARD_NAME "ESP32 module with PKCS#11 token"
#endif

#ifndef MICROPY_HW_MCU_NAME
#define MICROPY_HW_MCU_NAME "ESP32"
#endif
