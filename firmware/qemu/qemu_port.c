// Port extensions for MicroPython's qemu port on the MPS2-AN385 board.
//
// - semihosting helpers (host file access, host time, host entropy);
// - time: CMSDK TIMER0 at 25 MHz, extended to 64 bits by its wrap interrupt,
//   plus the host's wall clock (SYS_TIME) read once at boot;
// - UART0 receive by interrupt into a ring buffer, with Ctrl-C detection while
//   code runs and flow control (a full ring leaves the byte in the UART, and
//   qemu then holds back the rest);
// - an idle wait that spins briefly, then sleeps in WFI until an interrupt
//   (UART RX, or TIMER1 armed for the timeout), so an idle board does not burn
//   a host core.
//
// This is emulator-only code: real MPS2 hardware has no semihosting host unless
// a debugger provides it, and no entropy source at all.

#include <string.h>

#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stream.h"
#include "shared/runtime/interrupt_char.h"
#include "qemu_port.h"

// ---------------------------------------------------------------------------
// Semihosting

int32_t qemu_semihost_call(uint32_t op, const void *args) {
    register uint32_t r0 __asm__ ("r0") = op;
    register const void *r1 __asm__ ("r1") = args;
    __asm__ __volatile__ ("bkpt 0xAB" : "+r" (r0) : "r" (r1) : "memory");
    return (int32_t)r0;
}

int32_t qemu_semihost_open(const char *path, uint32_t mode) {
    uint32_t args[3] = { (uint32_t)path, mode, strlen(path) };
    return qemu_semihost_call(SEMIHOST_SYS_OPEN, args);
}

int32_t qemu_semihost_read(int32_t fd, void *buf, size_t len) {
    uint32_t args[3] = { (uint32_t)fd, (uint32_t)buf, len };
    return qemu_semihost_call(SEMIHOST_SYS_READ, args);
}

int32_t qemu_semihost_write(int32_t fd, const void *buf, size_t len) {
    uint32_t args[3] = { (uint32_t)fd, (uint32_t)buf, len };
    return qemu_semihost_call(SEMIHOST_SYS_WRITE, args);
}

int32_t qemu_semihost_seek(int32_t fd, uint32_t pos) {
    uint32_t args[2] = { (uint32_t)fd, pos };
    return qemu_semihost_call(SEMIHOST_SYS_SEEK, args);
}

int32_t qemu_semihost_flen(int32_t fd) {
    uint32_t args[1] = { (uint32_t)fd };
    return qemu_semihost_call(SEMIHOST_SYS_FLEN, args);
}

// ---------------------------------------------------------------------------
// Host entropy (emulator only: the MPS2 has no TRNG). os.urandom, random's
// seed and mbedTLS's entropy source all read the host's /dev/urandom.

static int32_t entropy_fd = -1;

int qemu_host_entropy(uint8_t *buf, size_t len) {
    if (entropy_fd < 0) {
        entropy_fd = qemu_semihost_open("/dev/urandom", SEMIHOST_MODE_RB);
        if (entropy_fd < 0) {
            return -1;
        }
    }
    return qemu_semihost_read(entropy_fd, buf, len) == 0 ? 0 : -1;
}

uint32_t qemu_host_entropy_u32(void) {
    uint32_t v;
    if (qemu_host_entropy((uint8_t *)&v, sizeof(v)) != 0) {
        v = (uint32_t)qemu_ticks64();
    }
    return v;
}

// ---------------------------------------------------------------------------
// Registers: NVIC/SCB, CMSDK timers and UART0 (addresses and IRQ numbers of
// the AN385 FPGA image, as modelled by qemu's mps2-an385 machine).

#define SCB_VTOR        (*(volatile uint32_t *)0xe000ed08)
#define NVIC_ISER0      (*(volatile uint32_t *)0xe000e100)

typedef struct {
    volatile uint32_t CTRL;
    volatile uint32_t VALUE;
    volatile uint32_t RELOAD;
    volatile uint32_t INTSTATUS; // write 1 to clear
} cmsdk_timer_t;

#define TIMER0 ((cmsdk_timer_t *)0x40000000)
#define TIMER1 ((cmsdk_timer_t *)0x40001000)
#define TIMER_CTRL_EN       (1 << 0)
#define TIMER_CTRL_IRQEN    (1 << 3)

typedef struct {
    volatile uint32_t DATA;
    volatile uint32_t STATE;
    volatile uint32_t CTRL;
    volatile uint32_t INTSTATUS; // write 1 to clear
    volatile uint32_t BAUDDIV;
} cmsdk_uart_t;

#define UART0 ((cmsdk_uart_t *)0x40004000)
#define UART_STATE_RXFULL   (1 << 1)
#define UART_CTRL_RX_INTEN  (1 << 3)
#define UART_INT_RX         (1 << 1)

#define IRQ_UART0_RX    (0)
#define IRQ_TIMER0      (8)
#define IRQ_TIMER1      (9)
#define NUM_IRQS        (32)

static void uart0_rx_irq_handler(void);
static void timer0_irq_handler(void);
static void timer1_irq_handler(void);

// The stock vector table (in startup.c) has the 16 system exceptions only; a
// copy in RAM with our IRQ handlers is installed through VTOR.
static uint32_t vector_table[16 + NUM_IRQS] __attribute__((aligned(256)));

// Set by every interrupt handler, cleared by qemu_wait_for_event: a wake-up
// that happens between a caller's check and its WFI is not lost.
static volatile uint32_t event_pending;

// ---------------------------------------------------------------------------
// Time

static volatile uint32_t timer0_wraps;
static uint32_t boot_unix_seconds;

static void timer0_irq_handler(void) {
    TIMER0->INTSTATUS = 1;
    timer0_wraps++;
}

uint64_t qemu_ticks64(void) {
    uint32_t state = qemu_disable_irq();
    uint32_t hi = timer0_wraps;
    uint32_t value = TIMER0->VALUE;
    if (TIMER0->INTSTATUS & 1) {
        // Wrapped, and the interrupt is not handled yet.
        hi++;
        value = TIMER0->VALUE;
    }
    qemu_enable_irq(state);
    return ((uint64_t)hi << 32) | (0xffffffffu - value);
}

mp_uint_t mp_hal_ticks_cpu(void) {
    return (mp_uint_t)qemu_ticks64();
}

mp_uint_t mp_hal_ticks_us(void) {
    return (mp_uint_t)(qemu_ticks64() / QEMU_TICKS_PER_US);
}

mp_uint_t mp_hal_ticks_ms(void) {
    return (mp_uint_t)(qemu_ticks64() / (QEMU_TICKS_PER_US * 1000));
}

void mp_hal_delay_us(mp_uint_t us) {
    uint64_t end = qemu_ticks64() + (uint64_t)us * QEMU_TICKS_PER_US;
    while (qemu_ticks64() < end) {
    }
}

void mp_hal_delay_ms(mp_uint_t ms) {
    uint64_t start = qemu_ticks64();
    uint64_t duration = (uint64_t)ms * QEMU_TICKS_PER_US * 1000;
    for (;;) {
        uint64_t elapsed = qemu_ticks64() - start;
        if (elapsed >= duration) {
            break;
        }
        uint32_t left_ms = (uint32_t)((duration - elapsed + QEMU_TICKS_PER_US * 1000 - 1) / (QEMU_TICKS_PER_US * 1000));
        mp_event_wait_ms(left_ms);
    }
}

// Nanoseconds since 1970: the host's clock at boot plus the time since boot.
uint64_t mp_hal_time_ns(void) {
    return (uint64_t)boot_unix_seconds * 1000000000ull + qemu_ticks64() * (1000 / QEMU_TICKS_PER_US);
}

static void timer1_irq_handler(void) {
    TIMER1->CTRL = 0;
    TIMER1->INTSTATUS = 1;
    event_pending = 1;
}

// Sleep until an interrupt, or at most timeout_ms (UINT32_MAX: no timeout).
void qemu_wait_for_event(uint32_t timeout_ms) {
    if (timeout_ms == 0) {
        return;
    }
    uint32_t state = qemu_disable_irq();
    if (!event_pending) {
        if (timeout_ms != UINT32_MAX) {
            // At most 100 s per sleep (TIMER1 is 32 bits at 25 MHz); callers loop.
            uint32_t ticks = (timeout_ms > 100000 ? 100000 : timeout_ms) * QEMU_TICKS_PER_US * 1000;
            TIMER1->CTRL = 0;
            TIMER1->INTSTATUS = 1;
            TIMER1->RELOAD = ticks;
            TIMER1->VALUE = ticks;
            TIMER1->CTRL = TIMER_CTRL_EN | TIMER_CTRL_IRQEN;
        }
        // WFI wakes on a pending interrupt even with PRIMASK set; the handler
        // then runs when interrupts are enabled again below.
        __asm volatile ("wfi");
        TIMER1->CTRL = 0;
    }
    event_pending = 0;
    qemu_enable_irq(state);
}

// ---------------------------------------------------------------------------
// UART0 receive

#define RX_BUF_SIZE (1024)
static uint8_t rx_buf[RX_BUF_SIZE];
static volatile uint32_t rx_head; // written with interrupts masked (or in the handler)
static volatile uint32_t rx_tail; // written by the reader
static volatile uint32_t rx_throttled;

// Move received bytes from the UART into the ring; call with interrupts masked.
static void uart0_rx_drain(void) {
    while (UART0->STATE & UART_STATE_RXFULL) {
        uint32_t next = (rx_head + 1) % RX_BUF_SIZE;
        if (next == rx_tail) {
            // Ring full: leave the byte in the UART (qemu holds back the rest)
            // until the reader makes room.
            UART0->CTRL &= ~UART_CTRL_RX_INTEN;
            rx_throttled = 1;
            return;
        }
        int c = UART0->DATA & 0xff;
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
        } else {
            rx_buf[rx_head] = c;
            rx_head = next;
        }
    }
}

static void uart0_rx_irq_handler(void) {
    // Clear first: a byte arriving during the drain raises the interrupt again.
    UART0->INTSTATUS = UART_INT_RX;
    uart0_rx_drain();
    event_pending = 1;
}

static int rx_available(void) {
    return rx_head != rx_tail;
}

static int rx_get(void) {
    uint32_t state = qemu_disable_irq();
    int c = -1;
    if (rx_head != rx_tail) {
        c = rx_buf[rx_tail];
        rx_tail = (rx_tail + 1) % RX_BUF_SIZE;
    }
    if (rx_throttled) {
        rx_throttled = 0;
        UART0->CTRL |= UART_CTRL_RX_INTEN;
        uart0_rx_drain();
    }
    qemu_enable_irq(state);
    return c;
}

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    uintptr_t ret = 0;
    if ((poll_flags & MP_STREAM_POLL_RD) && rx_available()) {
        ret |= MP_STREAM_POLL_RD;
    }
    if (poll_flags & MP_STREAM_POLL_WR) {
        ret |= MP_STREAM_POLL_WR;
    }
    return ret;
}

// How long to keep polling for the next byte before sleeping: bytes of a
// transfer (mpremote) arrive closely spaced, and sleeping between each of them
// would slow the transfer down.
#define RX_SPIN_TICKS (200 * QEMU_TICKS_PER_US)

int mp_hal_stdin_rx_chr(void) {
    for (;;) {
        int c = rx_get();
        if (c >= 0) {
            return c;
        }
        uint64_t start = qemu_ticks64();
        while (!rx_available() && qemu_ticks64() - start < RX_SPIN_TICKS) {
        }
        if (!rx_available()) {
            mp_event_wait_indefinite();
        }
    }
}

// ---------------------------------------------------------------------------
// Board initialisation (called first thing in main).

void qemu_board_init(void) {
    const uint32_t *stock = (const uint32_t *)SCB_VTOR;
    extern void Default_Handler(void);
    for (size_t i = 0; i < MP_ARRAY_SIZE(vector_table); ++i) {
        vector_table[i] = i < 16 ? stock[i] : (uint32_t)&Default_Handler;
    }
    vector_table[16 + IRQ_UART0_RX] = (uint32_t)&uart0_rx_irq_handler;
    vector_table[16 + IRQ_TIMER0] = (uint32_t)&timer0_irq_handler;
    vector_table[16 + IRQ_TIMER1] = (uint32_t)&timer1_irq_handler;
    __asm volatile ("dsb" ::: "memory");
    SCB_VTOR = (uint32_t)vector_table;

    // TIMER0: free running down-counter over the full 32 bits.
    TIMER0->CTRL = 0;
    TIMER0->RELOAD = 0xffffffff;
    TIMER0->VALUE = 0xffffffff;
    TIMER0->INTSTATUS = 1;
    TIMER0->CTRL = TIMER_CTRL_EN | TIMER_CTRL_IRQEN;
    TIMER1->CTRL = 0;
    TIMER1->INTSTATUS = 1;

    boot_unix_seconds = (uint32_t)qemu_semihost_call(SEMIHOST_SYS_TIME, NULL);

    // UART0 is enabled by the port's uart_init(); add the RX interrupt.
    UART0->INTSTATUS = UART_INT_RX;
    UART0->CTRL |= UART_CTRL_RX_INTEN;

    NVIC_ISER0 = (1 << IRQ_UART0_RX) | (1 << IRQ_TIMER0) | (1 << IRQ_TIMER1);
    __asm volatile ("cpsie i" ::: "memory");
}
