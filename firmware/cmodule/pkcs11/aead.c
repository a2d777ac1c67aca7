// _pkcs11 AEAD: AES-256-GCM for the store's sealed values (private key material
// at rest, issue 10 finding 4), on mbedTLS's GCM.
//
//   aead_seal(key32, nonce12, aad, plaintext) -> ciphertext || tag (16 bytes)
//   aead_open(key32, nonce12, aad, sealed)    -> plaintext (ValueError if the
//                                                tag does not verify)
//
// The plaintext comes back through pkcs11_secret_bytes (the C buffer is wiped);
// the GCM context, which holds the expanded key, is freed before anything raises.
#include <string.h>

#include "py/runtime.h"
#include "mbedtls/gcm.h"
#include "mbedtls/platform_util.h"
#include "modpkcs11.h"

#define AEAD_KEY_LEN (32)
#define AEAD_NONCE_LEN (12)
#define AEAD_TAG_LEN (16)

static mp_obj_t aead_run(size_t n_args, const mp_obj_t *args, bool seal) {
    (void)n_args;
    const uint8_t *key = pkcs11_fixed_buffer(args[0], AEAD_KEY_LEN, "AEAD key");
    const uint8_t *nonce = pkcs11_fixed_buffer(args[1], AEAD_NONCE_LEN, "AEAD nonce");
    size_t aad_len, in_len;
    const uint8_t *aad = pkcs11_buffer(args[2], &aad_len);
    const uint8_t *in = pkcs11_buffer(args[3], &in_len);
    if (!seal && in_len < AEAD_TAG_LEN) {
        mp_raise_ValueError(MP_ERROR_TEXT("sealed value shorter than its tag"));
    }
    size_t out_len = seal ? in_len + AEAD_TAG_LEN : in_len - AEAD_TAG_LEN;
    // One allocation before the key is expanded: nothing raises while it is live.
    uint8_t *out = m_new(uint8_t, out_len ? out_len : 1);
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    int ret = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, AEAD_KEY_LEN * 8);
    if (ret == 0) {
        if (seal) {
            ret = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, in_len, nonce, AEAD_NONCE_LEN,
                aad, aad_len, in, out, AEAD_TAG_LEN, out + in_len);
        } else {
            ret = mbedtls_gcm_auth_decrypt(&gcm, out_len, nonce, AEAD_NONCE_LEN, aad, aad_len,
                in + out_len, AEAD_TAG_LEN, in, out);
        }
    }
    mbedtls_gcm_free(&gcm);
    if (ret != 0) {
        mbedtls_platform_zeroize(out, out_len);
        m_del(uint8_t, out, out_len ? out_len : 1);
        if (ret == MBEDTLS_ERR_GCM_AUTH_FAILED) {
            mp_raise_ValueError(MP_ERROR_TEXT("sealed value does not verify (wrong key or altered)"));
        }
        pkcs11_raise_mbedtls(ret, "AES-GCM failed");
    }
    if (seal) {
        mp_obj_t res = mp_obj_new_bytes(out, out_len);
        m_del(uint8_t, out, out_len);
        return res;
    }
    mp_obj_t res = pkcs11_secret_bytes(out, out_len);
    m_del(uint8_t, out, out_len ? out_len : 1);
    return res;
}

static mp_obj_t pkcs11_aead_seal(size_t n_args, const mp_obj_t *args) {
    return aead_run(n_args, args, true);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_aead_seal_obj, 4, 4, pkcs11_aead_seal);

static mp_obj_t pkcs11_aead_open(size_t n_args, const mp_obj_t *args) {
    return aead_run(n_args, args, false);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pkcs11_aead_open_obj, 4, 4, pkcs11_aead_open);
