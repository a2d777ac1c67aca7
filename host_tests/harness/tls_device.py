"""Identities in the unix firmware's token for the TLS tests.

`token_pki` provisions keys and certificates the seed's way (a key made on the host,
imported with C_CreateObject, then its certificate; the root CA as "Root Cert") and
remembers every private value it imported, so a test can assert that none of them
appears in any output (`assert_no_secrets`). The key file is deleted as soon as the
token holds the key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from p11lab.localca import Issued, LocalCA, PrivateKey, new_key

from .unix import UnixFirmware

KEY_LABEL = "Device Priv TLS Key"
CERT_LABEL = "Device Cert"
ROOT_LABEL = "Root Cert"

_PROVISION_KEY = """
import os, pkcs11
from pkcs11.constants import *
from pkcs11 import crypto
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], CKF_SERIAL_SESSION | CKF_RW_SESSION)
with open("import.key", "rb") as f:
    k = crypto.parse_private_key(f.read())
os.remove("import.key")
t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_TOKEN, True), (CKA_LABEL, {key_label!r}),
     (CKA_SIGN, {sign!r})]
if k["type"] == "ec":
    t += [(CKA_KEY_TYPE, CKK_EC), (CKA_EC_PARAMS, b"\\x06\\x08\\x2a\\x86\\x48\\xce\\x3d\\x03\\x01\\x07"),
          (CKA_VALUE, k["d"])]
else:
    t += [(CKA_KEY_TYPE, CKK_RSA), (CKA_MODULUS, k["n"]), (CKA_PUBLIC_EXPONENT, k["e"]),
          (CKA_PRIVATE_EXPONENT, k["d"]), (CKA_PRIME_1, k["p"]), (CKA_PRIME_2, k["q"]),
          (CKA_EXPONENT_1, k["dp"]), (CKA_EXPONENT_2, k["dq"]), (CKA_COEFFICIENT, k["qinv"])]
k = None
p11.C_CreateObject(h, t)
t = None
with open("import.crt", "rb") as f:
    p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                           (CKA_TOKEN, True), (CKA_LABEL, {cert_label!r}), (CKA_VALUE, f.read())])
p11.C_CloseSession(h)
p11.C_Finalize()
print("provisioned")
"""

_PROVISION_CERT = """
import pkcs11
from pkcs11.constants import *
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], CKF_SERIAL_SESSION | CKF_RW_SESSION)
with open("import.crt", "rb") as f:
    p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                           (CKA_TOKEN, True), (CKA_LABEL, {label!r}), (CKA_VALUE, f.read()),
                           (CKA_TRUSTED, {label!r} == b"Root Cert")])
p11.C_CloseSession(h)
p11.C_Finalize()
print("provisioned")
"""


def secret_values(key: PrivateKey) -> list[bytes]:
    """The private values of a key, as big-endian bytes."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        values = [key.private_numbers().private_value]
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        nums = key.private_numbers()
        values = [nums.d, nums.p, nums.q, nums.dmp1, nums.dmq1, nums.iqmp]
    return [v.to_bytes((v.bit_length() + 7) // 8, "big") for v in values]


def secret_forms(key: PrivateKey) -> list[str]:
    """Text forms in which a private key could leak into an output."""
    forms: list[str] = []
    for raw in secret_values(key):
        forms += [raw.hex(), raw.hex().upper(), str(int.from_bytes(raw, "big")),
                  repr(raw)[2:-1][:60], base64.b64encode(raw).decode()[:40]]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode().splitlines()
    forms += [line for line in pem[1:-1] if len(line) >= 40]
    return forms


@dataclass
class TokenPKI:
    fw: UnixFirmware
    ca: LocalCA
    keys: list[PrivateKey] = field(default_factory=list)

    def add_identity(self, cn: str, key_type: str = "ec", *, key_label: str = KEY_LABEL,
                     cert_label: str = CERT_LABEL, sign: bool = True,
                     cert_key: PrivateKey | None = None) -> Issued:
        """Imports a new key into the token and a certificate for `cn` (for `cert_key`
        instead of the imported key when given: a mismatched pair)."""
        key = new_key(key_type)
        issued = self.ca.certify(cert_key or key, cn)
        self.keys.append(key)
        (self.fw.work_dir / "import.key").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
        (self.fw.work_dir / "import.crt").write_bytes(issued.cert_der)
        out = self.fw.run(_PROVISION_KEY.format(key_label=key_label.encode(),
                                                cert_label=cert_label.encode(), sign=sign))
        assert "provisioned" in out
        assert not (self.fw.work_dir / "import.key").exists()
        issued.key = key
        return issued

    def add_root(self, ca: LocalCA | None = None, label: str = ROOT_LABEL) -> None:
        (self.fw.work_dir / "import.crt").write_bytes((ca or self.ca).root_der)
        assert "provisioned" in self.fw.run(_PROVISION_CERT.format(label=label.encode()))

    def assert_no_secrets(self, *texts: str) -> None:
        """No imported private value appears in the texts, nor in any file outside the token."""
        for key in self.keys:
            forms = secret_forms(key)
            for text in texts:
                for form in forms:
                    assert form not in text, "private key material found in an output"
            for path in self.fw.work_dir.rglob("*"):
                if path.is_file():
                    data = path.read_bytes()
                    for raw in secret_values(key):
                        assert raw not in data, f"private key bytes in {path}"
                        assert raw.hex().encode() not in data, f"private key hex in {path}"


@pytest.fixture
def token_pki(unix_fw: UnixFirmware, local_ca: LocalCA) -> TokenPKI:
    """Provisioning helper for the unix firmware's (fresh, per-test) token."""
    return TokenPKI(unix_fw, local_ca)
