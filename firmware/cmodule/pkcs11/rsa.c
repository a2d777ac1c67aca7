// _pkcs11 RSA signatures on mbedTLS's rsa.c: PKCS#1 v1.5 (type 1 padding
// around caller-supplied data such as a DER DigestInfo) and PSS (MGF1 with
// the same hash; the padding is pss.c's, the RSA operation mbedTLS's), with
// CRT and blinding (randomness from the module's DRBG).
//
// Private keys arrive as (n, e, d, p, q, dp, dq, qinv) byte strings; mbedTLS
// is given n, e, d, p, q and derives its own CRT values (dp, dq, qinv are
// accepted but not used). Every private operation is checked by mbedTLS
// with the public exponent before the result leaves, so an inconsistent key
// gives ValueError, never a faulty signature. The mbedTLS context is freed
// (which wipes it) before anything can raise.
//
// Signing calls mbedtls_rsa_rsassa_pkcs1_v15_sign or mbedtls_rsa_private,
// never the mbedtls_pk_sign* functions: the TLS sign hook (../p11tls) wraps
// mbedtls_pk_sign_restartable with -Wl,--wrap, and the token's own signatures
// must not go through it.
#include <string.h>

#include "py/runtime.h"
#include "mbedtls/rsa.h"
#include "mbedtls/platform_util.h"
#include "modpkcs11.h"

#if !defined(MBEDTLS_PKCS1_V15)
#error "_pkcs11 needs MBEDTLS_PKCS1_V15 in the mbedTLS configuration"
#endif

enum { KEY_N, KEY_E, KEY_D, KEY_P, KEY_Q, KEY_DP, KEY_DQ, KEY_QINV, KEY_PARTS };

typedef struct _rsa_part_t {
    const uint8_t *buf;
    size_t len;
} rsa_part_t;

// Bit length of a big-endian unsigned integer.
static size_t rsa_bits(const uint8_t *buf, size_t len) {
    while (len > 0 && buf[0] == 0) {
        buf++;
        len--;
    }
    if (len == 0) {
        return 0;
    }
    size_t bits = (len - 1) * 8;
    for (uint8_t top = buf[0]; top != 0; top >>= 1) {
        bits++;
    }
    return bits;
}

static void rsa_key_arg(mp_obj_t key_in, rsa_part_t key[KEY_PARTS]) {
    size_t n;
    mp_obj_t *items;
    mp_obj_get_array(key_in, &n, &items);
    if (n != KEY_PARTS) {
        mp_raise_ValueError(MP_ERROR_TEXT("RSA: key must be (n, e, d, p, q, dp, dq, qinv)"));
    }
    for (size_t i = 0; i < KEY_PARTS; i++) {
        key[i].buf = pkcs11_buffer(items[i], &key[i].len);
    }
}

// Set up ctx (already initialised) for private-key operations. No raising.
static int rsa_import_private(mbedtls_rsa_context *ctx, const rsa_part_t key[KEY_PARTS]) {
    int ret = mbedtls_rsa_import_raw(ctx,
        key[KEY_N].buf, key[KEY_N].len,
        key[KEY_P].buf, key[KEY_P].len,
        key[KEY_Q].buf, key[KEY_Q].len,
        key[KEY_D].buf, key[KEY_D].len,
        key[KEY_E].buf, key[KEY_E].len);
    if (ret == 0) {
        ret = mbedtls_rsa_complete(ctx);
    }
    return ret;
}

// Set up ctx (already initialised) for public-key operations. No raising.
static int rsa_import_public(mbedtls_rsa_context *ctx, const rsa_part_t *n, const rsa_part_t *e) {
    int ret = mbedtls_rsa_import_raw(ctx, n->buf, n->len, NULL, 0, NULL, 0, NULL, 0, e->buf, e->len);
    if (ret == 0) {
        ret = mbedtls_rsa_complete(ctx);
    }
    return ret;
}

static bool rsa_is_alloc_failure(int ret) {
    return ((-ret) & 0x7f) == -MBEDTLS_ERR_MPI_ALLOC_FAILED;
}

// Finish a signature: free the context, then return the vstr as bytes or raise.
static mp_obj_t rsa_sign_result(mbedtls_rsa_context *ctx, int ret, vstr_t *sig) {
    mbedtls_rsa_free(ctx);
    if (ret != 0) {
        vstr_clear(sig);
        pkcs11_raise_mbedtls(ret, "RSA: invalid or inconsistent private key");
    }
    return mp_obj_new_bytes_from_vstr(sig);
}

// Finish a verification: free the context; True, False, or MemoryError.
static mp_obj_t rsa_verify_result(mbedtls_rsa_context *ctx, int ret) {
    mbedtls_rsa_free(ctx);
    if (ret != 0 && rsa_is_alloc_failure(ret)) {
        pkcs11_raise_mbedtls(ret, "RSA: verify");
    }
    return mp_obj_new_bool(ret == 0);
}

// rsa_sign_pkcs1(key, data) -> bytes[k]; data (e.g. a DigestInfo) <= k - 11 bytes.
static mp_obj_t pkcs11_rsa_sign_pkcs1(mp_obj_t key_in, mp_obj_t data_in) {
    rsa_part_t key[KEY_PARTS];
    rsa_key_arg(key_in, key);
    size_t data_len;
    const uint8_t *data = pkcs11_buffer(data_in, &data_len);
    size_t k = (rsa_bits(key[KEY_N].buf, key[KEY_N].len) + 7) / 8;
    if (data_len + 11 > k) {
        mp_raise_ValueError(MP_ERROR_TEXT("RSA PKCS#1: data too long for the key"));
    }
    vstr_t sig;
    vstr_init_len(&sig, k);

    mbedtls_rsa_context ctx;
    mbedtls_rsa_init(&ctx);
    int ret = rsa_import_private(&ctx, key);
    if (ret == 0) {
        ret = mbedtls_rsa_rsassa_pkcs1_v15_sign(&ctx, pkcs11_rng, NULL, MBEDTLS_MD_NONE,
            data_len, data, (unsigned char *)sig.buf);
    }
    return rsa_sign_result(&ctx, ret, &sig);
}
MP_DEFINE_CONST_FUN_OBJ_2(pkcs11_rsa_sign_pkcs1_obj, pkcs11_rsa_sign_pkcs1);

// rsa_sign_pss(key, mhash, hash_name, salt_len) -> bytes[k]
static mp_obj_t pkcs11_rsa_sign_pss(size_t n_args, const mp_obj_t *args) {
    rsa_part_t key[KEY_PARTS];
    rsa_key_arg(args[0], key);
    size_t mhash_len;
    const uint8_t *mhash = pkcs11_buffer(args[1], &mhash_len);
    size_t hlen;
    mbedtls_md_type_t md = pkcs11_md_from_name(args[2], &hlen);
    if (mhash_len != hlen) {
        mp_raise_ValueError(MP_ERROR_TEXT("RSA PSS: hash length does not match the hash"));
    }
    mp_int_t salt_len = mp_obj_get_int(args[3]);
    size_t bits = rsa_bits(key[KEY_N].buf, key[KEY_N].len);
    size_t em_len = (bits + 6) / 8; // ceil((bits - 1) / 8), RFC 8017 9.1.1
    if (salt_len < 0 || bits < 2 || em_len < hlen + (size_t)salt_len + 2) {
        mp_raise_ValueError(MP_ERROR_TEXT("RSA PSS: salt too long for the key"));
    }
    size_t k = (bits + 7) / 8;
    vstr_t sig;
    vstr_init_len(&sig, k);
    sig.buf[0] = 0; // EM is one byte shorter than k when bits % 8 == 1
    int ret = pkcs11_pss_encode(md, hlen, mhash, salt_len, bits, (uint8_t *)sig.buf + (k - em_len));

    mbedtls_rsa_context ctx;
    mbedtls_rsa_init(&ctx);
    if (ret == 0) {
        ret = rsa_import_private(&ctx, key);
    }
    if (ret == 0) {
        ret = mbedtls_rsa_private(&ctx, pkcs11_rng, NULL, (unsigned char *)sig.buf, (unsigned char *)sig.buf);
    }
    return rsa_sign_result(&ctx, ret, &sig);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_rsa_sign_pss_obj, 4, 4, pkcs11_rsa_sign_pss);

// rsa_verify_pkcs1(n, e, data, sig) -> bool
static mp_obj_t pkcs11_rsa_verify_pkcs1(size_t n_args, const mp_obj_t *args) {
    rsa_part_t n, e;
    n.buf = pkcs11_buffer(args[0], &n.len);
    e.buf = pkcs11_buffer(args[1], &e.len);
    size_t data_len, sig_len;
    const uint8_t *data = pkcs11_buffer(args[2], &data_len);
    const uint8_t *sig = pkcs11_buffer(args[3], &sig_len);
    size_t k = (rsa_bits(n.buf, n.len) + 7) / 8;
    if (sig_len != k || data_len + 11 > k) {
        return mp_const_false;
    }
    mbedtls_rsa_context ctx;
    mbedtls_rsa_init(&ctx);
    int ret = rsa_import_public(&ctx, &n, &e);
    if (ret != 0) {
        mbedtls_rsa_free(&ctx);
        pkcs11_raise_mbedtls(ret, "RSA: invalid public key");
    }
    ret = mbedtls_rsa_rsassa_pkcs1_v15_verify(&ctx, MBEDTLS_MD_NONE, data_len, data, sig);
    return rsa_verify_result(&ctx, ret);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_rsa_verify_pkcs1_obj, 4, 4, pkcs11_rsa_verify_pkcs1);

// rsa_verify_pss(n, e, mhash, hash_name, salt_len, sig) -> bool
static mp_obj_t pkcs11_rsa_verify_pss(size_t n_args, const mp_obj_t *args) {
    rsa_part_t n, e;
    n.buf = pkcs11_buffer(args[0], &n.len);
    e.buf = pkcs11_buffer(args[1], &e.len);
    size_t mhash_len, sig_len;
    const uint8_t *mhash = pkcs11_buffer(args[2], &mhash_len);
    size_t hlen;
    mbedtls_md_type_t md = pkcs11_md_from_name(args[3], &hlen);
    if (mhash_len != hlen) {
        mp_raise_ValueError(MP_ERROR_TEXT("RSA PSS: hash length does not match the hash"));
    }
    mp_int_t salt_len = mp_obj_get_int(args[4]);
    const uint8_t *sig = pkcs11_buffer(args[5], &sig_len);
    size_t bits = rsa_bits(n.buf, n.len);
    size_t em_len = (bits + 6) / 8;
    if (salt_len < 0 || bits < 2 || sig_len != (bits + 7) / 8 || em_len < hlen + (size_t)salt_len + 2) {
        return mp_const_false;
    }
    size_t k = sig_len;
    uint8_t *em = m_new(uint8_t, k);
    mbedtls_rsa_context ctx;
    mbedtls_rsa_init(&ctx);
    int ret = rsa_import_public(&ctx, &n, &e);
    if (ret == 0) {
        ret = mbedtls_rsa_public(&ctx, sig, em);
        if (ret != 0 && !rsa_is_alloc_failure(ret)) {
            ret = 1; // not a valid signature representative (sig >= n)
        }
    }
    mbedtls_rsa_free(&ctx);
    bool ok = ret == 0 && (k == em_len || em[0] == 0)
        && pkcs11_pss_check(md, hlen, mhash, salt_len, bits, em + (k - em_len));
    m_del(uint8_t, em, k);
    if (ret < 0) {
        pkcs11_raise_mbedtls(ret, "RSA: invalid public key");
    }
    return mp_obj_new_bool(ok);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_rsa_verify_pss_obj, 6, 6, pkcs11_rsa_verify_pss);
