# _pkcs11: the token's crypto core (make-based ports: unix, qemu).
PKCS11_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(PKCS11_MOD_DIR)/modpkcs11.c

CFLAGS_USERMOD += -I$(PKCS11_MOD_DIR)
