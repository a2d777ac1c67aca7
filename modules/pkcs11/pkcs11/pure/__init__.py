# Pure-MicroPython crypto: the fallback backend (pkcs11.pure.backend) used
# when the C module _pkcs11 is absent. The DER/PEM helpers both backends use
# are pkcs11.der.
