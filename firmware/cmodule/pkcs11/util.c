// _pkcs11 helpers: argument checks, secret-safe result objects and the
// mapping of mbedTLS error codes to Python exceptions.
#include <string.h>

#include "py/runtime.h"
#include "py/nlr.h"
#include "py/objstr.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/bignum.h"
#include "mbedtls/ecp.h"
#include "mbedtls/pk.h"
#include "mbedtls/x509.h"
#include "mbedtls/entropy.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/rsa.h"
#include "modpkcs11.h"

const uint8_t *pkcs11_buffer(mp_obj_t obj, size_t *len) {
    mp_buffer_info_t info;
    mp_get_buffer_raise(obj, &info, MP_BUFFER_READ);
    *len = info.len;
    return info.buf;
}

const uint8_t *pkcs11_fixed_buffer(mp_obj_t obj, size_t len, const char *what) {
    size_t got;
    const uint8_t *buf = pkcs11_buffer(obj, &got);
    if (got != len) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s must be %u bytes, not %u"),
            what, (unsigned)len, (unsigned)got);
    }
    return buf;
}

mp_obj_t pkcs11_secret_bytes(uint8_t *buf, size_t len) {
    // mp_obj_new_bytes allocates the object, then the data, then copies: when
    // an allocation fails no copy of the secret is left behind in the heap.
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t obj = mp_obj_new_bytes(buf, len);
        nlr_pop();
        mbedtls_platform_zeroize(buf, len);
        return obj;
    }
    mbedtls_platform_zeroize(buf, len);
    nlr_jump(nlr.ret_val);
}

void pkcs11_wipe_dict(mp_obj_t dict) {
    if (dict == MP_OBJ_NULL || !mp_obj_is_type(dict, &mp_type_dict)) {
        return;
    }
    mp_map_t *map = mp_obj_dict_get_map(dict);
    for (size_t i = 0; i < map->alloc; i++) {
        if (mp_map_slot_is_filled(map, i) && mp_obj_is_type(map->table[i].value, &mp_type_bytes)) {
            // The bytes objects were created by this module and never shared.
            mp_obj_str_t *s = MP_OBJ_TO_PTR(map->table[i].value);
            mbedtls_platform_zeroize((void *)s->data, s->len);
        }
    }
}

NORETURN void pkcs11_raise_rng(void) {
    mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("_pkcs11: random source failed (no entropy)"));
}

NORETURN void pkcs11_raise_mbedtls(int ret, const char *msg) {
    // mbedTLS error codes are a high-level part (bits 7..14) plus a
    // low-level part (bits 0..6).
    int high = -((-ret) & 0x7f80);
    int low = -((-ret) & 0x007f);
    if (low == MBEDTLS_ERR_MPI_ALLOC_FAILED || high == MBEDTLS_ERR_PK_ALLOC_FAILED
        || high == MBEDTLS_ERR_X509_ALLOC_FAILED || high == MBEDTLS_ERR_ECP_ALLOC_FAILED) {
        mp_raise_msg(&mp_type_MemoryError, MP_ERROR_TEXT("_pkcs11: out of memory"));
    }
    if (high == MBEDTLS_ERR_RSA_RNG_FAILED || high == MBEDTLS_ERR_ECP_RANDOM_FAILED
        || low == MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED
        || low == MBEDTLS_ERR_ENTROPY_SOURCE_FAILED
        || low == MBEDTLS_ERR_ENTROPY_NO_SOURCES_DEFINED
        || low == MBEDTLS_ERR_ENTROPY_NO_STRONG_SOURCE) {
        pkcs11_raise_rng();
    }
    mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s (mbedTLS error -0x%04x)"), msg, (unsigned)-ret);
}
