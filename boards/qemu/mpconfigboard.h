// Configuration of the project's MPS2-AN385 board (included first by
// ports/qemu/mpconfigport.h, see firmware/patches/qemu-board-hooks.patch).
// The functions named here live in firmware/qemu/.

#include <stdbool.h>
#include <stdint.h>

// Features the stock qemu board lacks.
#define MICROPY_PY_TIME                     (1)
#define MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME (1)
#define MICROPY_PY_TIME_TIME_TIME_NS        (1)
#define MICROPY_PY_TIME_INCLUDEFILE         "qemu_modtime.c"
#define MICROPY_EPOCH_IS_1970               (1)
#define MICROPY_PY_SELECT                   (1)
#define MICROPY_PY_SYS_STDIO_BUFFER         (1)
#define MICROPY_PY_OS_URANDOM               (1)
#define MICROPY_PY_OS_INCLUDEFILE           "qemu_modos.c"
#define MICROPY_PY_RANDOM_SEED_INIT_FUNC    (qemu_host_entropy_u32())
#define MICROPY_KBD_EXCEPTION               (1)
#define MICROPY_HELPER_REPL                 (1)
// mbedTLS allocates from the GC heap.
#define MICROPY_TRACKED_ALLOC               (MICROPY_SSL_MBEDTLS)

// Port hooks (see the patch).
#define MICROPY_BOARD_HAL_STDIN             (1)
#define MICROPY_BOARD_BOOT_SCRIPTS          (1)
#define MICROPY_BOARD_EARLY_INIT            qemu_board_init
#define MICROPY_BOARD_IDLE()                qemu_wait_for_event(1)

// Sleep until an interrupt (UART RX, timer) or until the timeout passes.
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS)    qemu_wait_for_event(TIMEOUT_MS)

// The UART RX interrupt touches the scheduler: mask interrupts around it.
#define MICROPY_BEGIN_ATOMIC_SECTION()      qemu_disable_irq()
#define MICROPY_END_ATOMIC_SECTION(state)   qemu_enable_irq(state)

// Locked production mode (firmware/cmodule/pkcs11/lock.c, docs/security.md):
// the marker lives in the token directory on the flash image; a flash image
// that holds data but does not mount counts as locked. Only a build without the
// C module (the bench's footprint baseline, bench-qemu-bare) turns it off.
#ifndef MICROPY_BOARD_LOCK
#define MICROPY_BOARD_LOCK                  (1)
#endif
#define MICROPY_BOARD_LOCK_FILE             "/pkcs11-token/locked"
#define MICROPY_BOARD_LOCK_MOUNT            "/"
#define MICROPY_BOARD_LOCK_STORAGE_USED()   qemu_flash_used()

void qemu_board_init(void);
bool qemu_flash_used(void);
void qemu_wait_for_event(uint32_t timeout_ms);
uint32_t qemu_host_entropy_u32(void);

static inline uint32_t qemu_disable_irq(void) {
    uint32_t state;
    __asm volatile ("mrs %0, primask\n cpsid i" : "=r" (state) : : "memory");
    return state;
}

static inline void qemu_enable_irq(uint32_t state) {
    __asm volatile ("msr primask, %0" : : "r" (state) : "memory");
}
