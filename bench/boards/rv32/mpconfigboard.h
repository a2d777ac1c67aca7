// Bench-only VIRT_RV32 board (see mpconfigboard.mk).
#include <stdint.h>
// mbedTLS allocates from the GC heap.
#define MICROPY_TRACKED_ALLOC               (MICROPY_SSL_MBEDTLS)
#define MICROPY_PY_OS_URANDOM               (0)
