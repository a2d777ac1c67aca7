// Compiles p256-m, the small constant-time P-256 implementation that ships
// with mbedTLS 3.6 (3rdparty/p256-m/p256-m/p256-m.c), as part of _pkcs11.
// The source is included from the mbedTLS tree the firmware builds against
// (its folder is on the include path, see micropython.mk/.cmake), never
// copied. Three adjustments, all by macro, none by editing it:
// - its public functions get _pkcs11 names (p256m_names.h);
// - its body is guarded by MBEDTLS_PSA_P256M_DRIVER_ENABLED, which we define
//   for this file only (after the mbedTLS headers, so the rest of the
//   configuration is untouched);
// - it draws its random numbers (ECDSA nonces, key generation) from
//   psa_generate_random(), which we rename to a function that reads the
//   module's DRBG (drbg.c), so the PSA crypto core is not needed.
#include "p256m_names.h"
#define psa_generate_random pkcs11_p256m_psa_random

#include "mbedtls/platform_util.h"
#include "psa/crypto.h"

#ifndef MBEDTLS_PSA_P256M_DRIVER_ENABLED
#define MBEDTLS_PSA_P256M_DRIVER_ENABLED
#endif

#include "p256-m.c"

int pkcs11_rng(void *unused, unsigned char *out, size_t len);

psa_status_t psa_generate_random(uint8_t *output, size_t output_size) {
    return pkcs11_rng(NULL, output, output_size) == 0 ? PSA_SUCCESS : PSA_ERROR_INSUFFICIENT_ENTROPY;
}

// ECDSA with a caller-supplied nonce k (32 bytes, big-endian), for the
// RFC 6979 (hedged) nonces of p256.c: p256-m's own p256_ecdsa_sign draws k
// from the random source. The same steps as p256_ecdsa_sign (SEC 1 4.1.3),
// on p256-m's internal functions. Returns P256_RANDOM_FAILED when k is out of
// range or r or s is zero (the caller takes the next candidate, as RFC 6979
// 3.2 h.3 says), P256_INVALID_PRIVKEY for a bad key.
int pkcs11_p256m_ecdsa_sign_k(uint8_t sig[64], const uint8_t priv[32],
    const uint8_t *hash, size_t hlen, const uint8_t kb[32]) {
    uint32_t xr[8], k[8], t3[8], t4[8];
    int ret = scalar_from_bytes(k, kb);
    if (ret != 0) {
        zeroize(k, sizeof k);
        return P256_RANDOM_FAILED;
    }
    scalar_mult(xr, t3, p256_gx, p256_gy, k);   // xr = x_coord(k * G)
    m256_prep(k, &p256_n);
    m256_done(xr, &p256_p);
    ecdsa_m256_mod_n(xr);
    if (u256_diff0(xr) == 0) {
        zeroize(k, sizeof k);
        return P256_RANDOM_FAILED;
    }
    u256_to_bytes(sig, xr);
    m256_prep(xr, &p256_n);
    ecdsa_m256_from_hash(t3, hash, hlen);       // t3 = e
    ret = scalar_from_bytes(t4, priv);          // t4 = d
    if (ret != 0) {
        zeroize(k, sizeof k);
        zeroize(t4, sizeof t4);
        return P256_INVALID_PRIVKEY;
    }
    m256_prep(t4, &p256_n);
    m256_inv(k, k, &p256_n);
    m256_mul(t4, xr, t4, &p256_n);
    m256_add(t4, t3, t4, &p256_n);
    m256_mul(t4, k, t4, &p256_n);               // s = k^-1 (e + r d)
    zeroize(k, sizeof k);
    if (u256_diff0(t4) == 0) {
        u256_to_bytes(sig, t4);
        return P256_RANDOM_FAILED;
    }
    m256_to_bytes(sig + 32, t4, &p256_n);
    return P256_SUCCESS;
}
