// chmod for the token store on hosts with POSIX permissions (the unix port):
// the store makes its directory 0700 and its files 0600 (issue 10, finding 7).
// On boards (no permissions on littlefs/FAT) the function is absent and the
// store skips it.
#include "py/runtime.h"
#include "modpkcs11.h"

#if PKCS11_HAVE_CHMOD
#include <errno.h>
#include <sys/stat.h>

static mp_obj_t pkcs11_chmod(mp_obj_t path_in, mp_obj_t mode_in) {
    if (chmod(mp_obj_str_get_str(path_in), (mode_t)mp_obj_get_int(mode_in)) != 0) {
        mp_raise_OSError(errno);
    }
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_2(pkcs11_chmod_obj, pkcs11_chmod);
#endif
