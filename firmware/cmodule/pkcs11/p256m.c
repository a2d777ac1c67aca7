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
