"""Finding 4 (issue 10): private key material is encrypted at rest, so a copy
of the token files (a flash dump) does not contain the key, and the token still
signs with it after a restart."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from harness.token_files import P11_PRELUDE, last_json

D = bytes(range(1, 33))
SECRET_DATA = b"private data object value 4711"


def test_private_values_are_not_in_the_records_and_still_work(unix_fw) -> None:
    pub = ec.derive_private_key(int.from_bytes(D, "big"), ec.SECP256R1()).public_key()
    res = last_json(unix_fw.run(P11_PRELUDE + f"""
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
k = p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
                           (CKA_LABEL, b"dev"), (CKA_EC_PARAMS, P256), (CKA_VALUE, {D!r})])
d = p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_PRIVATE, True),
                           (CKA_LABEL, b"secret data"), (CKA_VALUE, {SECRET_DATA!r})])
print(json.dumps({{"k": k, "d": d}}))
"""))
    blob = b"".join(p.read_bytes() for p in unix_fw.token_dir.iterdir())
    assert D not in blob and D[:8] not in blob
    assert SECRET_DATA not in blob and SECRET_DATA[:12] not in blob
    assert b"secret data" in blob        # labels stay readable (they are not secret)
    out = last_json(unix_fw.run(P11_PRELUDE + f"""
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
p11.C_SignInit(h, CKM_ECDSA, {res['k']})
sig = p11.C_Sign(h, b"\\x01" * 32)
val = p11.C_GetAttributeValue(h, {res['d']}, [CKA_VALUE])[0]
print(json.dumps({{"sig": sig.hex(), "data": val.decode(), "bad": p11.corrupted_objects()}}))
"""))
    assert out["data"] == SECRET_DATA.decode() and out["bad"] == []
    sig = bytes.fromhex(out["sig"])
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
    from cryptography.hazmat.primitives import hashes
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, b"\x01" * 32, ec.ECDSA(Prehashed(hashes.SHA256())))


PIN_FLOW = P11_PRELUDE + """
from pkcs11 import store, config
p11.C_Initialize()
def sign(h, k):
    p11.C_SignInit(h, CKM_ECDSA, k)
    return len(p11.C_Sign(h, b"\\x01" * 32))
def raw_value(k):
    # what code on the device that has the device key (the REPL) reads from the record
    return store.Store(config.token_dir()).load(k).get(CKA_VALUE)
"""


def test_private_values_need_the_user_pin_once_one_is_set(unix_fw) -> None:
    res = last_json(unix_fw.run(PIN_FLOW + f"""
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
k = p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
                           (CKA_LABEL, b"dev"), (CKA_EC_PARAMS, P256), (CKA_VALUE, {D!r})])
R = {{"before_pin": raw_value(k) == {D!r}}}
p11.C_SetPIN(h, b"", b"user-pin-1")
R["after_pin_locked"] = raw_value(k) is None
R["sign_without_login"] = ckr(sign, h, k)
p11.C_Login(h, CKU_USER, b"user-pin-1")
R["sign_logged_in"] = sign(h, k)
p11.C_SetPIN(h, b"user-pin-1", b"user-pin-2")
p11.C_Logout(h)
p11.C_Finalize()
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
R["after_restart_locked"] = raw_value(k) is None
p11.C_Login(h, CKU_USER, b"user-pin-2")
R["sign_new_pin"] = sign(h, k)
print(json.dumps(R))
"""))
    assert res == {"before_pin": True, "after_pin_locked": True, "sign_without_login": "USER_NOT_LOGGED_IN",
                   "sign_logged_in": 64, "after_restart_locked": True, "sign_new_pin": 64}
    blob = b"".join(p.read_bytes() for p in unix_fw.token_dir.iterdir())
    assert D not in blob


def test_so_reset_of_the_user_pin_keeps_the_private_keys(unix_fw) -> None:
    res = last_json(unix_fw.run(PIN_FLOW + f"""
p11.C_InitToken(0, b"so-pin-1", b"t")
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_Login(h, CKU_SO, b"so-pin-1")
p11.C_InitPIN(h, b"user-pin-1")
p11.C_Logout(h)
p11.C_Login(h, CKU_USER, b"user-pin-1")
k = p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
                           (CKA_LABEL, b"dev"), (CKA_EC_PARAMS, P256), (CKA_VALUE, {D!r})])
p11.C_Logout(h)
R = {{"locked": raw_value(k) is None}}
p11.C_Login(h, CKU_SO, b"so-pin-1")
p11.C_InitPIN(h, b"user-pin-reset")
p11.C_Logout(h)
R["old_pin"] = ckr(p11.C_Login, h, CKU_USER, b"user-pin-1")
p11.C_Login(h, CKU_USER, b"user-pin-reset")
R["sign"] = sign(h, k)
print(json.dumps(R))
"""))
    assert res == {"locked": True, "old_pin": "PIN_INCORRECT", "sign": 64}
