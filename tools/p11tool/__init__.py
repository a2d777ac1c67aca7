"""Host-side provisioning tool for the MicroPython PKCS#11 token."""

__version__ = "0.1.0"
