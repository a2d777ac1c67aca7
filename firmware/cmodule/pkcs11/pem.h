// _pkcs11 PEM armour (RFC 7468): find labelled blocks, decode their base64.
#ifndef MICROPY_INCLUDED_PKCS11_PEM_H
#define MICROPY_INCLUDED_PKCS11_PEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _pkcs11_pem_block_t {
    const uint8_t *label;   // e.g. "EC PRIVATE KEY" (not NUL-terminated)
    size_t label_len;
    const uint8_t *body;    // between the BEGIN and END lines
    size_t body_len;
    bool has_headers;       // RFC 1421 headers such as "Proc-Type: 4,ENCRYPTED"
} pkcs11_pem_block_t;

// True if data looks like PEM text rather than DER (which starts with a SEQUENCE).
bool pkcs11_pem_is_pem(const uint8_t *data, size_t len);

// Find the next complete block at or after *pos; on success fill blk, move
// *pos past it and return true.
bool pkcs11_pem_next(const uint8_t *data, size_t len, size_t *pos, pkcs11_pem_block_t *blk);

bool pkcs11_pem_label_is(const pkcs11_pem_block_t *blk, const char *label);

// True if the body (headers included) contains the given ASCII text.
bool pkcs11_pem_body_contains(const pkcs11_pem_block_t *blk, const char *text);

// Upper bound of the decoded size of a block.
size_t pkcs11_pem_decoded_max(const pkcs11_pem_block_t *blk);

// Decode the base64 body into out (at least pkcs11_pem_decoded_max bytes).
// Returns false for malformed base64. The character decoding does not branch
// on the value of the data (the block may hold a private key).
bool pkcs11_pem_decode(const pkcs11_pem_block_t *blk, uint8_t *out, size_t *out_len);

#endif // MICROPY_INCLUDED_PKCS11_PEM_H
