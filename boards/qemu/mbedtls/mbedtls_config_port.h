// mbedTLS configuration for the emulated MPS2-AN385 board: MicroPython's common
// bare-metal configuration (GC-heap allocation, no platform entropy), with
// entropy and time provided by firmware/qemu/qemu_mbedtls.c.
#ifndef MICROPY_INCLUDED_MBEDTLS_CONFIG_H
#define MICROPY_INCLUDED_MBEDTLS_CONFIG_H

#include <time.h>
extern time_t qemu_mbedtls_time(time_t *timer);
#define MBEDTLS_PLATFORM_TIME_MACRO qemu_mbedtls_time
#define MBEDTLS_PLATFORM_MS_TIME_ALT

#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)

#include "extmod/mbedtls/mbedtls_config_common.h"

#endif // MICROPY_INCLUDED_MBEDTLS_CONFIG_H
