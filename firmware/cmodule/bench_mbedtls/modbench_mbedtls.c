// _bench_mbedtls: the benchmark's baseline for the token's crypto, mbedTLS's own
// ECDSA (ecp.c/ecdsa.c, as MicroPython configures mbedTLS) and RSA through the
// pk layer. Bench-only (see micropython.mk): the key lives in C statics between
// load and free; the bench boots a fresh board for each phase.
//
//   ec_load(d: bytes[32])            ec_keygen()        ec_sign(h) -> r||s
//   ec_verify(h, sig) -> bool        rsa_load(der)      rsa_sign(h) -> sig
//   rsa_verify(h, sig) -> bool       free()
// Hashes are SHA-256 digests (32 bytes). Random numbers come from _pkcs11's
// DRBG, the same source the token uses.
#include <string.h>
#include "py/runtime.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/pk.h"
#include "mbedtls/rsa.h"
#include "modpkcs11.h"

static mbedtls_ecdsa_context bench_ec;
static bool bench_ec_ready;
static mbedtls_pk_context bench_pk;
static bool bench_pk_ready;

static void bench_check(int ret, const char *what) {
    if (ret != 0) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: mbedTLS error -0x%04x"), what, -ret);
    }
}

static const uint8_t *bench_hash(mp_obj_t h_in) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(h_in, &b, MP_BUFFER_READ);
    if (b.len != 32) {
        mp_raise_ValueError(MP_ERROR_TEXT("need a 32-byte digest"));
    }
    return b.buf;
}

static void bench_free_all(void) {
    if (bench_ec_ready) {
        mbedtls_ecdsa_free(&bench_ec);
        bench_ec_ready = false;
    }
    if (bench_pk_ready) {
        mbedtls_pk_free(&bench_pk);
        bench_pk_ready = false;
    }
}

static mp_obj_t bench_free(void) {
    bench_free_all();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(bench_free_obj, bench_free);

static mp_obj_t bench_ec_load(mp_obj_t d_in) {
    mp_buffer_info_t d;
    mp_get_buffer_raise(d_in, &d, MP_BUFFER_READ);
    bench_free_all();
    mbedtls_ecdsa_init(&bench_ec);
    bench_ec_ready = true;
    int ret = mbedtls_ecp_group_load(&bench_ec.MBEDTLS_PRIVATE(grp), MBEDTLS_ECP_DP_SECP256R1);
    if (ret == 0) {
        ret = mbedtls_mpi_read_binary(&bench_ec.MBEDTLS_PRIVATE(d), d.buf, d.len);
    }
    if (ret == 0) {
        ret = mbedtls_ecp_mul(&bench_ec.MBEDTLS_PRIVATE(grp), &bench_ec.MBEDTLS_PRIVATE(Q),
            &bench_ec.MBEDTLS_PRIVATE(d), &bench_ec.MBEDTLS_PRIVATE(grp).G, pkcs11_rng, NULL);
    }
    bench_check(ret, "ec_load");
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bench_ec_load_obj, bench_ec_load);

static mp_obj_t bench_ec_keygen(void) {
    mbedtls_ecdsa_context k;
    mbedtls_ecdsa_init(&k);
    int ret = mbedtls_ecdsa_genkey(&k, MBEDTLS_ECP_DP_SECP256R1, pkcs11_rng, NULL);
    mbedtls_ecdsa_free(&k);
    bench_check(ret, "ec_keygen");
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(bench_ec_keygen_obj, bench_ec_keygen);

static mp_obj_t bench_ec_sign(mp_obj_t h_in) {
    const uint8_t *h = bench_hash(h_in);
    if (!bench_ec_ready) {
        mp_raise_ValueError(MP_ERROR_TEXT("ec_load first"));
    }
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    uint8_t sig[64];
    int ret = mbedtls_ecdsa_sign(&bench_ec.MBEDTLS_PRIVATE(grp), &r, &s, &bench_ec.MBEDTLS_PRIVATE(d),
        h, 32, pkcs11_rng, NULL);
    if (ret == 0) {
        ret = mbedtls_mpi_write_binary(&r, sig, 32);
    }
    if (ret == 0) {
        ret = mbedtls_mpi_write_binary(&s, sig + 32, 32);
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    bench_check(ret, "ec_sign");
    return mp_obj_new_bytes(sig, sizeof(sig));
}
static MP_DEFINE_CONST_FUN_OBJ_1(bench_ec_sign_obj, bench_ec_sign);

static mp_obj_t bench_ec_verify(mp_obj_t h_in, mp_obj_t sig_in) {
    const uint8_t *h = bench_hash(h_in);
    mp_buffer_info_t sig;
    mp_get_buffer_raise(sig_in, &sig, MP_BUFFER_READ);
    if (!bench_ec_ready || sig.len != 64) {
        mp_raise_ValueError(MP_ERROR_TEXT("ec_load first; sig is r||s"));
    }
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int ret = mbedtls_mpi_read_binary(&r, sig.buf, 32);
    if (ret == 0) {
        ret = mbedtls_mpi_read_binary(&s, (const uint8_t *)sig.buf + 32, 32);
    }
    if (ret == 0) {
        ret = mbedtls_ecdsa_verify(&bench_ec.MBEDTLS_PRIVATE(grp), h, 32, &bench_ec.MBEDTLS_PRIVATE(Q), &r, &s);
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return mp_obj_new_bool(ret == 0);
}
static MP_DEFINE_CONST_FUN_OBJ_2(bench_ec_verify_obj, bench_ec_verify);

static mp_obj_t bench_rsa_load(mp_obj_t der_in) {
    mp_buffer_info_t der;
    mp_get_buffer_raise(der_in, &der, MP_BUFFER_READ);
    bench_free_all();
    mbedtls_pk_init(&bench_pk);
    bench_pk_ready = true;
    int ret = mbedtls_pk_parse_key(&bench_pk, der.buf, der.len, NULL, 0, pkcs11_rng, NULL);
    bench_check(ret, "rsa_load");
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bench_rsa_load_obj, bench_rsa_load);

static mp_obj_t bench_rsa_sign(mp_obj_t h_in) {
    const uint8_t *h = bench_hash(h_in);
    if (!bench_pk_ready) {
        mp_raise_ValueError(MP_ERROR_TEXT("rsa_load first"));
    }
    uint8_t sig[MBEDTLS_MPI_MAX_SIZE];
    size_t len = 0;
    int ret = mbedtls_pk_sign(&bench_pk, MBEDTLS_MD_SHA256, h, 32, sig, sizeof(sig), &len,
        pkcs11_rng, NULL);
    bench_check(ret, "rsa_sign");
    return mp_obj_new_bytes(sig, len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bench_rsa_sign_obj, bench_rsa_sign);

static mp_obj_t bench_rsa_verify(mp_obj_t h_in, mp_obj_t sig_in) {
    const uint8_t *h = bench_hash(h_in);
    mp_buffer_info_t sig;
    mp_get_buffer_raise(sig_in, &sig, MP_BUFFER_READ);
    if (!bench_pk_ready) {
        mp_raise_ValueError(MP_ERROR_TEXT("rsa_load first"));
    }
    int ret = mbedtls_pk_verify(&bench_pk, MBEDTLS_MD_SHA256, h, 32, sig.buf, sig.len);
    return mp_obj_new_bool(ret == 0);
}
static MP_DEFINE_CONST_FUN_OBJ_2(bench_rsa_verify_obj, bench_rsa_verify);

static const mp_rom_map_elem_t bench_mbedtls_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__bench_mbedtls) },
    { MP_ROM_QSTR(MP_QSTR_ec_load), MP_ROM_PTR(&bench_ec_load_obj) },
    { MP_ROM_QSTR(MP_QSTR_ec_keygen), MP_ROM_PTR(&bench_ec_keygen_obj) },
    { MP_ROM_QSTR(MP_QSTR_ec_sign), MP_ROM_PTR(&bench_ec_sign_obj) },
    { MP_ROM_QSTR(MP_QSTR_ec_verify), MP_ROM_PTR(&bench_ec_verify_obj) },
    { MP_ROM_QSTR(MP_QSTR_rsa_load), MP_ROM_PTR(&bench_rsa_load_obj) },
    { MP_ROM_QSTR(MP_QSTR_rsa_sign), MP_ROM_PTR(&bench_rsa_sign_obj) },
    { MP_ROM_QSTR(MP_QSTR_rsa_verify), MP_ROM_PTR(&bench_rsa_verify_obj) },
    { MP_ROM_QSTR(MP_QSTR_free), MP_ROM_PTR(&bench_free_obj) },
};
static MP_DEFINE_CONST_DICT(bench_mbedtls_globals, bench_mbedtls_globals_table);

const mp_obj_module_t bench_mbedtls_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&bench_mbedtls_globals,
};

MP_REGISTER_MODULE(MP_QSTR__bench_mbedtls, bench_mbedtls_module);
