// Included by extmod/modos.c (MICROPY_PY_OS_INCLUDEFILE): os.urandom.
//
// Emulator only: the bytes come from the host's /dev/urandom through
// semihosting (the MPS2 board has no TRNG). A real board needs its own source.

#include "py/mperrno.h"
#include "qemu_port.h"

static mp_obj_t mp_os_urandom(mp_obj_t num) {
    mp_int_t n = mp_obj_get_int(num);
    if (n < 0) {
        mp_raise_ValueError(NULL);
    }
    vstr_t vstr;
    vstr_init_len(&vstr, n);
    if (qemu_host_entropy((uint8_t *)vstr.buf, n) != 0) {
        vstr_clear(&vstr);
        mp_raise_OSError(MP_EIO);
    }
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_1(mp_os_urandom_obj, mp_os_urandom);
