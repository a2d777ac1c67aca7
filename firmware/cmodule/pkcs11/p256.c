// _pkcs11 ECDSA on NIST P-256 through p256-m (compiled by p256m.c).
//
// Keys: d is the 32-byte big-endian private scalar, 1 <= d < n; q is the
// 65-byte uncompressed point 0x04||X||Y. Signatures are raw r||s (64 bytes).
// ECDSA takes the leftmost 256 bits of a longer digest and the whole of a
// shorter one (p256-m does this itself, as SEC 1 4.1.3 step 5 says); the
// digest length accepted is 20..64 bytes. Nonces and keys come from the
// module's DRBG; p256-m wipes its own secret temporaries.
#include <string.h>

#include "py/runtime.h"
#include "mbedtls/platform_util.h"
#include "p256m_names.h"
#include "p256-m.h"
#include "modpkcs11.h"

#define P256_DIGEST_MIN (20)
#define P256_DIGEST_MAX (64)

int pkcs11_p256_public(uint8_t q[65], const uint8_t d[32]) {
    q[0] = 0x04;
    return p256_public_from_private(q + 1, d);
}

bool pkcs11_p256_check_point(const uint8_t q[65]) {
    return q[0] == 0x04 && p256_validate_pubkey(q + 1) == P256_SUCCESS;
}

static const uint8_t *p256_digest_arg(mp_obj_t digest_in, size_t *len) {
    const uint8_t *digest = pkcs11_buffer(digest_in, len);
    if (*len < P256_DIGEST_MIN || *len > P256_DIGEST_MAX) {
        mp_raise_ValueError(MP_ERROR_TEXT("ECDSA: digest must be 20..64 bytes"));
    }
    return digest;
}

static const uint8_t *p256_point_arg(mp_obj_t q_in) {
    const uint8_t *q = pkcs11_fixed_buffer(q_in, 65, "P-256: point q");
    if (!pkcs11_p256_check_point(q)) {
        mp_raise_ValueError(MP_ERROR_TEXT("P-256: q is not an uncompressed point on the curve"));
    }
    return q;
}

// ec_generate() -> (d: bytes[32], q: bytes[65])
static mp_obj_t pkcs11_ec_generate(void) {
    uint8_t d[32];
    uint8_t q[65];
    // Allocate the tuple and q first: the last allocation is then the one
    // that copies d, which pkcs11_secret_bytes wipes on every path.
    mp_obj_tuple_t *result = MP_OBJ_TO_PTR(mp_obj_new_tuple(2, NULL));
    q[0] = 0x04;
    if (p256_gen_keypair(d, q + 1) != P256_SUCCESS) {
        mbedtls_platform_zeroize(d, sizeof(d));
        pkcs11_raise_rng();
    }
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        result->items[1] = mp_obj_new_bytes(q, sizeof(q));
        nlr_pop();
    } else {
        mbedtls_platform_zeroize(d, sizeof(d));
        nlr_jump(nlr.ret_val);
    }
    result->items[0] = pkcs11_secret_bytes(d, sizeof(d));
    return MP_OBJ_FROM_PTR(result);
}
MP_DEFINE_CONST_FUN_OBJ_0(pkcs11_ec_generate_obj, pkcs11_ec_generate);

// ec_public(d: bytes[32]) -> q: bytes[65]
static mp_obj_t pkcs11_ec_public(mp_obj_t d_in) {
    const uint8_t *d = pkcs11_fixed_buffer(d_in, 32, "P-256: private key d");
    uint8_t q[65];
    if (pkcs11_p256_public(q, d) != P256_SUCCESS) {
        mp_raise_ValueError(MP_ERROR_TEXT("P-256: private key out of range (need 1 <= d < n)"));
    }
    return mp_obj_new_bytes(q, sizeof(q));
}
MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_ec_public_obj, pkcs11_ec_public);

// ec_sign(d: bytes[32], digest: bytes[20..64]) -> r||s: bytes[64]
static mp_obj_t pkcs11_ec_sign(mp_obj_t d_in, mp_obj_t digest_in) {
    const uint8_t *d = pkcs11_fixed_buffer(d_in, 32, "P-256: private key d");
    size_t digest_len;
    const uint8_t *digest = p256_digest_arg(digest_in, &digest_len);
    uint8_t sig[64];
    int ret = p256_ecdsa_sign(sig, d, digest, digest_len);
    if (ret == P256_INVALID_PRIVKEY) {
        mp_raise_ValueError(MP_ERROR_TEXT("P-256: private key out of range (need 1 <= d < n)"));
    } else if (ret != P256_SUCCESS) {
        pkcs11_raise_rng();
    }
    return mp_obj_new_bytes(sig, sizeof(sig));
}
MP_DEFINE_CONST_FUN_OBJ_2(pkcs11_ec_sign_obj, pkcs11_ec_sign);

// ec_verify(q: bytes[65], digest: bytes[20..64], sig: bytes[64]) -> bool
// ValueError for a malformed point or digest; False for any bad signature.
static mp_obj_t pkcs11_ec_verify(mp_obj_t q_in, mp_obj_t digest_in, mp_obj_t sig_in) {
    const uint8_t *q = p256_point_arg(q_in);
    size_t digest_len;
    const uint8_t *digest = p256_digest_arg(digest_in, &digest_len);
    size_t sig_len;
    const uint8_t *sig = pkcs11_buffer(sig_in, &sig_len);
    if (sig_len != 64) {
        return mp_const_false;
    }
    return mp_obj_new_bool(p256_ecdsa_verify(sig, q + 1, digest, digest_len) == P256_SUCCESS);
}
MP_DEFINE_CONST_FUN_OBJ_3(pkcs11_ec_verify_obj, pkcs11_ec_verify);

// ec_check_point(q) -> True if q is a 65-byte uncompressed point on P-256.
static mp_obj_t pkcs11_ec_check_point(mp_obj_t q_in) {
    size_t len;
    const uint8_t *q = pkcs11_buffer(q_in, &len);
    return mp_obj_new_bool(len == 65 && pkcs11_p256_check_point(q));
}
MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_ec_check_point_obj, pkcs11_ec_check_point);
