// Port extensions for the emulated MPS2-AN385 board (QEMU only).
#ifndef QEMU_PORT_H
#define QEMU_PORT_H

#include <stddef.h>
#include <stdint.h>

// ARM semihosting: the host (qemu, started with -semihosting) services these.
#define SEMIHOST_SYS_OPEN   (0x01)
#define SEMIHOST_SYS_CLOSE  (0x02)
#define SEMIHOST_SYS_WRITE  (0x05)
#define SEMIHOST_SYS_READ   (0x06)
#define SEMIHOST_SYS_SEEK   (0x0a)
#define SEMIHOST_SYS_FLEN   (0x0c)
#define SEMIHOST_SYS_TIME   (0x11)

// SYS_OPEN modes (ISO C fopen modes, in this order).
#define SEMIHOST_MODE_RB    (1)
#define SEMIHOST_MODE_RPB   (3)
#define SEMIHOST_MODE_WPB   (7)

int32_t qemu_semihost_call(uint32_t op, const void *args);
int32_t qemu_semihost_open(const char *path, uint32_t mode);
// Both return 0 when all len bytes were transferred (else the count left over).
int32_t qemu_semihost_read(int32_t fd, void *buf, size_t len);
int32_t qemu_semihost_write(int32_t fd, const void *buf, size_t len);
int32_t qemu_semihost_seek(int32_t fd, uint32_t pos);
int32_t qemu_semihost_flen(int32_t fd);

// 25 MHz ticks since boot (CMSDK TIMER0 extended to 64 bits).
uint64_t qemu_ticks64(void);
#define QEMU_TICKS_PER_US (25)

// Entropy from the host's /dev/urandom. Returns 0 on success.
int qemu_host_entropy(uint8_t *buf, size_t len);

#endif // QEMU_PORT_H
