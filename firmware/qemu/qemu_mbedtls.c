// mbedTLS hooks for the emulated board: entropy from the host (emulator only,
// see qemu_port.c) and time from the host clock, for certificate validity.

#include "py/mphal.h"

#if MICROPY_SSL_MBEDTLS

#include <time.h>
#include "mbedtls/platform_time.h"
#include "shared/timeutils/timeutils.h"
#include "qemu_port.h"

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen) {
    (void)data;
    if (qemu_host_entropy(output, len) != 0) {
        *olen = 0;
        return -1;
    }
    *olen = len;
    return 0;
}

time_t qemu_mbedtls_time(time_t *timer) {
    time_t t = (time_t)(mp_hal_time_ns() / 1000000000ull);
    if (timer) {
        *timer = t;
    }
    return t;
}

mbedtls_ms_time_t mbedtls_ms_time(void) {
    return (mbedtls_ms_time_t)(mp_hal_time_ns() / 1000000ull);
}

// There is no C library on this target: mbedTLS's X.509 code needs gmtime.
struct tm *gmtime(const time_t *timep) {
    static struct tm tm;
    timeutils_struct_time_t t;
    timeutils_seconds_since_epoch_to_struct_time(*timep, &t);
    tm.tm_sec = t.tm_sec;
    tm.tm_min = t.tm_min;
    tm.tm_hour = t.tm_hour;
    tm.tm_mday = t.tm_mday;
    tm.tm_mon = t.tm_mon - 1;
    tm.tm_year = t.tm_year - 1900;
    tm.tm_wday = (t.tm_wday + 1) % 7; // struct tm counts from Sunday
    tm.tm_yday = t.tm_yday - 1;
    tm.tm_isdst = -1;
    return &tm;
}

#endif // MICROPY_SSL_MBEDTLS
