// Bench-only support for the VIRT_RV32 board (bench row 2):
//  - module _benchclk: count() -> the hart's instret counter (64 bits). Under
//    qemu -icount shift=N it is the virtual clock in ns, i.e. instructions << N;
//  - mbedtls_hardware_poll: the host's /dev/urandom through RISC-V semihosting
//    (emulator only; no weak fallback: a failed read fails the seed);
//  - mbedTLS time hooks and gmtime (no real-time clock: time starts at 0).
#include <string.h>
#include <time.h>
#include "py/runtime.h"
#include "py/mphal.h"
#include "shared/timeutils/timeutils.h"

static uint64_t rv32_instret(void) {
    uint32_t hi, lo, hi2;
    do {
        __asm volatile ("csrr %0, instreth" : "=r" (hi));
        __asm volatile ("csrr %0, instret" : "=r" (lo));
        __asm volatile ("csrr %0, instreth" : "=r" (hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}

static mp_obj_t benchclk_count(void) {
    return mp_obj_new_int_from_ull(rv32_instret());
}
static MP_DEFINE_CONST_FUN_OBJ_0(benchclk_count_obj, benchclk_count);

static const mp_rom_map_elem_t benchclk_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__benchclk) },
    { MP_ROM_QSTR(MP_QSTR_count), MP_ROM_PTR(&benchclk_count_obj) },
};
static MP_DEFINE_CONST_DICT(benchclk_globals, benchclk_globals_table);

const mp_obj_module_t benchclk_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&benchclk_globals,
};
MP_REGISTER_MODULE(MP_QSTR__benchclk, benchclk_module);

// DTLS timers in modtls_mbedtls want milliseconds: the virt machine's CLINT mtime
// (10 MHz; under -icount it follows the virtual clock).
mp_uint_t mp_hal_ticks_ms(void) {
    volatile uint32_t *mtime = (volatile uint32_t *)0x0200BFF8;
    uint32_t hi, lo;
    do {
        hi = mtime[1];
        lo = mtime[0];
    } while (hi != mtime[1]);
    return (mp_uint_t)((((uint64_t)hi << 32) | lo) / 10000);
}

// RISC-V semihosting: the magic sequence around ebreak, op in a0, arg in a1.
static __attribute__((noinline)) uintptr_t rv32_semihost(uintptr_t op, const void *arg) {
    register uintptr_t a0 __asm__ ("a0") = op;
    register uintptr_t a1 __asm__ ("a1") = (uintptr_t)arg;
    __asm volatile (
        ".option push\n .option norvc\n"
        ".balign 16\n"
        "slli x0, x0, 0x1f\n ebreak\n srai x0, x0, 7\n"
        ".option pop\n"
        : "+r" (a0) : "r" (a1) : "memory");
    return a0;
}

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_READ 0x06

#if MICROPY_SSL_MBEDTLS
#include "mbedtls/platform_time.h"

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen) {
    (void)data;
    *olen = 0;
    static const char path[] = "/dev/urandom";
    uintptr_t open_args[3] = { (uintptr_t)path, 0 /* "r" */, sizeof(path) - 1 };
    intptr_t fd = (intptr_t)rv32_semihost(SYS_OPEN, open_args);
    if (fd < 0) {
        return -1;
    }
    uintptr_t read_args[3] = { (uintptr_t)fd, (uintptr_t)output, len };
    uintptr_t left = rv32_semihost(SYS_READ, read_args);
    rv32_semihost(SYS_CLOSE, &fd);
    if (left != 0) {
        return -1;
    }
    *olen = len;
    return 0;
}

time_t rv32_mbedtls_time(time_t *timer) {
    if (timer) {
        *timer = 0;
    }
    return 0;
}

mbedtls_ms_time_t mbedtls_ms_time(void) {
    return 0;
}

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
    tm.tm_wday = (t.tm_wday + 1) % 7;
    tm.tm_yday = t.tm_yday - 1;
    tm.tm_isdst = -1;
    return &tm;
}
#endif
