// _pkcs11 PEM armour (RFC 7468): find "-----BEGIN X-----" .. "-----END X-----"
// blocks and decode their base64. Our own small decoder, so parsing does
// not depend on the port enabling MBEDTLS_PEM_PARSE_C / MBEDTLS_BASE64_C and
// the caller sees which block (label) it got: keys written by
// `openssl ecparam -genkey` carry an "EC PARAMETERS" block first, encrypted
// keys say so in their label or headers.
#include <string.h>

#include "pem.h"

static const char pem_begin[] = "-----BEGIN ";
static const char pem_end[] = "-----END ";
static const char pem_dashes[] = "-----";

// Position of needle in hay[from:len], or len if absent.
static size_t pem_find(const uint8_t *hay, size_t len, size_t from, const char *needle, size_t needle_len) {
    if (needle_len > len) {
        return len;
    }
    for (size_t i = from; i + needle_len <= len; i++) {
        if (memcmp(hay + i, needle, needle_len) == 0) {
            return i;
        }
    }
    return len;
}

bool pkcs11_pem_is_pem(const uint8_t *data, size_t len) {
    if (len > 0 && data[0] == 0x30) {
        return false;
    }
    return pem_find(data, len, 0, pem_begin, sizeof(pem_begin) - 1) < len;
}

bool pkcs11_pem_next(const uint8_t *data, size_t len, size_t *pos, pkcs11_pem_block_t *blk) {
    size_t at = *pos;
    for (;;) {
        size_t begin = pem_find(data, len, at, pem_begin, sizeof(pem_begin) - 1);
        if (begin >= len) {
            return false;
        }
        size_t label = begin + sizeof(pem_begin) - 1;
        size_t label_end = pem_find(data, len, label, pem_dashes, sizeof(pem_dashes) - 1);
        if (label_end >= len) {
            return false;
        }
        // A label is printable ASCII on one line.
        bool label_ok = true;
        for (size_t i = label; i < label_end; i++) {
            if (data[i] < 0x20 || data[i] > 0x7e) {
                label_ok = false;
            }
        }
        size_t body = label_end + sizeof(pem_dashes) - 1;
        // The matching END line carries the same label.
        size_t end = body;
        for (;;) {
            end = pem_find(data, len, end, pem_end, sizeof(pem_end) - 1);
            if (end >= len) {
                return false;
            }
            size_t end_label = end + sizeof(pem_end) - 1;
            size_t label_len = label_end - label;
            if (end_label + label_len + sizeof(pem_dashes) - 1 <= len
                && memcmp(data + end_label, data + label, label_len) == 0
                && memcmp(data + end_label + label_len, pem_dashes, sizeof(pem_dashes) - 1) == 0) {
                break;
            }
            end = end_label;
        }
        if (!label_ok) {
            at = body;
            continue;
        }
        blk->label = data + label;
        blk->label_len = label_end - label;
        blk->body = data + body;
        blk->body_len = end - body;
        blk->has_headers = memchr(blk->body, ':', blk->body_len) != NULL;
        *pos = end + sizeof(pem_end) - 1 + blk->label_len + sizeof(pem_dashes) - 1;
        return true;
    }
}

bool pkcs11_pem_label_is(const pkcs11_pem_block_t *blk, const char *label) {
    size_t n = strlen(label);
    return blk->label_len == n && memcmp(blk->label, label, n) == 0;
}

bool pkcs11_pem_body_contains(const pkcs11_pem_block_t *blk, const char *text) {
    size_t n = strlen(text);
    return pem_find(blk->body, blk->body_len, 0, text, n) < blk->body_len;
}

size_t pkcs11_pem_decoded_max(const pkcs11_pem_block_t *blk) {
    return blk->body_len / 4 * 3 + 3;
}

// Value of a base64 character, or -1. Computed with masks rather than a
// table or branches on c: (lo - 1 - c) & (c - hi - 1) is negative exactly
// when lo <= c <= hi.
static int b64_value(unsigned int c) {
    int x = (int)c;
    int v = -1;
    v += ((('A' - 1 - x) & (x - 'Z' - 1)) >> 8) & (x - 'A' + 1);
    v += ((('a' - 1 - x) & (x - 'z' - 1)) >> 8) & (x - 'a' + 27);
    v += ((('0' - 1 - x) & (x - '9' - 1)) >> 8) & (x - '0' + 53);
    v += ((('+' - 1 - x) & (x - '+' - 1)) >> 8) & 63;
    v += ((('/' - 1 - x) & (x - '/' - 1)) >> 8) & 64;
    return v;
}

bool pkcs11_pem_decode(const pkcs11_pem_block_t *blk, uint8_t *out, size_t *out_len) {
    const uint8_t *p = blk->body;
    size_t n = blk->body_len;
    uint32_t acc = 0;
    size_t chars = 0;
    size_t pad = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        }
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad > 0) {
            return false; // not base64, or data after the padding
        }
        acc = (acc << 6) | (uint32_t)v;
        chars++;
        if ((chars & 3) == 0) {
            out[o++] = acc >> 16;
            out[o++] = acc >> 8;
            out[o++] = acc;
            acc = 0;
        }
    }
    size_t rest = chars & 3;
    if (rest == 1 || pad > 2 || (pad > 0 && rest + pad != 4)) {
        return false;
    }
    if (rest == 2) {
        out[o++] = acc >> 4;
    } else if (rest == 3) {
        out[o++] = acc >> 10;
        out[o++] = acc >> 2;
    }
    acc = 0;
    *out_len = o;
    return o > 0;
}
