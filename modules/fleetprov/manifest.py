# AWS IoT fleet provisioning by claim: the device key is born in the token, its
# CSR signed by C_Sign, the claim and the new identity connect through p11tls.
metadata(
    version="0.1.0",
    description="AWS IoT fleet provisioning by claim with the key born in the pkcs11 token",
)

require("pkcs11")
require("p11tls")
require("p11csr")
require("mqtt")
module("fleetprov.py")
