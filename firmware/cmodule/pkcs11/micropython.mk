# _pkcs11: the token's crypto core (make-based ports: unix, qemu).
PKCS11_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(PKCS11_MOD_DIR)/modpkcs11.c

CFLAGS_USERMOD += -I$(PKCS11_MOD_DIR)

# TLS client authentication through the token (tls_sign_hook.c, module _p11tls):
# mbedTLS's CertificateVerify signature is routed to the token.
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/tls_sign_hook.c
LDFLAGS_USERMOD += -Wl,--wrap=mbedtls_pk_sign_restartable
