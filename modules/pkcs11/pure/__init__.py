# Pure-MicroPython crypto: the fallback backend (pkcs11.pure.backend) used
# when the C module _pkcs11 is absent, plus DER/PEM helpers (pkcs11.pure.asn1)
# that the token and the TLS wrapper use with either backend.
