# The frozen modules every board carries: this repository's device packages,
# each a micropython-lib style package with its own manifest.py under modules/
# (pkcs11, p11tls, p11csr, p11boot, mqtt, fleetprov, p11bridge). Paths are relative to this file.
add_library("pkcs11-token", "../modules")
require("pkcs11", library="pkcs11-token")
require("p11tls", library="pkcs11-token")
require("p11csr", library="pkcs11-token")
require("p11boot", library="pkcs11-token")
require("mqtt", library="pkcs11-token")
require("fleetprov", library="pkcs11-token")
require("p11bridge", library="pkcs11-token")
