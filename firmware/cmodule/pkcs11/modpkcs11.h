// _pkcs11: shared declarations of the token's C crypto core.
//
// One file per job:
//   modpkcs11.c  module table
//   util.c       argument checks, secret-safe result objects, mbedTLS error mapping
//   drbg.c       random_bytes and the module's CTR_DRBG (seeded from the port's entropy)
//   p256m.c      compiles p256-m from the mbedTLS tree under _pkcs11 names
//   p256.c       ec_* functions (ECDSA P-256) on top of p256-m
//   rsa.c        rsa_* functions (PKCS#1 v1.5 and PSS) on top of mbedTLS rsa.c
//   pss.c        EMSA-PSS padding (RFC 8017 9.1) for rsa.c
//   hash.c       hash_new and its object type (SHA-1/256/384/512)
//   aead.c       aead_seal/aead_open: AES-256-GCM for the store's sealed values
//   pem.c        PEM armour: find a labelled block and decode its base64
//   parse.c      parse_private_key, parse_public_key, parse_certificate
//
// Rules kept by every file: byte strings are big-endian; errors are ValueError
// (bad input), OSError (random source failed) or MemoryError, and their text
// never contains key bytes; secret C buffers are wiped with
// mbedtls_platform_zeroize on every path; mbedTLS contexts are freed before
// anything can raise, or under an nlr handler that frees them.
#ifndef MICROPY_INCLUDED_PKCS11_MODPKCS11_H
#define MICROPY_INCLUDED_PKCS11_MODPKCS11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "py/obj.h"

// drbg.c
void pkcs11_drbg_init(void);
// mbedTLS-style random callback on the module's DRBG: 0 on success.
int pkcs11_rng(void *unused, unsigned char *out, size_t len);
// Reseed the DRBG from the entropy sources now: 0 on success.
int pkcs11_drbg_reseed(void);

// util.c
const uint8_t *pkcs11_buffer(mp_obj_t obj, size_t *len);
// The buffer of obj, which must be exactly len bytes long (ValueError naming what).
const uint8_t *pkcs11_fixed_buffer(mp_obj_t obj, size_t len, const char *what);
// A new bytes object holding buf[0:len]; buf is wiped afterwards, also when
// the allocation raises.
mp_obj_t pkcs11_secret_bytes(uint8_t *buf, size_t len);
// Wipe the content of every bytes value of a dict built by this module (used
// when building a result dict fails half-way).
void pkcs11_wipe_dict(mp_obj_t dict);
// Raise the exception matching an mbedTLS error code: MemoryError for
// allocation failures, OSError for random-source failures, otherwise
// ValueError with msg and the code in hex.
NORETURN void pkcs11_raise_mbedtls(int ret, const char *msg);
NORETURN void pkcs11_raise_rng(void);

// p256.c: C helpers shared with parse.c. 0 on success.
int pkcs11_p256_public(uint8_t q[65], const uint8_t d[32]);
bool pkcs11_p256_check_point(const uint8_t q[65]);
// p256m.c: ECDSA with a given nonce (see there).
int pkcs11_p256m_ecdsa_sign_k(uint8_t sig[64], const uint8_t priv[32],
    const uint8_t *hash, size_t hlen, const uint8_t kb[32]);

// pss.c: EMSA-PSS with MGF1 on the same hash, for a modulus of mod_bits
// bits; em is ceil((mod_bits - 1) / 8) bytes. The caller checks
// em_len >= hlen + salt_len + 2 before encoding. encode returns 0 or an
// mbedTLS error (random source); check unmasks em in place.
int pkcs11_pss_encode(int md, size_t hlen, const uint8_t *mhash, size_t salt_len, size_t mod_bits, uint8_t *em);
bool pkcs11_pss_check(int md, size_t hlen, const uint8_t *mhash, size_t salt_len, size_t mod_bits, uint8_t *em);

// hash.c: the mbedTLS type for a hash name (ValueError unless one of
// 'sha1', 'sha256', 'sha384', 'sha512'); *hlen receives the digest size.
int pkcs11_md_from_name(mp_obj_t name, size_t *hlen);
// out = Hash(bufs[0] || ... || bufs[n-1]); 0 or an mbedTLS error.
int pkcs11_hash_buffers(int type, const uint8_t *const *bufs, const size_t *lens, size_t n, uint8_t *out);
extern const mp_obj_type_t pkcs11_hash_type;

// Python functions, registered in modpkcs11.c.
MP_DECLARE_CONST_FUN_OBJ_1(pkcs11_random_bytes_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_aead_seal_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_aead_open_obj);
MP_DECLARE_CONST_FUN_OBJ_0(pkcs11_ec_generate_obj);
MP_DECLARE_CONST_FUN_OBJ_1(pkcs11_ec_public_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_ec_sign_obj);
MP_DECLARE_CONST_FUN_OBJ_3(pkcs11_ec_verify_obj);
MP_DECLARE_CONST_FUN_OBJ_1(pkcs11_ec_check_point_obj);
MP_DECLARE_CONST_FUN_OBJ_2(pkcs11_rsa_sign_pkcs1_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_rsa_sign_pss_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_rsa_verify_pkcs1_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_rsa_verify_pss_obj);
MP_DECLARE_CONST_FUN_OBJ_1(pkcs11_hash_new_obj);
MP_DECLARE_CONST_FUN_OBJ_1(pkcs11_parse_private_key_obj);
MP_DECLARE_CONST_FUN_OBJ_1(pkcs11_parse_public_key_obj);
MP_DECLARE_CONST_FUN_OBJ_1(pkcs11_parse_certificate_obj);
MP_DECLARE_CONST_FUN_OBJ_0(pkcs11_lock_file_obj);
MP_DECLARE_CONST_FUN_OBJ_0(pkcs11_locked_obj);
MP_DECLARE_CONST_FUN_OBJ_0(pkcs11_token_storage_used_obj);

// lock.c: boards with MICROPY_BOARD_LOCK call this after _boot.py (see lock.c).
bool pkcs11_lock_boot(void);
bool pkcs11_lock_active(void);

// fsmode.c: chmod where the host has POSIX permissions (the unix port)
#if defined(__unix__) || defined(__APPLE__)
#define PKCS11_HAVE_CHMOD (1)
MP_DECLARE_CONST_FUN_OBJ_2(pkcs11_chmod_obj);
#else
#define PKCS11_HAVE_CHMOD (0)
#endif

#endif // MICROPY_INCLUDED_PKCS11_MODPKCS11_H
