// _pkcs11: the token's C crypto core. This file holds the module table; each
// operation lives in its own file (see modpkcs11.h). The functions and their
// behaviour are the crypto backend contract shared with pkcs11.pure.backend.
#include "py/runtime.h"
#include "modpkcs11.h"

#if MICROPY_MODULE_BUILTIN_INIT
static mp_obj_t pkcs11_module_init(void) {
    pkcs11_drbg_init();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(pkcs11_module_init_obj, pkcs11_module_init);
#endif

static const mp_rom_map_elem_t pkcs11_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__pkcs11) },
    #if MICROPY_MODULE_BUILTIN_INIT
    { MP_ROM_QSTR(MP_QSTR___init__), MP_ROM_PTR(&pkcs11_module_init_obj) },
    #endif
    { MP_ROM_QSTR(MP_QSTR_API_VERSION), MP_ROM_INT(1) },

    // drbg.c
    { MP_ROM_QSTR(MP_QSTR_random_bytes), MP_ROM_PTR(&pkcs11_random_bytes_obj) },
    // p256.c
    { MP_ROM_QSTR(MP_QSTR_ec_generate), MP_ROM_PTR(&pkcs11_ec_generate_obj) },
    { MP_ROM_QSTR(MP_QSTR_ec_public), MP_ROM_PTR(&pkcs11_ec_public_obj) },
    { MP_ROM_QSTR(MP_QSTR_ec_sign), MP_ROM_PTR(&pkcs11_ec_sign_obj) },
    { MP_ROM_QSTR(MP_QSTR_ec_verify), MP_ROM_PTR(&pkcs11_ec_verify_obj) },
    { MP_ROM_QSTR(MP_QSTR_ec_check_point), MP_ROM_PTR(&pkcs11_ec_check_point_obj) },
    // rsa.c
    { MP_ROM_QSTR(MP_QSTR_rsa_sign_pkcs1), MP_ROM_PTR(&pkcs11_rsa_sign_pkcs1_obj) },
    { MP_ROM_QSTR(MP_QSTR_rsa_sign_pss), MP_ROM_PTR(&pkcs11_rsa_sign_pss_obj) },
    { MP_ROM_QSTR(MP_QSTR_rsa_verify_pkcs1), MP_ROM_PTR(&pkcs11_rsa_verify_pkcs1_obj) },
    { MP_ROM_QSTR(MP_QSTR_rsa_verify_pss), MP_ROM_PTR(&pkcs11_rsa_verify_pss_obj) },
    // aead.c
    { MP_ROM_QSTR(MP_QSTR_aead_seal), MP_ROM_PTR(&pkcs11_aead_seal_obj) },
    { MP_ROM_QSTR(MP_QSTR_aead_open), MP_ROM_PTR(&pkcs11_aead_open_obj) },
    // hash.c
    { MP_ROM_QSTR(MP_QSTR_hash_new), MP_ROM_PTR(&pkcs11_hash_new_obj) },
    // parse.c
    { MP_ROM_QSTR(MP_QSTR_parse_private_key), MP_ROM_PTR(&pkcs11_parse_private_key_obj) },
    { MP_ROM_QSTR(MP_QSTR_parse_public_key), MP_ROM_PTR(&pkcs11_parse_public_key_obj) },
    { MP_ROM_QSTR(MP_QSTR_parse_certificate), MP_ROM_PTR(&pkcs11_parse_certificate_obj) },
    #if PKCS11_HAVE_CHMOD
    // fsmode.c (store permissions on the unix port)
    { MP_ROM_QSTR(MP_QSTR_chmod), MP_ROM_PTR(&pkcs11_chmod_obj) },
    #endif
    // lock.c
    { MP_ROM_QSTR(MP_QSTR_lock_file), MP_ROM_PTR(&pkcs11_lock_file_obj) },
    { MP_ROM_QSTR(MP_QSTR_locked), MP_ROM_PTR(&pkcs11_locked_obj) },
    { MP_ROM_QSTR(MP_QSTR_token_storage_used), MP_ROM_PTR(&pkcs11_token_storage_used_obj) },
};
static MP_DEFINE_CONST_DICT(pkcs11_module_globals, pkcs11_module_globals_table);

const mp_obj_module_t pkcs11_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&pkcs11_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__pkcs11, pkcs11_user_cmodule);
