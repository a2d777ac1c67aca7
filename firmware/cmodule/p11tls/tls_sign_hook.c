// _p11tls: TLS client authentication through the token (its own user C
// module: firmware/cmodule/p11tls, with the --wrap link flag in its
// micropython.mk / micropython.cmake; it needs _pkcs11 for its random numbers,
// _pkcs11 builds without it).
//
// mbedTLS signs the TLS 1.2 CertificateVerify message with
// mbedtls_pk_sign_restartable() (ssl_tls12_client.c), for EC and RSA keys
// alike. The firmware is linked with --wrap=mbedtls_pk_sign_restartable, so
// that call lands in __wrap_mbedtls_pk_sign_restartable() below; every other
// caller of that function (and _pkcs11, which never calls it) is unaffected.
//
// The key loaded into an SSLContext is a *reference key*: a well-formed key
// whose private value is MAGIC || ticket. The ticket names a Python signer
// registered with _p11tls.register(); each connection gets its own ticket
// (16 bytes from _pkcs11's DRBG), so any number of TLS sockets with different
// token keys can be open at once.
//   EC P-256: SEC1 ECPrivateKey, d = MAGIC(8) || ticket(16) || 0(8); mbedTLS
//             derives the (meaningless) public point itself.
//   RSA:      PKCS#1 RSAPrivateKey with the token key's real n and e,
//             d = MAGIC || ticket, p = q = 3, dp = dq = qinv = 1 (mbedTLS 3.6
//             checks only that n, p, q are odd and dp, dq nonzero).
// Keys without the magic are signed by the real mbedTLS function. A reference
// key whose ticket is unknown is refused: the dummy values are never used.
//
// TLS 1.3 (when the firmware's mbedTLS has MBEDTLS_SSL_PROTO_TLS1_3) signs
// CertificateVerify with mbedtls_pk_sign_ext() (ssl_tls13_generic.c), whose
// call to mbedtls_pk_sign_restartable() stays inside pk.c where --wrap cannot
// reach it: the firmware also wraps mbedtls_pk_sign_ext. ECDSA goes the TLS 1.2
// way; RSA is RSASSA-PSS there (salt length = hash length):
//   RSA-PSS: signer(hash, hash_len) -> k bytes (as CKM_RSA_PKCS_PSS gives).
//
// The signer is called under nlr_push: an exception (a PKCS11Error from the
// token, say) is kept for _p11tls.last_error(ticket) and the handshake fails
// with an mbedTLS error code; no exception ever unwinds through mbedTLS.
//   EC:  signer(hash) -> raw r || s (as CKM_ECDSA gives), converted to DER here.
//   RSA: signer(DER DigestInfo for the hash mbedTLS asked for) -> k bytes
//        (as CKM_RSA_PKCS gives).
//
// The registry {ticket: [signer, last_exception]} is kept in sys.modules
// under "_p11tls_signers" while any signer is registered: sys.modules is
// reachable by the GC and is created afresh by every soft reset, whereas a C
// root pointer would keep pointing into the old heap after a soft reset on a
// board (MicroPython has no reset hook for user C modules).

#include <string.h>

#include "py/runtime.h"
#include "py/objstr.h"

#if MICROPY_PY_SSL && MICROPY_SSL_MBEDTLS

#include "mbedtls/pk.h"
#include "mbedtls/rsa.h"
#include "mbedtls/md.h"
#include "mbedtls/platform_util.h"

#include "modpkcs11.h"

#if !defined(MBEDTLS_ECP_C) || !defined(MBEDTLS_RSA_C) || !defined(MBEDTLS_MD_C)
#error "tls_sign_hook.c needs MBEDTLS_ECP_C, MBEDTLS_RSA_C and MBEDTLS_MD_C"
#endif

#define MAGIC "P11TLSRK"
#define MAGIC_LEN (8)
#define TICKET_LEN (16)
// An EC reference key's d is one P-256 scalar: MAGIC || ticket || zeros.
#define EC_REF_LEN (32)
// An RSA reference key's d is exactly MAGIC || ticket.
#define RSA_REF_LEN (MAGIC_LEN + TICKET_LEN)
// Longest raw r || s accepted from a signer (P-521: 2 * 66 bytes).
#define MAX_RAW_SIG (132)

// What the handshake reports when the signature cannot be made.
#define ERR_UNKNOWN_TICKET MBEDTLS_ERR_PK_KEY_INVALID_FORMAT
#define ERR_EC_SIGNER MBEDTLS_ERR_ECP_INVALID_KEY
#define ERR_RSA_SIGNER MBEDTLS_ERR_RSA_PRIVATE_FAILED

int __real_mbedtls_pk_sign_restartable(mbedtls_pk_context *ctx,
    mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
    unsigned char *sig, size_t sig_size, size_t *sig_len,
    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng,
    mbedtls_pk_restart_ctx *rs_ctx);

int __wrap_mbedtls_pk_sign_restartable(mbedtls_pk_context *ctx,
    mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
    unsigned char *sig, size_t sig_size, size_t *sig_len,
    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng,
    mbedtls_pk_restart_ctx *rs_ctx);

int __real_mbedtls_pk_sign_ext(mbedtls_pk_type_t pk_type, mbedtls_pk_context *ctx,
    mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
    unsigned char *sig, size_t sig_size, size_t *sig_len,
    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);

int __wrap_mbedtls_pk_sign_ext(mbedtls_pk_type_t pk_type, mbedtls_pk_context *ctx,
    mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
    unsigned char *sig, size_t sig_size, size_t *sig_len,
    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);

/******************************************************************************/
// The registry.

// Without a GIL (the unix port) threads change the registry concurrently: one
// thread's unregister could drop the registry dict from sys.modules while
// another stores its signer in it (issue 10, finding 10). Every look-up and
// change of the registry holds this lock; signers run outside it. Nothing
// that can raise runs while it is held (allocations happen before, or under
// nlr_push so the lock is released first).
#if MICROPY_PY_THREAD && !MICROPY_PY_THREAD_GIL
#include "py/mpthread.h"
#if !MICROPY_MODULE_BUILTIN_INIT
#error "_p11tls needs MICROPY_MODULE_BUILTIN_INIT to set up its registry lock"
#endif
static mp_thread_mutex_t p11tls_reg_mutex;
static bool p11tls_reg_mutex_ready;
static void reg_lock_init(void) {
    if (!p11tls_reg_mutex_ready) {
        mp_thread_mutex_init(&p11tls_reg_mutex);
        p11tls_reg_mutex_ready = true;
    }
}
#define REG_LOCK() mp_thread_mutex_lock(&p11tls_reg_mutex, 1)
#define REG_UNLOCK() mp_thread_mutex_unlock(&p11tls_reg_mutex)
#else
static inline void reg_lock_init(void) {
}
#define REG_LOCK()
#define REG_UNLOCK()
#endif

// Returns the registry dict, creating it if asked; MP_OBJ_NULL if absent.
static mp_obj_t registry(bool create) {
    mp_map_t *modules = &MP_STATE_VM(mp_loaded_modules_dict).map;
    mp_map_elem_t *elem = mp_map_lookup(modules, MP_OBJ_NEW_QSTR(MP_QSTR__p11tls_signers),
        create ? MP_MAP_LOOKUP_ADD_IF_NOT_FOUND : MP_MAP_LOOKUP);
    if (elem == NULL) {
        return MP_OBJ_NULL;
    }
    if (elem->value == MP_OBJ_NULL) {
        elem->value = mp_obj_new_dict(0);
    }
    return elem->value;
}

// The [signer, last_exception] list of a ticket, or NULL. Never raises.
static mp_obj_list_t *lookup_entry_locked(const uint8_t *ticket);
static mp_obj_list_t *lookup_entry(const uint8_t *ticket) {
    REG_LOCK();
    mp_obj_list_t *entry = lookup_entry_locked(ticket);
    REG_UNLOCK();
    return entry;
}

static mp_obj_list_t *lookup_entry_locked(const uint8_t *ticket) {
    mp_obj_t reg = registry(false);
    if (reg == MP_OBJ_NULL || !mp_obj_is_type(reg, &mp_type_dict)) {
        return NULL;
    }
    // A stack bytes object is enough for a lookup (the key is not stored).
    mp_obj_str_t key = {{&mp_type_bytes}, 0, TICKET_LEN, ticket};
    key.hash = qstr_compute_hash(ticket, TICKET_LEN);
    mp_map_elem_t *elem = mp_map_lookup(mp_obj_dict_get_map(reg), MP_OBJ_FROM_PTR(&key), MP_MAP_LOOKUP);
    if (elem == NULL || !mp_obj_is_type(elem->value, &mp_type_list)) {
        return NULL;
    }
    mp_obj_list_t *entry = MP_OBJ_TO_PTR(elem->value);
    return entry->len == 2 ? entry : NULL;
}

/******************************************************************************/
// Recognising a reference key.

// Copies the ticket out of a reference key; false for any other key.
static bool reference_ticket(const mbedtls_pk_context *pk, bool *is_rsa, uint8_t *ticket) {
    uint8_t d[EC_REF_LEN];
    size_t d_len;
    mbedtls_pk_type_t type = mbedtls_pk_get_type(pk);
    if (type == MBEDTLS_PK_RSA) {
        // A real key's d does not fit in RSA_REF_LEN bytes, so nothing secret is copied.
        d_len = RSA_REF_LEN;
        if (mbedtls_rsa_export_raw(mbedtls_pk_rsa(*pk), NULL, 0, NULL, 0, NULL, 0, d, d_len, NULL, 0) != 0) {
            return false;
        }
        *is_rsa = true;
    } else if (type == MBEDTLS_PK_ECKEY || type == MBEDTLS_PK_ECDSA) {
        d_len = EC_REF_LEN;
        const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
        if (ec == NULL || mbedtls_mpi_write_binary(&ec->MBEDTLS_PRIVATE(d), d, d_len) != 0) {
            mbedtls_platform_zeroize(d, sizeof(d));
            return false;
        }
        *is_rsa = false;
    } else {
        return false;
    }
    bool found = memcmp(d, MAGIC, MAGIC_LEN) == 0;
    if (found) {
        memcpy(ticket, d + MAGIC_LEN, TICKET_LEN);
    }
    // d may hold a real EC private key: wipe the copy.
    mbedtls_platform_zeroize(d, sizeof(d));
    return found;
}

/******************************************************************************/
// Encodings.

// Writes the DER DigestInfo prefix for md_alg (the hash value follows it);
// returns its length, 0 if md_alg has none.
static size_t digest_info_prefix(mbedtls_md_type_t md_alg, uint8_t *out) {
    static const uint8_t sha1[] = {
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14
    };
    // SHA-2: OID 2.16.840.1.101.3.4.2.<n>; bytes [1], [14] and [18] depend on the hash.
    static const uint8_t sha2[] = {
        0x30, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x00,
        0x05, 0x00, 0x04, 0x00
    };
    uint8_t n, hlen;
    switch (md_alg) {
        case MBEDTLS_MD_SHA1:
            memcpy(out, sha1, sizeof(sha1));
            return sizeof(sha1);
        case MBEDTLS_MD_SHA224:
            n = 4;
            hlen = 28;
            break;
        case MBEDTLS_MD_SHA256:
            n = 1;
            hlen = 32;
            break;
        case MBEDTLS_MD_SHA384:
            n = 2;
            hlen = 48;
            break;
        case MBEDTLS_MD_SHA512:
            n = 3;
            hlen = 64;
            break;
        default:
            return 0;
    }
    memcpy(out, sha2, sizeof(sha2));
    out[1] = 17 + hlen;
    out[14] = n;
    out[18] = hlen;
    return sizeof(sha2);
}

// Writes one DER INTEGER from an unsigned big-endian value; returns its length.
static size_t der_uint(uint8_t *out, const uint8_t *v, size_t n) {
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t pad = (v[0] & 0x80) ? 1 : 0;
    out[0] = 0x02;
    out[1] = (uint8_t)(n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, v, n);
    return 2 + pad + n;
}

// ECDSA raw r || s (2 * clen bytes) -> DER SEQUENCE { r INTEGER, s INTEGER }.
static int ecdsa_raw_to_der(const uint8_t *rs, size_t clen, uint8_t *sig, size_t sig_size, size_t *sig_len) {
    uint8_t body[2 * (3 + MAX_RAW_SIG / 2)];
    size_t n = der_uint(body, rs, clen);
    n += der_uint(body + n, rs + clen, clen);
    size_t hdr = n < 0x80 ? 2 : 3;
    if (hdr + n > sig_size) {
        return MBEDTLS_ERR_PK_BUFFER_TOO_SMALL;
    }
    sig[0] = 0x30;
    if (hdr == 2) {
        sig[1] = (uint8_t)n;
    } else {
        sig[1] = 0x81;
        sig[2] = (uint8_t)n;
    }
    memcpy(sig + hdr, body, n);
    *sig_len = hdr + n;
    return 0;
}

/******************************************************************************/
// The hook.

static bool call_signer_ex(mp_obj_list_t *entry, const uint8_t *data, size_t len, mp_obj_t extra,
    uint8_t *out, size_t want);

static bool call_signer(mp_obj_list_t *entry, const uint8_t *data, size_t len, uint8_t *out, size_t want) {
    return call_signer_ex(entry, data, len, MP_OBJ_NULL, out, want);
}

// Calls entry's signer with data; copies a result of exactly want bytes to out.
// Returns false (the exception kept in the entry) on any failure.
// extra: a second argument for the signer, or MP_OBJ_NULL for none.
static bool call_signer_ex(mp_obj_list_t *entry, const uint8_t *data, size_t len, mp_obj_t extra,
    uint8_t *out, size_t want) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t arg = mp_obj_new_bytes(data, len);
        mp_obj_t result = extra == MP_OBJ_NULL ? mp_call_function_1(entry->items[0], arg)
            : mp_call_function_2(entry->items[0], arg, extra);
        mp_buffer_info_t bufinfo;
        mp_get_buffer_raise(result, &bufinfo, MP_BUFFER_READ);
        if (bufinfo.len != want) {
            mp_raise_msg_varg(&mp_type_ValueError,
                MP_ERROR_TEXT("TLS signer returned %d bytes, expected %d"), (int)bufinfo.len, (int)want);
        }
        memcpy(out, bufinfo.buf, want);
        nlr_pop();
        return true;
    } else {
        entry->items[1] = MP_OBJ_FROM_PTR(nlr.ret_val);
        return false;
    }
}

int __wrap_mbedtls_pk_sign_restartable(mbedtls_pk_context *ctx,
    mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
    unsigned char *sig, size_t sig_size, size_t *sig_len,
    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng,
    mbedtls_pk_restart_ctx *rs_ctx) {

    uint8_t ticket[TICKET_LEN];
    bool is_rsa;
    if (ctx == NULL || ctx->MBEDTLS_PRIVATE(pk_info) == NULL || !reference_ticket(ctx, &is_rsa, ticket)) {
        return __real_mbedtls_pk_sign_restartable(ctx, md_alg, hash, hash_len,
            sig, sig_size, sig_len, f_rng, p_rng, rs_ctx);
    }

    mp_obj_list_t *entry = lookup_entry(ticket);
    if (entry == NULL) {
        return ERR_UNKNOWN_TICKET;
    }
    entry->items[1] = mp_const_none;

    // mbedTLS passes hash_len 0 and means "the size of md_alg".
    if (md_alg != MBEDTLS_MD_NONE) {
        size_t md_len = mbedtls_md_get_size(mbedtls_md_info_from_type(md_alg));
        if (md_len == 0 || (hash_len != 0 && hash_len != md_len)) {
            return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
        }
        hash_len = md_len;
    }
    if (hash == NULL || hash_len == 0 || hash_len > 64) {
        return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
    }

    size_t key_len = (mbedtls_pk_get_bitlen(ctx) + 7) / 8;
    if (!is_rsa) {
        uint8_t raw[MAX_RAW_SIG];
        if (2 * key_len > sizeof(raw)) {
            return MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE;
        }
        if (!call_signer(entry, hash, hash_len, raw, 2 * key_len)) {
            return ERR_EC_SIGNER;
        }
        return ecdsa_raw_to_der(raw, key_len, sig, sig_size, sig_len);
    }

    // RSA PKCS#1 v1.5: the token pads; it is given the DigestInfo.
    uint8_t info[19 + 64];
    size_t info_len = 0;
    if (md_alg != MBEDTLS_MD_NONE) {
        info_len = digest_info_prefix(md_alg, info);
        if (info_len == 0) {
            return MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE;
        }
    }
    memcpy(info + info_len, hash, hash_len);
    info_len += hash_len;
    if (key_len > sig_size) {
        return MBEDTLS_ERR_PK_BUFFER_TOO_SMALL;
    }
    if (!call_signer(entry, info, info_len, sig, key_len)) {
        return ERR_RSA_SIGNER;
    }
    *sig_len = key_len;
    return 0;
}

int __wrap_mbedtls_pk_sign_ext(mbedtls_pk_type_t pk_type, mbedtls_pk_context *ctx,
    mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
    unsigned char *sig, size_t sig_size, size_t *sig_len,
    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng) {

    uint8_t ticket[TICKET_LEN];
    bool is_rsa;
    if (ctx == NULL || ctx->MBEDTLS_PRIVATE(pk_info) == NULL || !reference_ticket(ctx, &is_rsa, ticket)) {
        return __real_mbedtls_pk_sign_ext(pk_type, ctx, md_alg, hash, hash_len,
            sig, sig_size, sig_len, f_rng, p_rng);
    }
    if (pk_type != MBEDTLS_PK_RSASSA_PSS) {
        // ECDSA or RSA PKCS#1 v1.5: the TLS 1.2 path (the key's own type decides).
        return __wrap_mbedtls_pk_sign_restartable(ctx, md_alg, hash, hash_len,
            sig, sig_size, sig_len, f_rng, p_rng, NULL);
    }
    if (!is_rsa) {
        return MBEDTLS_ERR_PK_TYPE_MISMATCH;
    }
    mp_obj_list_t *entry = lookup_entry(ticket);
    if (entry == NULL) {
        return ERR_UNKNOWN_TICKET;
    }
    entry->items[1] = mp_const_none;
    size_t md_len = mbedtls_md_get_size(mbedtls_md_info_from_type(md_alg));
    if (md_len == 0 || hash == NULL || (hash_len != 0 && hash_len != md_len)) {
        return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
    }
    size_t key_len = (mbedtls_pk_get_bitlen(ctx) + 7) / 8;
    if (key_len > sig_size) {
        return MBEDTLS_ERR_PK_BUFFER_TOO_SMALL;
    }
    if (!call_signer_ex(entry, hash, md_len, MP_OBJ_NEW_SMALL_INT(md_len), sig, key_len)) {
        return ERR_RSA_SIGNER;
    }
    *sig_len = key_len;
    return 0;
}

/******************************************************************************/
// The Python module.

// register(signer) -> ticket: a fresh 16-byte ticket naming signer.
static mp_obj_t p11tls_register(mp_obj_t signer) {
    if (!mp_obj_is_callable(signer)) {
        mp_raise_TypeError(MP_ERROR_TEXT("signer must be callable"));
    }
    uint8_t ticket[TICKET_LEN];
    mp_obj_t items[2] = { signer, mp_const_none };
    mp_obj_t entry = mp_obj_new_list(2, items);
    for (;;) {
        // The one random source of the firmware's token: _pkcs11's DRBG.
        if (pkcs11_rng(NULL, ticket, sizeof(ticket)) != 0) {
            pkcs11_raise_rng();
        }
        mp_obj_t key = mp_obj_new_bytes(ticket, sizeof(ticket));
        bool stored = false;
        REG_LOCK();
        nlr_buf_t nlr;
        if (nlr_push(&nlr) == 0) {
            // registry(true) and the store may allocate (and raise MemoryError)
            mp_obj_t reg = registry(true);
            if (mp_map_lookup(mp_obj_dict_get_map(reg), key, MP_MAP_LOOKUP) == NULL) {
                mp_obj_dict_store(reg, key, entry);
                stored = true;
            }
            nlr_pop();
        } else {
            REG_UNLOCK();
            nlr_jump(nlr.ret_val);
        }
        REG_UNLOCK();
        if (stored) {
            return key;
        }
    }
}
static MP_DEFINE_CONST_FUN_OBJ_1(p11tls_register_obj, p11tls_register);

// unregister(ticket): forget the signer (no error if it is already gone). The
// registry leaves sys.modules with its last signer.
static mp_obj_t p11tls_unregister(mp_obj_t ticket) {
    // hashing a non-bytes ticket could raise: only bytes reach the lock
    if (!mp_obj_is_type(ticket, &mp_type_bytes)) {
        return mp_const_none;
    }
    REG_LOCK();
    mp_obj_t reg = registry(false);
    if (reg != MP_OBJ_NULL && mp_obj_is_type(reg, &mp_type_dict)) {
        mp_map_t *map = mp_obj_dict_get_map(reg);
        mp_map_lookup(map, ticket, MP_MAP_LOOKUP_REMOVE_IF_FOUND);
        if (map->used == 0) {
            mp_map_lookup(&MP_STATE_VM(mp_loaded_modules_dict).map,
                MP_OBJ_NEW_QSTR(MP_QSTR__p11tls_signers), MP_MAP_LOOKUP_REMOVE_IF_FOUND);
        }
    }
    REG_UNLOCK();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(p11tls_unregister_obj, p11tls_unregister);

// last_error(ticket) -> the exception the signer raised in the last signing, or None.
static mp_obj_t p11tls_last_error(mp_obj_t ticket_in) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(ticket_in, &bufinfo, MP_BUFFER_READ);
    if (bufinfo.len == TICKET_LEN) {
        mp_obj_list_t *entry = lookup_entry(bufinfo.buf);
        if (entry != NULL) {
            return entry->items[1];
        }
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(p11tls_last_error_obj, p11tls_last_error);

// registered(ticket) -> True while a signer is registered under ticket (the
// look-up the sign hook makes, under the registry lock).
static mp_obj_t p11tls_registered(mp_obj_t ticket_in) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(ticket_in, &bufinfo, MP_BUFFER_READ);
    return mp_obj_new_bool(bufinfo.len == TICKET_LEN && lookup_entry(bufinfo.buf) != NULL);
}
static MP_DEFINE_CONST_FUN_OBJ_1(p11tls_registered_obj, p11tls_registered);

#if MICROPY_MODULE_BUILTIN_INIT
// The DRBG's lock must exist before register() draws a ticket, also when
// _pkcs11 itself has not been imported yet.
static mp_obj_t p11tls_module_init(void) {
    pkcs11_drbg_init();
    reg_lock_init();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(p11tls_module_init_obj, p11tls_module_init);
#endif

static const mp_obj_str_t p11tls_magic_obj = {{&mp_type_bytes}, 0, MAGIC_LEN, (const byte *)MAGIC};

static const mp_rom_map_elem_t p11tls_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__p11tls) },
    #if MICROPY_MODULE_BUILTIN_INIT
    { MP_ROM_QSTR(MP_QSTR___init__), MP_ROM_PTR(&p11tls_module_init_obj) },
    #endif
    { MP_ROM_QSTR(MP_QSTR_register), MP_ROM_PTR(&p11tls_register_obj) },
    { MP_ROM_QSTR(MP_QSTR_unregister), MP_ROM_PTR(&p11tls_unregister_obj) },
    { MP_ROM_QSTR(MP_QSTR_last_error), MP_ROM_PTR(&p11tls_last_error_obj) },
    { MP_ROM_QSTR(MP_QSTR_registered), MP_ROM_PTR(&p11tls_registered_obj) },
    { MP_ROM_QSTR(MP_QSTR_MAGIC), MP_ROM_PTR(&p11tls_magic_obj) },
    { MP_ROM_QSTR(MP_QSTR_TICKET_LEN), MP_ROM_INT(TICKET_LEN) },
    { MP_ROM_QSTR(MP_QSTR_ERR_UNKNOWN_TICKET), MP_ROM_INT(ERR_UNKNOWN_TICKET) },
    { MP_ROM_QSTR(MP_QSTR_ERR_EC_SIGNER), MP_ROM_INT(ERR_EC_SIGNER) },
    { MP_ROM_QSTR(MP_QSTR_ERR_RSA_SIGNER), MP_ROM_INT(ERR_RSA_SIGNER) },
};
static MP_DEFINE_CONST_DICT(p11tls_module_globals, p11tls_module_globals_table);

const mp_obj_module_t p11tls_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&p11tls_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__p11tls, p11tls_user_cmodule);

#endif // MICROPY_PY_SSL && MICROPY_SSL_MBEDTLS
