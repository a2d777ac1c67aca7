// ESP32 with the PKCS#11 token (see ports/esp32/boards/ESP32_GENERIC).

#ifndef MICROPY_HW_BOARD_NAME
#define MICROPY_HW_BOARD_NAME "ESP32 module with PKCS#11 token"
#endif

#ifndef MICROPY_HW_MCU_NAME
#define MICROPY_HW_MCU_NAME "ESP32"
#endif

// Locked production mode (firmware/cmodule/pkcs11/lock.c, docs/security.md):
// the marker lives on the token partition next to the keys; erasing the
// partition removes both. A token partition that holds data but did not
// mount counts as locked.
#define MICROPY_BOARD_LOCK                  (1)
#define MICROPY_BOARD_LOCK_FILE             "/token/locked"
#define MICROPY_BOARD_LOCK_MOUNT            "/token"
#define MICROPY_BOARD_LOCK_STORAGE_USED()   pkcs11_esp32_token_used()
#include <stdbool.h>
bool pkcs11_esp32_token_used(void);
