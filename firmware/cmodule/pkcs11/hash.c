// _pkcs11 hashes: hash_new(name) for 'sha1', 'sha256', 'sha384', 'sha512'
// (MicroPython's hashlib has no SHA-384/512), on mbedTLS's SHA code.
//
// The hash state lives inside the Python object (no mbedTLS allocation);
// digest() finishes a copy, so update() may continue afterwards, as in
// CPython. A finaliser frees the state (hardware SHA engines on some ports).
#include <string.h>

#include "py/runtime.h"
#include "mbedtls/md.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/sha1.h"
#include "mbedtls/sha256.h"
#include "mbedtls/sha512.h"
#include "modpkcs11.h"

typedef union _pkcs11_hash_state_t {
    mbedtls_sha1_context sha1;
    mbedtls_sha256_context sha256;
    mbedtls_sha512_context sha512;
} pkcs11_hash_state_t;

typedef struct _pkcs11_hash_obj_t {
    mp_obj_base_t base;
    mbedtls_md_type_t type;
    pkcs11_hash_state_t state;
} pkcs11_hash_obj_t;

int pkcs11_md_from_name(mp_obj_t name_in, size_t *hlen) {
    const char *name = mp_obj_str_get_str(name_in);
    mbedtls_md_type_t type = MBEDTLS_MD_NONE;
    if (strcmp(name, "sha1") == 0) {
        type = MBEDTLS_MD_SHA1;
        *hlen = 20;
    } else if (strcmp(name, "sha256") == 0) {
        type = MBEDTLS_MD_SHA256;
        *hlen = 32;
    } else if (strcmp(name, "sha384") == 0) {
        type = MBEDTLS_MD_SHA384;
        *hlen = 48;
    } else if (strcmp(name, "sha512") == 0) {
        type = MBEDTLS_MD_SHA512;
        *hlen = 64;
    } else {
        mp_raise_msg_varg(&mp_type_ValueError,
            MP_ERROR_TEXT("unsupported hash '%s' (use sha1, sha256, sha384 or sha512)"), name);
    }
    return type;
}

static int hash_start(mbedtls_md_type_t type, pkcs11_hash_state_t *st) {
    if (type == MBEDTLS_MD_SHA1) {
        mbedtls_sha1_init(&st->sha1);
        return mbedtls_sha1_starts(&st->sha1);
    } else if (type == MBEDTLS_MD_SHA256) {
        mbedtls_sha256_init(&st->sha256);
        return mbedtls_sha256_starts(&st->sha256, 0);
    } else {
        mbedtls_sha512_init(&st->sha512);
        return mbedtls_sha512_starts(&st->sha512, type == MBEDTLS_MD_SHA384);
    }
}

static int hash_update(mbedtls_md_type_t type, pkcs11_hash_state_t *st, const uint8_t *data, size_t len) {
    if (type == MBEDTLS_MD_SHA1) {
        return mbedtls_sha1_update(&st->sha1, data, len);
    } else if (type == MBEDTLS_MD_SHA256) {
        return mbedtls_sha256_update(&st->sha256, data, len);
    } else {
        return mbedtls_sha512_update(&st->sha512, data, len);
    }
}

static int hash_finish(mbedtls_md_type_t type, pkcs11_hash_state_t *st, uint8_t *out) {
    if (type == MBEDTLS_MD_SHA1) {
        return mbedtls_sha1_finish(&st->sha1, out);
    } else if (type == MBEDTLS_MD_SHA256) {
        return mbedtls_sha256_finish(&st->sha256, out);
    } else {
        return mbedtls_sha512_finish(&st->sha512, out);
    }
}

static void hash_clone(mbedtls_md_type_t type, pkcs11_hash_state_t *dst, const pkcs11_hash_state_t *src) {
    if (type == MBEDTLS_MD_SHA1) {
        mbedtls_sha1_init(&dst->sha1);
        mbedtls_sha1_clone(&dst->sha1, &src->sha1);
    } else if (type == MBEDTLS_MD_SHA256) {
        mbedtls_sha256_init(&dst->sha256);
        mbedtls_sha256_clone(&dst->sha256, &src->sha256);
    } else {
        mbedtls_sha512_init(&dst->sha512);
        mbedtls_sha512_clone(&dst->sha512, &src->sha512);
    }
}

static void hash_free(mbedtls_md_type_t type, pkcs11_hash_state_t *st) {
    if (type == MBEDTLS_MD_SHA1) {
        mbedtls_sha1_free(&st->sha1);
    } else if (type == MBEDTLS_MD_SHA256) {
        mbedtls_sha256_free(&st->sha256);
    } else {
        mbedtls_sha512_free(&st->sha512);
    }
}

int pkcs11_hash_buffers(int type, const uint8_t *const *bufs, const size_t *lens, size_t n, uint8_t *out) {
    pkcs11_hash_state_t st;
    int ret = hash_start(type, &st);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        ret = hash_update(type, &st, bufs[i], lens[i]);
    }
    if (ret == 0) {
        ret = hash_finish(type, &st, out);
    }
    hash_free(type, &st);
    return ret;
}

// hash_new(name) -> object with update(data) and digest()
static mp_obj_t pkcs11_hash_new(mp_obj_t name_in) {
    size_t hlen;
    mbedtls_md_type_t type = pkcs11_md_from_name(name_in, &hlen);
    pkcs11_hash_obj_t *self = mp_obj_malloc_with_finaliser(pkcs11_hash_obj_t, &pkcs11_hash_type);
    self->type = type;
    int ret = hash_start(type, &self->state);
    if (ret != 0) {
        pkcs11_raise_mbedtls(ret, "hash: cannot start");
    }
    return MP_OBJ_FROM_PTR(self);
}
MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_hash_new_obj, pkcs11_hash_new);

static mp_obj_t pkcs11_hash_update(mp_obj_t self_in, mp_obj_t data_in) {
    pkcs11_hash_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t len;
    const uint8_t *data = pkcs11_buffer(data_in, &len);
    int ret = hash_update(self->type, &self->state, data, len);
    if (ret != 0) {
        pkcs11_raise_mbedtls(ret, "hash: update failed");
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(pkcs11_hash_update_obj, pkcs11_hash_update);

static mp_obj_t pkcs11_hash_digest(mp_obj_t self_in) {
    pkcs11_hash_obj_t *self = MP_OBJ_TO_PTR(self_in);
    pkcs11_hash_state_t copy;
    uint8_t out[64];
    size_t len = self->type == MBEDTLS_MD_SHA1 ? 20
        : self->type == MBEDTLS_MD_SHA256 ? 32
        : self->type == MBEDTLS_MD_SHA384 ? 48 : 64;
    hash_clone(self->type, &copy, &self->state);
    int ret = hash_finish(self->type, &copy, out);
    hash_free(self->type, &copy);
    if (ret != 0) {
        pkcs11_raise_mbedtls(ret, "hash: finish failed");
    }
    return mp_obj_new_bytes(out, len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_hash_digest_obj, pkcs11_hash_digest);

static mp_obj_t pkcs11_hash_del(mp_obj_t self_in) {
    pkcs11_hash_obj_t *self = MP_OBJ_TO_PTR(self_in);
    hash_free(self->type, &self->state);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_hash_del_obj, pkcs11_hash_del);

static const mp_rom_map_elem_t pkcs11_hash_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_update), MP_ROM_PTR(&pkcs11_hash_update_obj) },
    { MP_ROM_QSTR(MP_QSTR_digest), MP_ROM_PTR(&pkcs11_hash_digest_obj) },
    { MP_ROM_QSTR(MP_QSTR___del__), MP_ROM_PTR(&pkcs11_hash_del_obj) },
};
static MP_DEFINE_CONST_DICT(pkcs11_hash_locals, pkcs11_hash_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(
    pkcs11_hash_type,
    MP_QSTR_Hash,
    MP_TYPE_FLAG_NONE,
    locals_dict, &pkcs11_hash_locals
    );
