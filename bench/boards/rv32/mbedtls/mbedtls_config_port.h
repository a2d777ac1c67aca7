// mbedTLS configuration of the bench-only VIRT_RV32 board: MicroPython's common
// bare-metal configuration, as on the project's MPS2-AN385 board; entropy and
// time from rv32_bench.c.
#ifndef MICROPY_INCLUDED_MBEDTLS_CONFIG_H
#define MICROPY_INCLUDED_MBEDTLS_CONFIG_H

#include <time.h>
extern time_t rv32_mbedtls_time(time_t *timer);
#define MBEDTLS_PLATFORM_TIME_MACRO rv32_mbedtls_time
#define MBEDTLS_PLATFORM_MS_TIME_ALT

#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)

#include "extmod/mbedtls/mbedtls_config_common.h"

#endif // MICROPY_INCLUDED_MBEDTLS_CONFIG_H
