# TLS client sockets whose handshake signature is made by the pkcs11 token.
# Needs the firmware's TLS sign hook (_p11tls, firmware/cmodule).
metadata(
    version="0.1.0",
    description="TLS client connections signed inside the pkcs11 token (needs the _p11tls hook)",
)

require("pkcs11")
module("p11tls.py")
