// libFuzzer harness for _pkcs11's parsers, natively with ASan and UBSan
// (make fuzz; docs/security.md "Fuzzing the C parsers").
//
// Linked against the unix port's objects built by clang with sanitizers and
// -fsanitize=fuzzer-no-link (everything but the port's main.o): the parsers
// run inside the real MicroPython runtime, as on the board.
//
// The first input byte picks the target, the rest is the data:
//   0  _pkcs11.parse_private_key   (PEM or DER: PKCS#8, SEC1, PKCS#1; the DER
//                                    checks in parse.c, then mbedTLS)
//   1  _pkcs11.parse_public_key    (SubjectPublicKeyInfo)
//   2  _pkcs11.parse_certificate   (X.509)
//   3  pem.c alone: every block, label checks, base64 decode
// Python exceptions (ValueError for bad input) are the expected outcome; a
// sanitizer report or a crash is a finding.
#include <stdlib.h>
#include <string.h>

#include "py/runtime.h"
#include "py/gc.h"
#include "py/stackctrl.h"
#include "modpkcs11.h"
#include "pem.h"

#define FUZZ_HEAP (8 * 1024 * 1024)
static char heap[FUZZ_HEAP];

// The port's main.c (left out) defines these.
MP_WEAK void nlr_jump_fail(void *val) {
    fprintf(stderr, "fuzz: uncaught NLR %p\n", val);
    abort();
}

static void stderr_print_strn(void *env, const char *str, size_t len) {
    (void)env;
    fwrite(str, 1, len, stderr);
}
MP_WEAK const mp_print_t mp_stderr_print = {NULL, stderr_print_strn};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    mp_stack_ctrl_init();
    mp_stack_set_limit(256 * 1024);
    gc_init(heap, heap + sizeof(heap));
    mp_init();
    return 0;
}

static void fuzz_pem(const uint8_t *data, size_t len) {
    size_t pos = 0;
    pkcs11_pem_block_t blk;
    (void)pkcs11_pem_is_pem(data, len);
    while (pkcs11_pem_next(data, len, &pos, &blk)) {
        (void)pkcs11_pem_label_is(&blk, "PRIVATE KEY");
        (void)pkcs11_pem_body_contains(&blk, "ENCRYPTED");
        size_t max = pkcs11_pem_decoded_max(&blk);
        uint8_t *out = malloc(max ? max : 1);
        size_t out_len = 0;
        if (pkcs11_pem_decode(&blk, out, &out_len) && out_len > max) {
            abort();    // wrote past the bound it promised
        }
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    // Nothing from earlier inputs is needed: when the heap runs low, start a
    // fresh interpreter on a fresh heap (no conservative stack scan, which
    // would read ASan's redzones).
    gc_info_t info;
    gc_info(&info);
    if (info.free < FUZZ_HEAP / 4) {
        mp_deinit();
        gc_init(heap, heap + sizeof(heap));
        mp_init();
    }
    unsigned target = data[0] & 3;
    data++;
    size--;
    if (target == 3) {
        fuzz_pem(data, size);
        return 0;
    }
    static const mp_obj_t funs[3] = {
        MP_ROM_PTR(&pkcs11_parse_private_key_obj),
        MP_ROM_PTR(&pkcs11_parse_public_key_obj),
        MP_ROM_PTR(&pkcs11_parse_certificate_obj),
    };
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t in = mp_obj_new_bytes(data, size);
        mp_call_function_1(funs[target], in);
        nlr_pop();
    } else {
        // An exception: what bad input should give. MemoryError would mean
        // the parser asked for an absurd amount.
        mp_obj_t exc = MP_OBJ_FROM_PTR(nlr.ret_val);
        if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)), MP_OBJ_FROM_PTR(&mp_type_MemoryError))) {
            fprintf(stderr, "fuzz: MemoryError on a %u-byte input\n", (unsigned)size);
            abort();
        }
    }
    return 0;
}
