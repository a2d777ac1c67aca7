# PKCS#10 certificate signing requests built on the device and signed by the token.
metadata(
    version="0.1.0",
    description="PKCS#10 CSRs for a pkcs11 token key, signed inside the token",
)

require("pkcs11")
module("p11csr.py")
