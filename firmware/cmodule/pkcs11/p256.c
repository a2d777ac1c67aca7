// _pkcs11 ECDSA on NIST P-256 through p256-m (compiled by p256m.c).
//
// Keys: d is the 32-byte big-endian private scalar, 1 <= d < n; q is the
// 65-byte uncompressed point 0x04||X||Y. Signatures are raw r||s (64 bytes).
// ECDSA takes the leftmost 256 bits of a longer digest and the whole of a
// shorter one (p256-m does this itself, as SEC 1 4.1.3 step 5 says); the
// digest length accepted is 20..64 bytes. Keys come from the module's DRBG;
// p256-m wipes its own secret temporaries.
//
// Nonces are hedged (RFC 6979 section 3.6): k comes from RFC 6979's HMAC-DRBG
// seeded with the private key, the digest and 32 bytes of the module's DRBG as
// the extra input k'. A weak or repeating random source then cannot reveal the
// key (the nonce still depends on key and message), and a fault or side channel
// on the deterministic part meets fresh randomness. HMAC-SHA-256 is the HMAC
// for every digest length (RFC 6979 pairs it with SHA-256; for other digests
// the nonce differs from RFC 6979's but is derived the same way).
// ec_sign(d, digest, extra) takes k' from the caller: extra=b"" gives plain
// RFC 6979, which host_tests/cmodule/test_rfc6979.py checks against the RFC's
// P-256 vectors.
#include <string.h>

#include "py/runtime.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/sha256.h"
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
    #ifdef ESP_PLATFORM
    // Fresh entropy (bootloader_random_enable() on, see drbg.c) for every key.
    if (pkcs11_drbg_reseed() != 0) {
        pkcs11_raise_rng();
    }
    #endif
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

// -- RFC 6979 nonces ------------------------------------------------------------

// P-256's group order n, big-endian.
static const uint8_t p256_order[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

typedef struct {
    uint8_t k[32];
    uint8_t v[32];
    bool started;
} rfc6979_t;

// out = HMAC-SHA-256(key, a || b || c || d || e), a NULL part ends the list.
static void hmac_sha256(const uint8_t key[32], const uint8_t *const *parts, const size_t *lens, uint8_t out[32]) {
    uint8_t pad[64];
    uint8_t inner[32];
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    for (int i = 0; i < 64; i++) {
        pad[i] = (i < 32 ? key[i] : 0) ^ 0x36;
    }
    mbedtls_sha256_starts(&ctx, 0);
    mbedtls_sha256_update(&ctx, pad, 64);
    for (int i = 0; parts[i] != NULL; i++) {
        mbedtls_sha256_update(&ctx, parts[i], lens[i]);
    }
    mbedtls_sha256_finish(&ctx, inner);
    for (int i = 0; i < 64; i++) {
        pad[i] ^= 0x36 ^ 0x5c;
    }
    mbedtls_sha256_starts(&ctx, 0);
    mbedtls_sha256_update(&ctx, pad, 64);
    mbedtls_sha256_update(&ctx, inner, 32);
    mbedtls_sha256_finish(&ctx, out);
    mbedtls_sha256_free(&ctx);
    mbedtls_platform_zeroize(pad, sizeof(pad));
    mbedtls_platform_zeroize(inner, sizeof(inner));
}

// bits2octets(h1) for P-256: the leftmost 256 bits of the digest (a shorter
// digest left-padded with zeros), reduced mod n.
static void rfc6979_bits2octets(uint8_t out[32], const uint8_t *digest, size_t len) {
    memset(out, 0, 32);
    if (len >= 32) {
        memcpy(out, digest, 32);
    } else {
        memcpy(out + 32 - len, digest, len);
    }
    // z < 2^256 < 2n: one conditional subtraction reduces it.
    int ge = 1;
    for (int i = 0; i < 32; i++) {
        if (out[i] != p256_order[i]) {
            ge = out[i] > p256_order[i];
            break;
        }
    }
    if (ge) {
        int borrow = 0;
        for (int i = 31; i >= 0; i--) {
            int t = out[i] - p256_order[i] - borrow;
            borrow = t < 0;
            out[i] = (uint8_t)t;
        }
    }
}

// RFC 6979 3.2 steps b..g, with the extra input k' of section 3.6.
static void rfc6979_init(rfc6979_t *st, const uint8_t d[32], const uint8_t *digest, size_t digest_len,
    const uint8_t *extra, size_t extra_len) {
    uint8_t h1[32];
    rfc6979_bits2octets(h1, digest, digest_len);
    memset(st->v, 0x01, 32);
    memset(st->k, 0x00, 32);
    st->started = false;
    for (uint8_t sep = 0; sep < 2; sep++) {
        const uint8_t *parts[] = { st->v, &sep, d, h1, extra, NULL };
        const size_t lens[] = { 32, 1, 32, 32, extra_len };
        if (extra_len == 0) {
            parts[4] = NULL;
        }
        hmac_sha256(st->k, parts, lens, st->k);
        const uint8_t *vp[] = { st->v, NULL };
        const size_t vl[] = { 32 };
        hmac_sha256(st->k, vp, vl, st->v);
    }
    mbedtls_platform_zeroize(h1, sizeof(h1));
}

// The next candidate k (RFC 6979 3.2 step h; qlen = 256 bits, one block).
static void rfc6979_next(rfc6979_t *st, uint8_t out[32]) {
    const uint8_t *vp[] = { st->v, NULL };
    const size_t vl[] = { 32 };
    if (st->started) {
        static const uint8_t zero = 0;
        const uint8_t *parts[] = { st->v, &zero, NULL };
        const size_t lens[] = { 32, 1 };
        hmac_sha256(st->k, parts, lens, st->k);
        hmac_sha256(st->k, vp, vl, st->v);
    }
    st->started = true;
    hmac_sha256(st->k, vp, vl, st->v);
    memcpy(out, st->v, 32);
}

// ec_sign(d: bytes[32], digest: bytes[20..64][, extra]) -> r||s: bytes[64]
// Hedged RFC 6979 nonce; extra (test hook) replaces the DRBG's 32 bytes k'
// (b"": plain RFC 6979).
static mp_obj_t pkcs11_ec_sign(size_t n_args, const mp_obj_t *args) {
    const uint8_t *d = pkcs11_fixed_buffer(args[0], 32, "P-256: private key d");
    size_t digest_len;
    const uint8_t *digest = p256_digest_arg(args[1], &digest_len);
    uint8_t extra[32];
    const uint8_t *extra_p = extra;
    size_t extra_len = sizeof(extra);
    if (n_args > 2) {
        extra_p = pkcs11_buffer(args[2], &extra_len);
    } else if (pkcs11_rng(NULL, extra, sizeof(extra)) != 0) {
        pkcs11_raise_rng();
    }
    rfc6979_t st;
    rfc6979_init(&st, d, digest, digest_len, extra_p, extra_len);
    mbedtls_platform_zeroize(extra, sizeof(extra));
    uint8_t sig[64];
    uint8_t k[32];
    int ret = P256_RANDOM_FAILED;
    for (int tries = 0; tries < 16 && ret == P256_RANDOM_FAILED; tries++) {
        rfc6979_next(&st, k);
        ret = pkcs11_p256m_ecdsa_sign_k(sig, d, digest, digest_len, k);
    }
    mbedtls_platform_zeroize(k, sizeof(k));
    mbedtls_platform_zeroize(&st, sizeof(st));
    if (ret == P256_INVALID_PRIVKEY) {
        mp_raise_ValueError(MP_ERROR_TEXT("P-256: private key out of range (need 1 <= d < n)"));
    } else if (ret != P256_SUCCESS) {
        pkcs11_raise_rng();
    }
    return mp_obj_new_bytes(sig, sizeof(sig));
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_ec_sign_obj, 2, 3, pkcs11_ec_sign);

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
