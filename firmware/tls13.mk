# mbedTLS's TLS 1.3 (client, and server too: MicroPython's mbedTLS config has
# MBEDTLS_SSL_SRV_C): the options and the library sources a build adds on top of the
# port's TLS 1.2. Used by boards/unix and firmware/measure-tls13.sh (qemu, measured only).
TLS13_DEFINES = MBEDTLS_PSA_CRYPTO_C MBEDTLS_SSL_PROTO_TLS1_3 MBEDTLS_SSL_KEEP_PEER_CERTIFICATE \
	MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED MBEDTLS_PKCS1_V21 \
	MBEDTLS_HKDF_C MBEDTLS_X509_RSASSA_PSS_SUPPORT
TLS13_SRC_C = $(addprefix lib/mbedtls/library/, ssl_tls13_client.c ssl_tls13_generic.c \
	ssl_tls13_keys.c ssl_tls13_server.c hkdf.c psa_crypto.c psa_crypto_aead.c \
	psa_crypto_cipher.c psa_crypto_client.c psa_crypto_driver_wrappers_no_static.c \
	psa_crypto_ecp.c psa_crypto_ffdh.c psa_crypto_hash.c psa_crypto_mac.c psa_crypto_pake.c \
	psa_crypto_random.c psa_crypto_rsa.c psa_crypto_slot_management.c psa_crypto_storage.c \
	psa_util.c)
CFLAGS += $(addprefix -D,$(TLS13_DEFINES))
SRC_THIRDPARTY_C += $(TLS13_SRC_C)
