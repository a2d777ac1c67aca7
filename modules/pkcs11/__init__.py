# pkcs11: a PKCS#11 token for MicroPython (placeholder until the API lands).
__version__ = "0.1.0"
