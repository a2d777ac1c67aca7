// _pkcs11 key and certificate parsing (PEM or DER) with mbedTLS pk and x509:
//   parse_private_key(data)  PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY" (also
//                            after an "EC PARAMETERS" block), PKCS#1 "RSA PRIVATE KEY"
//       -> {'type': 'ec', 'd': bytes[32], 'q': bytes[65]}
//        | {'type': 'rsa', 'n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qinv': bytes}
//   parse_public_key(data)   SubjectPublicKeyInfo "PUBLIC KEY"
//       -> {'type': 'ec', 'q': bytes[65]} | {'type': 'rsa', 'n', 'e'}
//   parse_certificate(data)  X.509 "CERTIFICATE" (the first one of a PEM chain)
//       -> {'der', 'subject', 'issuer', 'serial' (DER INTEGER), 'not_before',
//           'not_after' ('YYYYMMDDhhmmssZ'), 'public_key' (as parse_public_key,
//           or None for a key type the token does not use, e.g. a P-384 CA)}
// EC keys must be on P-256. Errors are ValueError with a message that never
// quotes the input.
//
// All state lives in one parse_job_t whose address is handed to mbedTLS
// before nlr_push, so the exception handler sees its current contents and
// can free the mbedTLS contexts and wipe every secret buffer, including the
// bytes already put into a half-built result.
#include <string.h>

#include "py/runtime.h"
#include "py/nlr.h"
#include "mbedtls/asn1.h"
#include "mbedtls/ecp.h"
#include "mbedtls/oid.h"
#include "mbedtls/pk.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/rsa.h"
#include "mbedtls/x509_crt.h"
#include "modpkcs11.h"
#include "pem.h"

enum { RSA_N, RSA_E, RSA_D, RSA_P, RSA_Q, RSA_DP, RSA_DQ, RSA_QINV, RSA_PARTS };

static const qstr rsa_private_names[RSA_PARTS] = {
    MP_QSTR_n, MP_QSTR_e, MP_QSTR_d, MP_QSTR_p, MP_QSTR_q, MP_QSTR_dp, MP_QSTR_dq, MP_QSTR_qinv,
};

typedef struct _parse_job_t {
    mbedtls_pk_context pk;
    mbedtls_x509_crt crt;
    mbedtls_mpi mpi[RSA_PARTS];
    uint8_t *der;           // DER decoded from PEM, owned (wiped)
    size_t der_alloc;
    uint8_t *tmp;           // staging for secret integers (wiped)
    size_t tmp_alloc;
    uint8_t d[32];          // staging for an EC private scalar (wiped)
    mp_obj_t result;
} parse_job_t;

static void job_init(parse_job_t *job) {
    memset(job, 0, sizeof(*job));
    mbedtls_pk_init(&job->pk);
    mbedtls_x509_crt_init(&job->crt);
    for (size_t i = 0; i < RSA_PARTS; i++) {
        mbedtls_mpi_init(&job->mpi[i]);
    }
    job->result = MP_OBJ_NULL;
}

static void job_free(parse_job_t *job) {
    mbedtls_x509_crt_free(&job->crt);
    mbedtls_pk_free(&job->pk);
    for (size_t i = 0; i < RSA_PARTS; i++) {
        mbedtls_mpi_free(&job->mpi[i]);
    }
    if (job->der != NULL) {
        mbedtls_platform_zeroize(job->der, job->der_alloc);
        m_del(uint8_t, job->der, job->der_alloc);
        job->der = NULL;
    }
    if (job->tmp != NULL) {
        mbedtls_platform_zeroize(job->tmp, job->tmp_alloc);
        m_del(uint8_t, job->tmp, job->tmp_alloc);
        job->tmp = NULL;
    }
    mbedtls_platform_zeroize(job->d, sizeof(job->d));
}

typedef void (*parse_fn_t)(parse_job_t *job, const uint8_t *data, size_t len);

// Run fn under an nlr handler that cleans the job up on every path.
static mp_obj_t job_run(parse_fn_t fn, mp_obj_t data_in) {
    size_t len;
    const uint8_t *data = pkcs11_buffer(data_in, &len);
    parse_job_t job;
    job_init(&job);
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        fn(&job, data, len);
        nlr_pop();
    } else {
        pkcs11_wipe_dict(job.result);
        job_free(&job);
        nlr_jump(nlr.ret_val);
    }
    job_free(&job);
    return job.result;
}

// The DER to parse: data itself, or the decoded first PEM block whose label
// is one of `labels` (other blocks, e.g. "EC PARAMETERS", are skipped).
static void job_der(parse_job_t *job, const uint8_t *data, size_t len, const char *const *labels,
    const char *what, const uint8_t **der, size_t *der_len) {
    if (len == 0) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: empty input"), what);
    }
    if (!pkcs11_pem_is_pem(data, len)) {
        if (data[0] != 0x30) {
            mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: neither PEM nor DER"), what);
        }
        *der = data;
        *der_len = len;
        return;
    }
    size_t pos = 0;
    pkcs11_pem_block_t blk;
    while (pkcs11_pem_next(data, len, &pos, &blk)) {
        if (pkcs11_pem_label_is(&blk, "ENCRYPTED PRIVATE KEY")) {
            mp_raise_msg_varg(&mp_type_ValueError,
                MP_ERROR_TEXT("%s: encrypted keys are not supported (decrypt it first)"), what);
        }
        for (const char *const *l = labels; *l != NULL; l++) {
            if (!pkcs11_pem_label_is(&blk, *l)) {
                continue;
            }
            if (blk.has_headers) {
                if (pkcs11_pem_body_contains(&blk, "ENCRYPTED")) {
                    mp_raise_msg_varg(&mp_type_ValueError,
                        MP_ERROR_TEXT("%s: encrypted keys are not supported (decrypt it first)"), what);
                }
                mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: PEM headers are not supported"), what);
            }
            job->der_alloc = pkcs11_pem_decoded_max(&blk);
            job->der = m_new(uint8_t, job->der_alloc);
            if (!pkcs11_pem_decode(&blk, job->der, der_len)) {
                mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: bad base64 in PEM block"), what);
            }
            *der = job->der;
            return;
        }
    }
    mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: no suitable PEM block found"), what);
}

// Public integer -> bytes (minimal big-endian, at least one byte).
static mp_obj_t mpi_bytes(const mbedtls_mpi *x) {
    size_t n = mbedtls_mpi_size(x);
    if (n == 0) {
        n = 1;
    }
    vstr_t v;
    vstr_init_len(&v, n);
    mbedtls_mpi_write_binary(x, (unsigned char *)v.buf, n);
    return mp_obj_new_bytes_from_vstr(&v);
}

// Secret integer -> bytes, staged in job->tmp (wiped by job_free).
static mp_obj_t mpi_secret_bytes(parse_job_t *job, const mbedtls_mpi *x) {
    size_t n = mbedtls_mpi_size(x);
    if (n == 0) {
        n = 1;
    }
    if (n > job->tmp_alloc) {
        mp_raise_ValueError(MP_ERROR_TEXT("private key: integer larger than the modulus"));
    }
    mbedtls_mpi_write_binary(x, job->tmp, n);
    mp_obj_t obj = mp_obj_new_bytes(job->tmp, n);
    mbedtls_platform_zeroize(job->tmp, n);
    return obj;
}

static void dict_store(mp_obj_t dict, qstr key, mp_obj_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), value);
}

// The curve of an EC key. mbedTLS 3.6 has accessors for the curve and the
// public point (mbedtls_ecp_keypair_get_group_id, mbedtls_ecp_write_public_key);
// ESP-IDF v5.2 ships mbedTLS 3.5.2, which has neither: the fields and
// mbedtls_ecp_point_write_binary serve every 3.x.
static mbedtls_ecp_group_id ec_group_id(const mbedtls_ecp_keypair *kp) {
    return kp->MBEDTLS_PRIVATE(grp).id;
}

// The P-256 point of an EC key held by pk (ValueError for other curves).
static void ec_point(mbedtls_pk_context *pk, uint8_t q[65], const char *what) {
    const mbedtls_ecp_keypair *kp = mbedtls_pk_ec(*pk);
    if (ec_group_id(kp) != MBEDTLS_ECP_DP_SECP256R1) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: EC key is not on P-256 (the only curve supported)"), what);
    }
    size_t olen = 0;
    int ret = mbedtls_ecp_point_write_binary(&kp->MBEDTLS_PRIVATE(grp), &kp->MBEDTLS_PRIVATE(Q),
        MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, q, 65);
    if (ret != 0 || olen != 65) {
        pkcs11_raise_mbedtls(ret, "EC key: bad public point");
    }
}

static bool pk_is_ec(const mbedtls_pk_context *pk) {
    mbedtls_pk_type_t t = mbedtls_pk_get_type(pk);
    return t == MBEDTLS_PK_ECKEY || t == MBEDTLS_PK_ECKEY_DH || t == MBEDTLS_PK_ECDSA;
}

// job->result = public key dict of pk; for unsupported key types raise
// ValueError, or (strict false) leave None.
static mp_obj_t public_key_dict(parse_job_t *job, mbedtls_pk_context *pk, bool strict, const char *what) {
    bool ec = pk_is_ec(pk);
    if (!strict) {
        if (!(ec && ec_group_id(mbedtls_pk_ec(*pk)) == MBEDTLS_ECP_DP_SECP256R1)
            && mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA) {
            return mp_const_none;
        }
    }
    mp_obj_t dict = mp_obj_new_dict(3);
    if (ec) {
        uint8_t q[65];
        ec_point(pk, q, what);
        dict_store(dict, MP_QSTR_type, MP_OBJ_NEW_QSTR(MP_QSTR_ec));
        dict_store(dict, MP_QSTR_q, mp_obj_new_bytes(q, sizeof(q)));
    } else if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_RSA) {
        int ret = mbedtls_rsa_export(mbedtls_pk_rsa(*pk), &job->mpi[RSA_N], NULL, NULL, NULL, &job->mpi[RSA_E]);
        if (ret != 0) {
            pkcs11_raise_mbedtls(ret, "RSA key: cannot export");
        }
        dict_store(dict, MP_QSTR_type, MP_OBJ_NEW_QSTR(MP_QSTR_rsa));
        dict_store(dict, MP_QSTR_n, mpi_bytes(&job->mpi[RSA_N]));
        dict_store(dict, MP_QSTR_e, mpi_bytes(&job->mpi[RSA_E]));
    } else {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: unsupported key type (only EC P-256 and RSA)"), what);
    }
    return dict;
}

NORETURN static void raise_pk_error(int ret, const char *what) {
    int high = -((-ret) & 0x7f80);
    if (high == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || high == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: encrypted keys are not supported (decrypt it first)"), what);
    }
    if (high == MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: EC key is not on P-256 (the only curve supported)"), what);
    }
    if (high == MBEDTLS_ERR_PK_UNKNOWN_PK_ALG || high == MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: unsupported key type (only EC P-256 and RSA)"), what);
    }
    if (ret == MBEDTLS_ERR_PK_KEY_INVALID_FORMAT) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s: invalid or unsupported DER structure"), what);
    }
    pkcs11_raise_mbedtls(ret, what);
}

// An EncryptedPrivateKeyInfo (PKCS#8) starts with an AlgorithmIdentifier
// SEQUENCE followed by an OCTET STRING; every unencrypted form (PKCS#8,
// SEC1, PKCS#1) starts with an INTEGER. mbedTLS reports such a key,
// when given no password, only as "invalid format".
static bool der_is_encrypted_pkcs8(const uint8_t *der, size_t len) {
    unsigned char *p = (unsigned char *)der;
    const unsigned char *end = der + len;
    size_t n;
    if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
        return false;
    }
    end = p + n;
    if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
        return false;
    }
    p += n;
    return mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_OCTET_STRING) == 0;
}

// mbedTLS reports every DER private key it cannot use as "invalid format".
// Look at the structure to name the reason: another algorithm (PKCS#8) or
// another curve (PKCS#8 or SEC1). Returns the mbedTLS error to report.
static int private_key_rejection(const uint8_t *der, size_t len) {
    unsigned char *p = (unsigned char *)der;
    const unsigned char *end = der + len;
    size_t n;
    int version;
    if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
        return MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
    }
    end = p + n;
    if (mbedtls_asn1_get_int(&p, end, &version) != 0) {
        return MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
    }
    mbedtls_asn1_buf alg, params;
    if (mbedtls_asn1_get_alg(&p, end, &alg, &params) == 0) {
        // PKCS#8 PrivateKeyInfo: the algorithm, and for EC the curve.
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_EC_ALG_UNRESTRICTED, &alg) == 0) {
            if (params.tag != MBEDTLS_ASN1_OID || MBEDTLS_OID_CMP(MBEDTLS_OID_EC_GRP_SECP256R1, &params) != 0) {
                return MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE;
            }
        } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_PKCS1_RSA, &alg) != 0) {
            return MBEDTLS_ERR_PK_UNKNOWN_PK_ALG;
        }
        return MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
    }
    // SEC1 ECPrivateKey: INTEGER 1, OCTET STRING d, [0] curve OID.
    if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_OCTET_STRING) != 0) {
        return MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
    }
    p += n;
    if (mbedtls_asn1_get_tag(&p, end, &n, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0) != 0) {
        return MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
    }
    mbedtls_asn1_buf curve = { .tag = MBEDTLS_ASN1_OID };
    if (mbedtls_asn1_get_tag(&p, p + n, &curve.len, MBEDTLS_ASN1_OID) == 0) {
        curve.p = p;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_EC_GRP_SECP256R1, &curve) != 0) {
            return MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE;
        }
    }
    return MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
}

static const char *const private_key_labels[] = { "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", NULL };

static void private_key_job(parse_job_t *job, const uint8_t *data, size_t len) {
    static const char what[] = "private key";
    const uint8_t *der;
    size_t der_len;
    job_der(job, data, len, private_key_labels, what, &der, &der_len);
    if (der_is_encrypted_pkcs8(der, der_len)) {
        raise_pk_error(MBEDTLS_ERR_PK_PASSWORD_REQUIRED, what);
    }
    int ret = mbedtls_pk_parse_key(&job->pk, der, der_len, NULL, 0, pkcs11_rng, NULL);
    if (ret == MBEDTLS_ERR_PK_KEY_INVALID_FORMAT) {
        ret = private_key_rejection(der, der_len);
    }
    if (ret != 0) {
        raise_pk_error(ret, what);
    }
    if (pk_is_ec(&job->pk)) {
        uint8_t q[65];
        uint8_t q_derived[65];
        ec_point(&job->pk, q, what);
        size_t olen = sizeof(job->d);
        #if MBEDTLS_VERSION_NUMBER >= 0x03060000
        ret = mbedtls_ecp_write_key_ext(mbedtls_pk_ec(job->pk), &olen, job->d, sizeof(job->d));
        #else
        ret = mbedtls_ecp_write_key(mbedtls_pk_ec(job->pk), job->d, sizeof(job->d));
        #endif
        if (ret != 0 || olen != sizeof(job->d)) {
            pkcs11_raise_mbedtls(ret, "EC private key: bad scalar");
        }
        if (pkcs11_p256_public(q_derived, job->d) != 0) {
            mp_raise_ValueError(MP_ERROR_TEXT("EC private key: scalar out of range"));
        }
        if (memcmp(q, q_derived, sizeof(q)) != 0) {
            mp_raise_ValueError(MP_ERROR_TEXT("EC private key: public point does not match the private scalar"));
        }
        job->result = mp_obj_new_dict(3);
        dict_store(job->result, MP_QSTR_type, MP_OBJ_NEW_QSTR(MP_QSTR_ec));
        dict_store(job->result, MP_QSTR_q, mp_obj_new_bytes(q, sizeof(q)));
        dict_store(job->result, MP_QSTR_d, mp_obj_new_bytes(job->d, sizeof(job->d)));
    } else if (mbedtls_pk_get_type(&job->pk) == MBEDTLS_PK_RSA) {
        const mbedtls_rsa_context *rsa = mbedtls_pk_rsa(job->pk);
        mbedtls_mpi *m = job->mpi;
        ret = mbedtls_rsa_export(rsa, &m[RSA_N], &m[RSA_P], &m[RSA_Q], &m[RSA_D], &m[RSA_E]);
        if (ret == 0) {
            ret = mbedtls_rsa_export_crt(rsa, &m[RSA_DP], &m[RSA_DQ], &m[RSA_QINV]);
        }
        if (ret != 0) {
            pkcs11_raise_mbedtls(ret, "RSA private key: cannot export");
        }
        job->tmp_alloc = mbedtls_mpi_size(&m[RSA_N]);
        job->tmp = m_new(uint8_t, job->tmp_alloc);
        job->result = mp_obj_new_dict(RSA_PARTS + 1);
        dict_store(job->result, MP_QSTR_type, MP_OBJ_NEW_QSTR(MP_QSTR_rsa));
        dict_store(job->result, MP_QSTR_n, mpi_bytes(&m[RSA_N]));
        dict_store(job->result, MP_QSTR_e, mpi_bytes(&m[RSA_E]));
        for (size_t i = RSA_D; i < RSA_PARTS; i++) {
            dict_store(job->result, rsa_private_names[i], mpi_secret_bytes(job, &m[i]));
        }
    } else {
        mp_raise_ValueError(MP_ERROR_TEXT("private key: unsupported key type (only EC P-256 and RSA)"));
    }
}

static mp_obj_t pkcs11_parse_private_key(mp_obj_t data_in) {
    return job_run(private_key_job, data_in);
}
MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_parse_private_key_obj, pkcs11_parse_private_key);

static const char *const public_key_labels[] = { "PUBLIC KEY", NULL };

static void public_key_job(parse_job_t *job, const uint8_t *data, size_t len) {
    static const char what[] = "public key";
    const uint8_t *der;
    size_t der_len;
    job_der(job, data, len, public_key_labels, what, &der, &der_len);
    int ret = mbedtls_pk_parse_public_key(&job->pk, der, der_len);
    if (ret != 0) {
        raise_pk_error(ret, what);
    }
    job->result = public_key_dict(job, &job->pk, true, what);
}

static mp_obj_t pkcs11_parse_public_key(mp_obj_t data_in) {
    return job_run(public_key_job, data_in);
}
MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_parse_public_key_obj, pkcs11_parse_public_key);

static const char *const certificate_labels[] = { "CERTIFICATE", NULL };

static mp_obj_t x509_time_str(const mbedtls_x509_time *t) {
    vstr_t v;
    vstr_init(&v, 16);
    vstr_printf(&v, "%04d%02d%02d%02d%02d%02dZ", t->year, t->mon, t->day, t->hour, t->min, t->sec);
    return mp_obj_new_str_from_vstr(&v);
}

// DER INTEGER (tag, length, content) around the serial's content octets.
static mp_obj_t x509_serial_der(const mbedtls_x509_buf *serial) {
    uint8_t head[6];
    size_t n = 0;
    size_t len = serial->len;
    head[n++] = 0x02;
    if (len < 0x80) {
        head[n++] = len;
    } else if (len <= 0xff) {
        head[n++] = 0x81;
        head[n++] = len;
    } else {
        head[n++] = 0x82;
        head[n++] = len >> 8;
        head[n++] = len;
    }
    vstr_t v;
    vstr_init(&v, n + len);
    vstr_add_strn(&v, (const char *)head, n);
    vstr_add_strn(&v, (const char *)serial->p, len);
    return mp_obj_new_bytes_from_vstr(&v);
}

static void certificate_job(parse_job_t *job, const uint8_t *data, size_t len) {
    static const char what[] = "certificate";
    const uint8_t *der;
    size_t der_len;
    job_der(job, data, len, certificate_labels, what, &der, &der_len);
    // No copy: der (the caller's bytes or job->der) outlives job->crt.
    int ret = mbedtls_x509_crt_parse_der_nocopy(&job->crt, der, der_len);
    if (ret != 0) {
        pkcs11_raise_mbedtls(ret, "certificate: not a valid X.509 certificate");
    }
    const mbedtls_x509_crt *crt = &job->crt;
    job->result = mp_obj_new_dict(7);
    mp_obj_t r = job->result;
    dict_store(r, MP_QSTR_der, mp_obj_new_bytes(crt->raw.p, crt->raw.len));
    dict_store(r, MP_QSTR_subject, mp_obj_new_bytes(crt->subject_raw.p, crt->subject_raw.len));
    dict_store(r, MP_QSTR_issuer, mp_obj_new_bytes(crt->issuer_raw.p, crt->issuer_raw.len));
    dict_store(r, MP_QSTR_serial, x509_serial_der(&crt->serial));
    dict_store(r, MP_QSTR_not_before, x509_time_str(&crt->valid_from));
    dict_store(r, MP_QSTR_not_after, x509_time_str(&crt->valid_to));
    dict_store(r, MP_QSTR_public_key, public_key_dict(job, &job->crt.pk, false, what));
}

static mp_obj_t pkcs11_parse_certificate(mp_obj_t data_in) {
    return job_run(certificate_job, data_in);
}
MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_parse_certificate_obj, pkcs11_parse_certificate);
