"""PKCS#11 numbers the tool shows by name (the values of the device's pkcs11.constants),
and the FreeRTOS default labels (the device's pkcs11.labels; a test compares them)."""

from __future__ import annotations

DEFAULT_KEY_LABEL = "Device Priv TLS Key"      # labels.LABEL_DEVICE_PRIVATE_KEY
DEFAULT_PUB_LABEL = "Device Pub TLS Key"       # labels.LABEL_DEVICE_PUBLIC_KEY
DEFAULT_CERT_LABEL = "Device Cert"             # labels.LABEL_DEVICE_CERTIFICATE
DEFAULT_CA_LABEL = "Root Cert"                 # labels.LABEL_ROOT_CERTIFICATE

CKO = {0: "data", 1: "certificate", 2: "public-key", 3: "private-key", 4: "secret-key"}
CKO_BY_NAME = {v: k for k, v in CKO.items()}
CKK = {0: "RSA", 3: "EC", 0x10: "generic-secret", 0x1F: "AES"}

CKM = {
    0x0: "CKM_RSA_PKCS_KEY_PAIR_GEN", 0x1: "CKM_RSA_PKCS", 0x3: "CKM_RSA_X_509",
    0x6: "CKM_SHA1_RSA_PKCS", 0xD: "CKM_RSA_PKCS_PSS", 0xE: "CKM_SHA1_RSA_PKCS_PSS",
    0x40: "CKM_SHA256_RSA_PKCS", 0x41: "CKM_SHA384_RSA_PKCS", 0x42: "CKM_SHA512_RSA_PKCS",
    0x43: "CKM_SHA256_RSA_PKCS_PSS", 0x44: "CKM_SHA384_RSA_PKCS_PSS",
    0x45: "CKM_SHA512_RSA_PKCS_PSS", 0x220: "CKM_SHA_1", 0x250: "CKM_SHA256",
    0x260: "CKM_SHA384", 0x270: "CKM_SHA512", 0x1040: "CKM_EC_KEY_PAIR_GEN",
    0x1041: "CKM_ECDSA", 0x1042: "CKM_ECDSA_SHA1", 0x1044: "CKM_ECDSA_SHA256",
    0x1045: "CKM_ECDSA_SHA384", 0x1046: "CKM_ECDSA_SHA512",
}

CKF_MECH = {0x400: "digest", 0x800: "sign", 0x2000: "verify", 0x10000: "generate-key-pair",
            0x100000: "EC-Fp", 0x800000: "EC-named-curve", 0x1000000: "EC-uncompressed"}

CKF_TOKEN = {
    0x1: "rng", 0x2: "write-protected", 0x4: "login-required", 0x8: "user-pin-initialized",
    0x400: "token-initialized", 0x10000: "user-pin-count-low", 0x20000: "user-pin-final-try",
    0x40000: "user-pin-locked", 0x100000: "so-pin-count-low", 0x200000: "so-pin-final-try",
    0x400000: "so-pin-locked",
}
CKF_LOGIN_REQUIRED = 0x4
CKF_USER_PIN_INITIALIZED = 0x8

# CKA_* names for `show`
CKA = {
    0x0: "CKA_CLASS", 0x1: "CKA_TOKEN", 0x2: "CKA_PRIVATE", 0x3: "CKA_LABEL",
    0x10: "CKA_APPLICATION", 0x11: "CKA_VALUE", 0x12: "CKA_OBJECT_ID",
    0x80: "CKA_CERTIFICATE_TYPE", 0x81: "CKA_ISSUER", 0x82: "CKA_SERIAL_NUMBER",
    0x86: "CKA_TRUSTED", 0x87: "CKA_CERTIFICATE_CATEGORY", 0x100: "CKA_KEY_TYPE",
    0x101: "CKA_SUBJECT", 0x102: "CKA_ID", 0x103: "CKA_SENSITIVE", 0x104: "CKA_ENCRYPT",
    0x105: "CKA_DECRYPT", 0x106: "CKA_WRAP", 0x107: "CKA_UNWRAP", 0x108: "CKA_SIGN",
    0x109: "CKA_SIGN_RECOVER", 0x10A: "CKA_VERIFY", 0x10B: "CKA_VERIFY_RECOVER",
    0x10C: "CKA_DERIVE", 0x120: "CKA_MODULUS", 0x121: "CKA_MODULUS_BITS",
    0x122: "CKA_PUBLIC_EXPONENT", 0x129: "CKA_PUBLIC_KEY_INFO", 0x162: "CKA_EXTRACTABLE",
    0x163: "CKA_LOCAL", 0x164: "CKA_NEVER_EXTRACTABLE", 0x165: "CKA_ALWAYS_SENSITIVE",
    0x166: "CKA_KEY_GEN_MECHANISM", 0x170: "CKA_MODIFIABLE", 0x171: "CKA_COPYABLE",
    0x172: "CKA_DESTROYABLE", 0x180: "CKA_EC_PARAMS", 0x181: "CKA_EC_POINT",
    0x202: "CKA_ALWAYS_AUTHENTICATE",
}

P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")


def flag_names(flags: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in table.items() if flags & bit]


def key_size(key_type: int | None, ec_params: bytes | None, modulus_bits: int | None) -> str:
    if key_type == 3:
        return "P-256" if ec_params == P256_PARAMS else "EC (other curve)"
    if key_type == 0 and modulus_bits:
        return f"{modulus_bits} bit"
    return ""
