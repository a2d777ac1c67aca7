// _pkcs11 EMSA-PSS encoding and verification (RFC 8017 section 9.1) with
// MGF1 on the same hash. Only the padding lives here: the RSA operations are
// mbedTLS's (rsa.c). Doing the padding ourselves keeps RSA-PSS independent
// of whether the port's mbedTLS configuration has MBEDTLS_PKCS1_V21.
#include <string.h>

#include "modpkcs11.h"

#define PSS_MAX_HASH (64)

// out[0:len] ^= MGF1(seed, len)
static int pss_mgf1_xor(int md, size_t hlen, const uint8_t *seed, uint8_t *out, size_t len) {
    uint8_t mask[PSS_MAX_HASH];
    uint8_t counter[4];
    uint32_t c = 0;
    int ret = 0;
    for (size_t done = 0; ret == 0 && done < len; c++) {
        counter[0] = c >> 24;
        counter[1] = c >> 16;
        counter[2] = c >> 8;
        counter[3] = c;
        const uint8_t *bufs[2] = { seed, counter };
        const size_t lens[2] = { hlen, sizeof(counter) };
        ret = pkcs11_hash_buffers(md, bufs, lens, 2, mask);
        size_t n = len - done < hlen ? len - done : hlen;
        for (size_t i = 0; i < n; i++) {
            out[done + i] ^= mask[i];
        }
        done += n;
    }
    return ret;
}

// h = Hash(0x00 * 8 || mhash || salt)
static int pss_hash(int md, size_t hlen, const uint8_t *mhash, const uint8_t *salt, size_t salt_len, uint8_t *h) {
    static const uint8_t zeros[8] = { 0 };
    const uint8_t *bufs[3] = { zeros, mhash, salt };
    const size_t lens[3] = { sizeof(zeros), hlen, salt_len };
    return pkcs11_hash_buffers(md, bufs, lens, 3, h);
}

int pkcs11_pss_encode(int md, size_t hlen, const uint8_t *mhash, size_t salt_len, size_t mod_bits, uint8_t *em) {
    size_t em_bits = mod_bits - 1;
    size_t em_len = (em_bits + 7) / 8;
    size_t db_len = em_len - hlen - 1;
    size_t ps_len = db_len - salt_len - 1;
    uint8_t *db = em;
    uint8_t *h = em + db_len;
    uint8_t *salt = db + ps_len + 1;
    memset(db, 0, ps_len);
    db[ps_len] = 0x01;
    int ret = pkcs11_rng(NULL, salt, salt_len);
    if (ret == 0) {
        ret = pss_hash(md, hlen, mhash, salt, salt_len, h);
    }
    if (ret == 0) {
        ret = pss_mgf1_xor(md, hlen, h, db, db_len);
    }
    db[0] &= 0xff >> (8 * em_len - em_bits);
    em[em_len - 1] = 0xbc;
    return ret;
}

bool pkcs11_pss_check(int md, size_t hlen, const uint8_t *mhash, size_t salt_len, size_t mod_bits, uint8_t *em) {
    size_t em_bits = mod_bits - 1;
    size_t em_len = (em_bits + 7) / 8;
    if (em_len < hlen + salt_len + 2 || em[em_len - 1] != 0xbc) {
        return false;
    }
    size_t db_len = em_len - hlen - 1;
    size_t ps_len = db_len - salt_len - 1;
    uint8_t *db = em;
    const uint8_t *h = em + db_len;
    uint8_t top = 0xff >> (8 * em_len - em_bits);
    if ((db[0] & ~top) != 0 || pss_mgf1_xor(md, hlen, h, db, db_len) != 0) {
        return false;
    }
    db[0] &= top;
    for (size_t i = 0; i < ps_len; i++) {
        if (db[i] != 0) {
            return false;
        }
    }
    if (db[ps_len] != 0x01) {
        return false;
    }
    uint8_t h2[PSS_MAX_HASH];
    if (pss_hash(md, hlen, mhash, db + ps_len + 1, salt_len, h2) != 0) {
        return false;
    }
    return memcmp(h, h2, hlen) == 0;
}
