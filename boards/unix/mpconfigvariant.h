// Unix firmware for the pkcs11 token: the standard variant's features; the
// variant's .mk adds littlefs, threads and TLS, and a patch adds the raw REPL
// that mpremote needs.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#include "ports/unix/variants/mpconfigvariant_common.h"
