# _p11tls: TLS client authentication through the token (make-based ports:
# unix, qemu). mbedTLS's CertificateVerify signature is routed to the token by
# wrapping mbedtls_pk_sign_restartable (TLS 1.2) and mbedtls_pk_sign_ext (TLS 1.3)
# at link time (see tls_sign_hook.c).
# It takes its random numbers from _pkcs11 (../pkcs11), which builds without
# this folder: leave p11tls out of USER_C_MODULES to build the crypto module alone.
P11TLS_MOD_DIR := $(USERMOD_DIR)

ifeq ($(MICROPY_SSL_MBEDTLS),1)

SRC_USERMOD_C += $(P11TLS_MOD_DIR)/tls_sign_hook.c
CFLAGS_USERMOD += -I$(P11TLS_MOD_DIR)/../pkcs11
LDFLAGS_USERMOD += -Wl,--wrap=mbedtls_pk_sign_restartable -Wl,--wrap=mbedtls_pk_sign_ext

else
$(warning _p11tls left out: it needs MICROPY_SSL_MBEDTLS=1)
endif
