# The unix firmware with mbedTLS's TLS 1.3 client as well (issue 11 item 9): the tests
# run it against `openssl s_server -tls1_3` (host_tests/tls/test_tls13.py). The product's
# boards speak TLS 1.2 only (docs/interop.md says why); this is boards/unix plus the
# TLS 1.3 options and the mbedTLS sources they need.
include $(VARIANT_DIR)/../unix/mpconfigvariant.mk
CFLAGS += -DMBEDTLS_PSA_CRYPTO_C -DMBEDTLS_SSL_PROTO_TLS1_3 -DMBEDTLS_SSL_KEEP_PEER_CERTIFICATE \
	-DMBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED -DMBEDTLS_PKCS1_V21 \
	-DMBEDTLS_HKDF_C -DMBEDTLS_X509_RSASSA_PSS_SUPPORT
SRC_THIRDPARTY_C += $(addprefix lib/mbedtls/library/, ssl_tls13_client.c ssl_tls13_generic.c \
	ssl_tls13_keys.c ssl_tls13_server.c hkdf.c psa_crypto.c psa_crypto_aead.c \
	psa_crypto_cipher.c psa_crypto_client.c psa_crypto_driver_wrappers_no_static.c \
	psa_crypto_ecp.c psa_crypto_ffdh.c psa_crypto_hash.c psa_crypto_mac.c psa_crypto_pake.c \
	psa_crypto_random.c psa_crypto_rsa.c psa_crypto_slot_management.c psa_crypto_storage.c \
	psa_util.c)
