# The PKCS#11 token: C-shaped API, Pythonic layer, object rules, flash store,
# crypto facade and the pure-Python crypto backend (pkcs11/pure). It uses the
# firmware's C module _pkcs11 when there is one, else the pure backend, so it
# also runs on stock MicroPython (mpremote mip install modules/pkcs11/package.json).
metadata(
    version="0.1.0",
    description="PKCS#11 token on flash (keys, certificates, sessions, C_Sign) for MicroPython, "
    "with a pure-Python crypto fallback",
)

package("pkcs11")
