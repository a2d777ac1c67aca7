# The unix firmware with mbedTLS's TLS 1.3 client as well (issue 11 item 9): the tests
# run it against `openssl s_server -tls1_3` (host_tests/tls/test_tls13.py). The product's
# boards speak TLS 1.2 only (docs/interop.md says why); this is boards/unix plus the
# TLS 1.3 options and the mbedTLS sources they need (firmware/tls13.mk).
include $(VARIANT_DIR)/../unix/mpconfigvariant.mk
include $(VARIANT_DIR)/../../firmware/tls13.mk
QSTR_GLOBAL_DEPENDENCIES += $(VARIANT_DIR)/../../firmware/tls13.mk
