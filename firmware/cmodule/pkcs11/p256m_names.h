// _pkcs11 names for the public functions of p256-m (see p256m.c). Include
// this before "p256-m.h" so that both our calls and p256-m's definitions use
// these names: they can never clash with a p256-m that the port's mbedTLS
// build links itself (ESP-IDF's PSA driver, MBEDTLS_PSA_P256M_DRIVER_ENABLED).
#ifndef MICROPY_INCLUDED_PKCS11_P256M_NAMES_H
#define MICROPY_INCLUDED_PKCS11_P256M_NAMES_H

#define p256_generate_random        pkcs11_p256m_generate_random
#define p256_gen_keypair            pkcs11_p256m_gen_keypair
#define p256_ecdh_shared_secret     pkcs11_p256m_ecdh_shared_secret
#define p256_ecdsa_sign             pkcs11_p256m_ecdsa_sign
#define p256_ecdsa_verify           pkcs11_p256m_ecdsa_verify
#define p256_validate_pubkey        pkcs11_p256m_validate_pubkey
#define p256_validate_privkey       pkcs11_p256m_validate_privkey
#define p256_public_from_private    pkcs11_p256m_public_from_private

#endif // MICROPY_INCLUDED_PKCS11_P256M_NAMES_H
