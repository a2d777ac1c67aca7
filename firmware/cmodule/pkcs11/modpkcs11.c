// _pkcs11: module table. Each operation lives in its own file.
#include "py/runtime.h"

static const mp_rom_map_elem_t pkcs11_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__pkcs11) },
    { MP_ROM_QSTR(MP_QSTR_API_VERSION), MP_ROM_INT(1) },
};
static MP_DEFINE_CONST_DICT(pkcs11_module_globals, pkcs11_module_globals_table);

const mp_obj_module_t pkcs11_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&pkcs11_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__pkcs11, pkcs11_user_cmodule);
