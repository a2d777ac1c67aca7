// ESP32-C3 with the PKCS#11 token (see ports/esp32/boards/ESP32_GENERIC_C3):
// 4 MiB of flash, REPL on UART0 (modules with a USB-UART bridge) and on the
// chip's USB serial/JTAG.

#ifndef MICROPY_HW_BOARD_NAME
#define MICROPY_HW_BOARD_NAME "ESP32-C3 module with PKCS#11 token"
#endif

#ifndef MICROPY_HW_MCU_NAME
#define MICROPY_HW_MCU_NAME "ESP32C3"
#endif

#define MICROPY_HW_ENABLE_UART_REPL (1)
