"""FreeRTOS-style call sequences the token used to refuse (issue 11 items 1-4).

The device code is written the way FreeRTOS's corePKCS11 helpers and its key
provisioning code (xInitializePkcs11Session, prvGenerateKeyPairEC,
prvProvisionCertificate) call PKCS#11, on the unix firmware:
  1. C_Login(CKU_USER, "0000") (configPKCS11_DEFAULT_USER_PIN) on every session of a
     token without a user PIN: accepted; other PINs keep CKR_USER_PIN_NOT_INITIALIZED.
  2. a certificate template whose CKA_SUBJECT is b"TestSubject": stored as given.
  3. CKM_RSA_X_509 in the mechanism list, usable to verify (not to sign).
  4. C_GenerateKeyPair with no CKA_TOKEN in the public template: the public key
     survives a restart (a new firmware process) next to the private key.
Plus the porting tests' encodings: CKA_EC_PARAMS is the DER OID of P-256, CKA_EC_POINT
the DER OCTET STRING of the uncompressed point, for generated and imported keys.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from harness.token_files import P11_PRELUDE, TokenKeys, last_json, verify_ecdsa_raw

START = P11_PRELUDE + """
p11.C_Initialize()
slot = p11.C_GetSlotList(True)[0]
def session():
    # xInitializePkcs11Session: open a session, log in with the default PIN.
    h = p11.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
    rv = ckr(p11.C_Login, h, CKU_USER, b"0000")
    assert rv in ("OK", "USER_ALREADY_LOGGED_IN"), rv
    return h
def find(h, label, cls=None):
    t = [(CKA_LABEL, label)] + ([(CKA_CLASS, cls)] if cls is not None else [])
    p11.C_FindObjectsInit(h, t)
    r = p11.C_FindObjects(h, 2)
    p11.C_FindObjectsFinal(h)
    return r
R = {}
"""


def test_default_user_pin_on_a_token_without_user_pin(unix_fw) -> None:
    out = unix_fw.run(P11_PRELUDE + """
import pkcs11.config
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
R = {"flags": p11.C_GetTokenInfo(0)["flags"] & CKF_USER_PIN_INITIALIZED}
R["other_pin"] = ckr(p11.C_Login, h, CKU_USER, b"1234")
R["default_pin"] = ckr(p11.C_Login, h, CKU_USER, b"0000")
R["state"] = p11.C_GetSessionInfo(h)["state"] == CKS_RW_USER_FUNCTIONS
h2 = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
R["second_session"] = ckr(p11.C_Login, h2, CKU_USER, "0000")
R["logout"] = ckr(p11.C_Logout, h)
R["as_str"] = ckr(p11.C_Login, h, CKU_USER, "0000")
p11.C_Logout(h)
pkcs11.config.configure(default_user_pin=None)
R["switched_off"] = ckr(p11.C_Login, h, CKU_USER, b"0000")
pkcs11.config.configure(default_user_pin="0000")
# With a user PIN, "0000" is just a wrong PIN.
R["set_pin"] = ckr(p11.C_SetPIN, h, b"", b"424242")
R["after_set_pin"] = ckr(p11.C_Login, h, CKU_USER, b"0000")
R["real_pin"] = ckr(p11.C_Login, h, CKU_USER, b"424242")
p11.C_Finalize()
print(json.dumps(R))
""")
    r = last_json(out)
    assert r == {"flags": 0, "other_pin": "USER_PIN_NOT_INITIALIZED", "default_pin": "OK",
                 "state": True, "second_session": "USER_ALREADY_LOGGED_IN", "logout": "OK",
                 "as_str": "OK", "switched_off": "USER_PIN_NOT_INITIALIZED",
                 "set_pin": "OK", "after_set_pin": "PIN_INCORRECT", "real_pin": "OK"}, r


def test_certificate_subject_is_stored_as_given(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    out = unix_fw.run(START + """
from pkcs11 import crypto
h = session()
cert = crypto.parse_certificate(open("ec_cert.pem", "rb").read())["der"]
# prvProvisionCertificate's template (FreeRTOS): CKA_SUBJECT is a fixed string.
c = p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                           (CKA_SUBJECT, b"TestSubject"), (CKA_VALUE, cert),
                           (CKA_LABEL, b"Device Cert"), (CKA_TOKEN, True)])
R["subject"] = p11.C_GetAttributeValue(h, c, [CKA_SUBJECT])[0].decode()
c2 = p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                            (CKA_VALUE, cert), (CKA_LABEL, b"Other Cert")])
R["derived"] = p11.C_GetAttributeValue(h, c2, [CKA_SUBJECT])[0].hex()
R["value_kept"] = p11.C_GetAttributeValue(h, c, [CKA_VALUE])[0] == cert
p11.C_Finalize()
p11.C_Initialize()
h = session()
R["after_restart"] = p11.C_GetAttributeValue(h, find(h, b"Device Cert")[0], [CKA_SUBJECT])[0].decode()
p11.C_Finalize()
print(json.dumps(R))
""")
    r = last_json(out)
    assert r["subject"] == "TestSubject" and r["after_restart"] == "TestSubject"
    assert r["value_kept"] is True
    subject = x509.load_pem_x509_certificate(token_keys.ec_cert.read_bytes()).subject
    assert bytes.fromhex(r["derived"]) == subject.public_bytes()


def test_rsa_x_509_verifies_raw_signatures(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    key = token_keys.private(token_keys.rsa_pkcs8)
    digest = hashlib.sha256(b"FreeRTOS").digest()
    sig = key.sign(b"FreeRTOS", padding.PKCS1v15(), hashes.SHA256())
    # The raw RSA block of a PKCS#1 v1.5 signature: 00 01 FF..FF 00 DigestInfo.
    info = bytes.fromhex("3031300d060960864801650304020105000420") + digest
    em = b"\x00\x01" + b"\xff" * (256 - 3 - len(info)) + b"\x00" + info
    out = unix_fw.run(START + f"""
h = session()
s = pkcs11.open_session()
s.import_pem(open("rsa_pkcs8.pem", "rb").read(), public_label=b"RSA Pub")
pub = find(h, b"RSA Pub", CKO_PUBLIC_KEY)[0]
priv = find(h, b"Device Priv TLS Key", CKO_PRIVATE_KEY)[0]
R["listed"] = CKM_RSA_X_509 in p11.C_GetMechanismList(slot)
R["info"] = p11.C_GetMechanismInfo(slot, CKM_RSA_X_509)
sig = bytes.fromhex({sig.hex()!r})
em = bytes.fromhex({em.hex()!r})
def verify(data, sig):
    p11.C_VerifyInit(h, CKM_RSA_X_509, pub)
    return p11.C_Verify(h, data, sig)
R["good"] = ckr(verify, em, sig)
R["good_without_leading_zero"] = ckr(verify, em[1:], sig)
R["bad_data"] = ckr(verify, em[:-1] + bytes([em[-1] ^ 1]), sig)
R["bad_sig"] = ckr(verify, em, sig[:-1] + bytes([sig[-1] ^ 1]))
R["too_long"] = ckr(verify, b"\\x00" + em, sig)
# A token signature (CKM_RSA_PKCS over the DigestInfo) verifies as raw RSA too.
p11.C_SignInit(h, CKM_RSA_PKCS, priv)
tsig = p11.C_Sign(h, em[-51:])
R["token_sig"] = ckr(verify, em, tsig)
R["sign"] = ckr(p11.C_SignInit, h, CKM_RSA_X_509, priv)
p11.C_Finalize()
print(json.dumps(R))
""")
    r = last_json(out)
    assert r["listed"] is True
    assert r["info"]["flags"] == 0x2000  # CKF_VERIFY only
    assert r["info"]["ulMinKeySize"] == r["info"]["ulMaxKeySize"] == 2048
    assert r["good"] == "OK" and r["good_without_leading_zero"] == "OK"
    assert r["bad_data"] == "SIGNATURE_INVALID" and r["bad_sig"] == "SIGNATURE_INVALID"
    assert r["too_long"] == "DATA_LEN_RANGE"
    assert r["token_sig"] == "OK"
    assert r["sign"] == "MECHANISM_INVALID"


GENERATE = START + """
h = session()
# prvGenerateKeyPairEC (FreeRTOS): no CKA_TOKEN in the public template.
pub, priv = p11.C_GenerateKeyPair(h, CKM_EC_KEY_PAIR_GEN,
    [(CKA_KEY_TYPE, CKK_EC), (CKA_VERIFY, True), (CKA_EC_PARAMS, P256),
     (CKA_LABEL, b"Device Pub TLS Key")],
    [(CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True), (CKA_PRIVATE, True), (CKA_SIGN, True),
     (CKA_LABEL, b"Device Priv TLS Key")])
R["token"] = p11.C_GetAttributeValue(h, pub, [CKA_TOKEN])[0]
R["point"] = p11.C_GetAttributeValue(h, pub, [CKA_EC_POINT])[0].hex()
# An explicit CKA_TOKEN FALSE keeps a session key.
spub, spriv = p11.C_GenerateKeyPair(h, CKM_EC_KEY_PAIR_GEN,
    [(CKA_EC_PARAMS, P256), (CKA_TOKEN, False), (CKA_LABEL, b"Session Pub")],
    [(CKA_TOKEN, True), (CKA_LABEL, b"Session Priv")])
R["explicit"] = p11.C_GetAttributeValue(h, spub, [CKA_TOKEN])[0]
p11.C_Finalize()
print(json.dumps(R))
"""

AFTER_RESTART = START + """
h = session()
pub = find(h, b"Device Pub TLS Key", CKO_PUBLIC_KEY)
priv = find(h, b"Device Priv TLS Key", CKO_PRIVATE_KEY)
R["found"] = [len(pub), len(priv), len(find(h, b"Session Pub")), len(find(h, b"Session Priv"))]
pub = pub[0]
R["params"], R["point"] = [v.hex() for v in p11.C_GetAttributeValue(h, pub, [CKA_EC_PARAMS, CKA_EC_POINT])]
R["priv_point"] = p11.C_GetAttributeValue(h, priv[0], [CKA_EC_POINT])[0].hex()
d = bytes(range(32))
p11.C_SignInit(h, CKM_ECDSA, priv[0])
sig = p11.C_Sign(h, d)
p11.C_VerifyInit(h, CKM_ECDSA, pub)
R["verify"] = ckr(p11.C_Verify, h, d, sig)
R["sig"] = sig.hex()
p11.C_Finalize()
print(json.dumps(R))
"""


def test_generated_public_key_without_cka_token_survives_a_restart(unix_fw) -> None:
    first = last_json(unix_fw.run(GENERATE))
    assert first["token"] is True and first["explicit"] is False
    r = last_json(unix_fw.run(AFTER_RESTART))
    assert r["found"] == [1, 1, 0, 1], r
    assert r["verify"] == "OK"
    # The porting tests' encodings: EC_PARAMS the P-256 OID, EC_POINT a DER OCTET STRING.
    assert r["params"] == "06082a8648ce3d030107"
    point = bytes.fromhex(r["point"])
    assert point[:3] == b"\x04\x41\x04" and len(point) == 67
    assert r["point"] == first["point"] == r["priv_point"]
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])
    verify_ecdsa_raw(pub, bytes.fromhex(r["sig"]), bytes(range(32)))


def test_strict_setting_keeps_the_public_key_in_the_session(unix_fw) -> None:
    out = unix_fw.run(GENERATE.replace("p11.C_Initialize()", """import pkcs11.config
pkcs11.config.configure(public_key_follows_private=False)
p11.C_Initialize()""", 1))
    assert last_json(out)["token"] is False
    r = last_json(unix_fw.run(AFTER_RESTART.replace(
        'pub = pub[0]', 'print(json.dumps(R))\nraise SystemExit')))
    assert r["found"] == [0, 1, 0, 1]


def test_imported_key_encodings(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    out = unix_fw.run(START + """
h = session()
s = pkcs11.open_session()
s.import_pem(open("ec_pkcs8.pem", "rb").read(), public_label=b"Device Pub TLS Key")
pub = find(h, b"Device Pub TLS Key", CKO_PUBLIC_KEY)[0]
priv = find(h, b"Device Priv TLS Key", CKO_PRIVATE_KEY)[0]
R["pub"] = [v.hex() for v in p11.C_GetAttributeValue(h, pub, [CKA_EC_PARAMS, CKA_EC_POINT])]
R["priv"] = [v.hex() for v in p11.C_GetAttributeValue(h, priv, [CKA_EC_PARAMS, CKA_EC_POINT])]
R["value"] = ckr(p11.C_GetAttributeValue, h, priv, [CKA_VALUE])
# A public key created from a bare 65-byte point is stored as DER too (corePKCS11 accepts both).
q = bytes.fromhex(R["pub"][1])[2:]
o = p11.C_CreateObject(h, [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_EC_PARAMS, P256),
                           (CKA_EC_POINT, q), (CKA_LABEL, b"Bare Point")])
R["bare"] = p11.C_GetAttributeValue(h, o, [CKA_EC_POINT])[0].hex()
p11.C_Finalize()
print(json.dumps(R))
""")
    r = last_json(out)
    key = token_keys.private(token_keys.ec_pkcs8)
    q = key.public_key().public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint)
    assert r["pub"] == r["priv"] == ["06082a8648ce3d030107", "0441" + q.hex()]
    assert r["bare"] == "0441" + q.hex()
    assert r["value"] == "ATTRIBUTE_SENSITIVE"
