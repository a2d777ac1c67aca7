// Unix firmware for the pkcs11 token: the standard variant's features; the
// variant's .mk adds littlefs, threads and TLS, and a patch adds the raw REPL
// that mpremote needs.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

// Names for the banner and sys.implementation._machine (the shared REPL
// prints them too).
#define MICROPY_HW_BOARD_NAME "pkcs11 token firmware (unix)"
#define MICROPY_HW_MCU_NAME "host CPU"

#include "ports/unix/variants/mpconfigvariant_common.h"
