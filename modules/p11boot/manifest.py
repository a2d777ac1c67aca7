# Boot-time mount of the token's own flash partition at /token (ESP32 boards).
metadata(
    version="0.1.0",
    description="Mount the pkcs11 token partition (littlefs) at /token at boot",
)

module("p11boot.py")
