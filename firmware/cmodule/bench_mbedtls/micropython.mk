# _bench_mbedtls: bench-only baseline, mbedTLS's own ECDSA and RSA code with the
# firmware's mbedTLS configuration (bench/README.md, row 1). Compiled only when
# the build sets BENCH_MBEDTLS=1 (`make bench` builds build/bench-qemu with it);
# the product firmware never contains it.
ifeq ($(BENCH_MBEDTLS),1)
ifeq ($(MICROPY_SSL_MBEDTLS),1)
SRC_USERMOD_C += $(USERMOD_DIR)/modbench_mbedtls.c
CFLAGS_USERMOD += -I$(USERMOD_DIR)/../pkcs11
endif
endif
