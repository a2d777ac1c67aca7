# _pkcs11: the token's crypto core (make-based ports: unix, qemu). The TLS sign
# hook is its own module (../p11tls); this one builds without it.
# Each C file has one job (see modpkcs11.h); add one SRC line per file.
PKCS11_MOD_DIR := $(USERMOD_DIR)

ifeq ($(MICROPY_SSL_MBEDTLS),1)

SRC_USERMOD_C += $(PKCS11_MOD_DIR)/modpkcs11.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/util.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/drbg.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/p256.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/rsa.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/pss.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/hash.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/aead.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/pem.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/parse.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/fsmode.c
SRC_USERMOD_C += $(PKCS11_MOD_DIR)/lock.c

# p256m.c compiles p256-m from the mbedTLS tree (no QSTRs, so a LIB file).
SRC_USERMOD_LIB_C += $(PKCS11_MOD_DIR)/p256m.c

CFLAGS_USERMOD += -I$(PKCS11_MOD_DIR)
CFLAGS_USERMOD += -I$(TOP)/lib/mbedtls/3rdparty/p256-m/p256-m

else
$(warning _pkcs11 left out: it needs MICROPY_SSL_MBEDTLS=1 (pkcs11 then uses its pure-Python backend))
endif
