"""The seed's two call sequences, in the seed's order, on the unix firmware:
provisioning (C_GetFunctionList, C_Initialize, C_CreateObject private key and
certificate, C_DestroyObject) and TLS client authentication (C_Initialize ...
C_Sign, C_CloseSession, C_Finalize), for an EC P-256 and an RSA-2048 key made
by openssl.  Each signature is verified on the host with `cryptography`."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.token_files import (P11_PRELUDE, SEED_CLIENT_ORDER, TokenKeys, cert_public_key, last_json,
                                 secret_patterns, verify_ecdsa_raw, verify_rsa_pkcs1_prehashed)

# Provisioning as the FreeRTOS demo does it: the PEM key is parsed into the
# attribute template corePKCS11 accepts; objects of an earlier provisioning
# with the same labels are destroyed once the new ones exist.
PROVISION = P11_PRELUDE + """
from pkcs11 import crypto
calls = []
def call(name, *a):
    calls.append(name)
    return getattr(p11, name)(*a)
fl = pkcs11.C_GetFunctionList(); calls.append("C_GetFunctionList")
call("C_Initialize")
slot = p11.C_GetSlotList(True)[0]
h = p11.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
old = []
for label in (b"Device Priv TLS Key", b"Device Cert"):
    p11.C_FindObjectsInit(h, [(CKA_LABEL, label)])
    old += p11.C_FindObjects(h, 8)
    p11.C_FindObjectsFinal(h)
k = crypto.parse_private_key(open(KEY, "rb").read())
if k["type"] == "ec":
    t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
         (CKA_LABEL, b"Device Priv TLS Key"), (CKA_SIGN, True), (CKA_EC_PARAMS, P256),
         (CKA_VALUE, k["d"])]
else:
    t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_RSA), (CKA_TOKEN, True),
         (CKA_LABEL, b"Device Priv TLS Key"), (CKA_SIGN, True), (CKA_MODULUS, k["n"]),
         (CKA_PUBLIC_EXPONENT, k["e"]), (CKA_PRIVATE_EXPONENT, k["d"]), (CKA_PRIME_1, k["p"]),
         (CKA_PRIME_2, k["q"]), (CKA_EXPONENT_1, k["dp"]), (CKA_EXPONENT_2, k["dq"]),
         (CKA_COEFFICIENT, k["qinv"])]
k = None
key = call("C_CreateObject", h, t)
t = None
cert = call("C_CreateObject", h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                                  (CKA_TOKEN, True), (CKA_LABEL, b"Device Cert"),
                                  (CKA_VALUE, open(CERT, "rb").read())])
for o in old:
    call("C_DestroyObject", h, o)
p11.C_CloseSession(h)
p11.C_Finalize()
print(json.dumps({"calls": calls, "key": key, "cert": cert, "destroyed": old}))
"""

# TLS client authentication, the seed's order.  The key's type decides the
# mechanism: CKM_ECDSA over a SHA-256 hash, CKM_RSA_PKCS over a DigestInfo.
CLIENT_AUTH = P11_PRELUDE + """
import binascii
calls = []
def call(name, *a):
    calls.append(name)
    return getattr(p11, name)(*a)
call("C_Initialize")
slot = call("C_GetSlotList", True)[0]
h = call("C_OpenSession", slot, CKF_SERIAL_SESSION)
call("C_FindObjectsInit", h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_LABEL, b"Device Priv TLS Key")])
keys = call("C_FindObjects", h, 2)
call("C_FindObjectsFinal", h)
ktype, = call("C_GetAttributeValue", h, keys[0], [CKA_KEY_TYPE])
call("C_FindObjectsInit", h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_LABEL, b"Device Cert")])
certs = call("C_FindObjects", h, 2)
call("C_FindObjectsFinal", h)
der, = call("C_GetAttributeValue", h, certs[0], [CKA_VALUE])
rnd = call("C_GenerateRandom", h, 32)
if ktype == CKK_EC:
    call("C_SignInit", h, CKM_ECDSA, keys[0])
    sig = call("C_Sign", h, DIGEST)
else:
    call("C_SignInit", h, CKM_RSA_PKCS, keys[0])
    sig = call("C_Sign", h, SHA256_DIGESTINFO + DIGEST)
call("C_CloseSession", h)
call("C_Finalize")
print(json.dumps({"calls": calls, "keys": keys, "certs": certs, "ktype": ktype,
                  "cert": binascii.hexlify(der).decode(), "random": binascii.hexlify(rnd).decode(),
                  "sig": binascii.hexlify(sig).decode()}))
"""

SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def _client_auth(unix_fw, message: bytes, env: dict[str, str] | None = None) -> dict:
    digest = hashlib.sha256(message).digest()
    code = (f"DIGEST = {digest!r}\nSHA256_DIGESTINFO = {SHA256_PREFIX!r}\n") + CLIENT_AUTH
    out = unix_fw.run(code, env=env)
    return last_json(out), out


def _provision(unix_fw, key, cert) -> tuple[dict, str]:
    out = unix_fw.run(f"KEY = {key.name!r}\nCERT = {cert.name!r}\n" + PROVISION)
    return last_json(out), out


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_seed_provisioning_then_client_authentication(unix_fw, token_keys: TokenKeys, kind: str) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    key, cert = ((token_keys.ec_sec1, token_keys.ec_cert) if kind == "ec"
                 else (token_keys.rsa_pkcs8, token_keys.rsa_cert))
    prov, prov_out = _provision(unix_fw, key, cert)
    assert prov["calls"] == ["C_GetFunctionList", "C_Initialize", "C_CreateObject", "C_CreateObject"]
    assert prov["destroyed"] == []

    # a second process: the objects survived, the sequence runs in the seed's order
    message = b"TLS 1.2 CertificateVerify handshake messages"
    res, auth_out = _client_auth(unix_fw, message)
    assert res["calls"] == SEED_CLIENT_ORDER
    assert res["keys"] == [prov["key"]] and res["certs"] == [prov["cert"]]
    cert_der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert bytes.fromhex(res["cert"]) == cert_der
    assert len(bytes.fromhex(res["random"])) == 32
    sig = bytes.fromhex(res["sig"])
    digest = hashlib.sha256(message).digest()
    if kind == "ec":
        assert res["ktype"] == 3 and len(sig) == 64
        verify_ecdsa_raw(cert_public_key(cert), sig, digest)
    else:
        assert res["ktype"] == 0 and len(sig) == 256
        verify_rsa_pkcs1_prehashed(cert_public_key(cert), sig, digest)
    for pattern in secret_patterns(key):
        for text in (prov_out, auth_out):
            assert pattern.decode("latin-1") not in text


def test_reprovisioning_destroys_the_old_objects(unix_fw, token_keys: TokenKeys) -> None:
    """The provisioning sequence's C_DestroyObject: provisioning a new key over an
    old one leaves exactly the new key and certificate."""
    token_keys.copy_to(unix_fw.work_dir)
    first, _ = _provision(unix_fw, token_keys.ec_sec1, token_keys.ec_cert)
    second, _ = _provision(unix_fw, token_keys.rsa_pkcs8, token_keys.rsa_cert)
    assert second["calls"] == ["C_GetFunctionList", "C_Initialize", "C_CreateObject", "C_CreateObject",
                               "C_DestroyObject", "C_DestroyObject"]
    assert sorted(second["destroyed"]) == sorted([first["key"], first["cert"]])
    message = b"after re-provisioning"
    res, _ = _client_auth(unix_fw, message)
    assert res["keys"] == [second["key"]] and res["ktype"] == 0
    verify_rsa_pkcs1_prehashed(cert_public_key(token_keys.rsa_cert), bytes.fromhex(res["sig"]),
                               hashlib.sha256(message).digest())


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_client_authentication_with_the_pure_backend(unix_fw, token_keys: TokenKeys, kind: str) -> None:
    """The same sign path with the pure-Python backend forced (PKCS11_CRYPTO=pure):
    what a firmware without the C module does."""
    token_keys.copy_to(unix_fw.work_dir)
    # the other key forms the seed's commands make (PKCS#8 EC, PKCS#1 RSA); the
    # token does not check that a certificate matches its key, any one will do
    key = token_keys.ec_pkcs8 if kind == "ec" else token_keys.rsa_pkcs1
    _provision(unix_fw, key, token_keys.ec_cert)
    message = b"signed by pure Python"
    env = {"PKCS11_CRYPTO": "pure"}
    out = unix_fw.run(P11_PRELUDE + """
from pkcs11 import crypto
print(json.dumps({"ec_sign": crypto.which("ec_sign"), "rsa": crypto.which("rsa_sign_pkcs1")}))
""", env=env)
    assert last_json(out) == {"ec_sign": "pure", "rsa": "pure"}
    res, _ = _client_auth(unix_fw, message, env=env)
    sig = bytes.fromhex(res["sig"])
    pub = token_keys.private(key).public_key()
    digest = hashlib.sha256(message).digest()
    if kind == "ec":
        verify_ecdsa_raw(pub, sig, digest)
    else:
        verify_rsa_pkcs1_prehashed(pub, sig, digest)
