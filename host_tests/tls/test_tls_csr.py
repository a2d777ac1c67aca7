"""p11csr: PKCS#10 requests built on the device and signed inside the token.

Checked on the host with openssl (`req -verify`) and the cryptography package: the
signature verifies, the subject is the one asked for, and the public key is the token's.
"""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

GENERATE = """
import pkcs11, p11csr
from pkcs11.constants import *
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], CKF_SERIAL_SESSION | CKF_RW_SESSION)
pub, key = p11.C_GenerateKeyPair(h, CKM_EC_KEY_PAIR_GEN,
    [(CKA_TOKEN, True), (CKA_LABEL, b"Device Pub TLS Key"), (CKA_ID, b"k1"),
     (CKA_EC_PARAMS, b"\\x06\\x08\\x2a\\x86\\x48\\xce\\x3d\\x03\\x01\\x07")],
    [(CKA_TOKEN, True), (CKA_LABEL, b"Device Priv TLS Key"), (CKA_ID, b"k1"), (CKA_SIGN, True)])
print("point", p11.C_GetAttributeValue(h, pub, [CKA_EC_POINT])[0].hex())
print("csr", p11csr.make_csr(h, key, {subject!r}{pub}).hex())
"""


def check_csr(tmp_path, der: bytes) -> x509.CertificateSigningRequest:
    path = tmp_path / "req.der"
    path.write_bytes(der)
    proc = subprocess.run(["openssl", "req", "-inform", "DER", "-in", str(path), "-verify",
                           "-noout"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "verify OK" in proc.stdout + proc.stderr
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid
    return csr


def fields(out: str) -> dict[str, bytes]:
    return {k: bytes.fromhex(v) for k, v in (line.split(" ", 1) for line in out.splitlines()
                                             if line.startswith(("point ", "csr ")))}


@pytest.mark.parametrize("pub", ["", ", pub=pub"])
def test_csr_for_a_key_generated_in_the_token(unix_fw, tmp_path, pub):
    out = fields(unix_fw.run(GENERATE.format(subject="CN=thing-1,O=Example Corp", pub=pub)))
    csr = check_csr(tmp_path, out["csr"])
    assert csr.subject.rfc4514_string() == "O=Example Corp,CN=thing-1"
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    # CKA_EC_POINT is the DER OCTET STRING around the point.
    assert out["point"] == b"\x04\x41" + point
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"


def test_csr_through_the_pythonic_session(unix_fw, tmp_path):
    out = unix_fw.run("""
import pkcs11, p11csr
from pkcs11.constants import *
with pkcs11.open_session(rw=True) as s:
    pub, key = s.generate_keypair()
    print("csr", p11csr.make_csr(s, key, [("CN", "thing-2")]).hex())
""")
    csr = check_csr(tmp_path, fields(out)["csr"])
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "thing-2"


def test_csr_for_an_imported_rsa_key(token_pki, tmp_path):
    identity = token_pki.add_identity("rsa-device", "rsa")
    out = token_pki.fw.run("""
import pkcs11, p11csr
from pkcs11.constants import *
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], CKF_SERIAL_SESSION)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"Device Priv TLS Key")])
key = p11.C_FindObjects(h, 1)[0]
p11.C_FindObjectsFinal(h)
print("csr", p11csr.make_csr(h, key, "CN=rsa-device").hex())
""")
    csr = check_csr(tmp_path, fields(out)["csr"])
    key = csr.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert identity.key is not None
    assert key.public_numbers() == identity.key.public_key().public_numbers()
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"
    # The local CA (the demo's stand-in for AWS IoT) accepts it.
    cert = token_pki.ca.sign_csr(fields(out)["csr"])
    assert cert.cert.public_key().public_numbers() == key.public_numbers()
    token_pki.assert_no_secrets(out)


def test_bad_subject_is_a_clear_error(unix_fw):
    out = unix_fw.run("""
import p11csr
try:
    p11csr.parse_subject("thing-without-attribute")
except ValueError as e:
    print("ValueError", e)
print(p11csr.parse_subject(" CN = a , O=b "))
""")
    assert "ValueError subject must look like 'CN=name,O=org': 'thing-without-attribute'" in out
    assert "[('CN', 'a'), ('O', 'b')]" in out
