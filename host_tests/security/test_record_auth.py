"""Finding 3 (issue 10): records are authenticated with a device key kept
outside the token directory, a generation counter catches a rolled-back token
record, objects without a token record make a damaged token, and a damaged
token can only be erased (C_InitToken cannot check the SO PIN against it)."""

from __future__ import annotations

import hashlib
import shutil
import stat

from harness.token_files import P11_PRELUDE, last_json

OPEN = P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
"""

MAKE_KEY = OPEN + """
k = p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
                           (CKA_PRIVATE, True), (CKA_SENSITIVE, True), (CKA_EXTRACTABLE, False),
                           (CKA_LABEL, b"device key"), (CKA_EC_PARAMS, P256), (CKA_VALUE, b"\\x42" * 32)])
print(json.dumps({"k": k}))
"""

READ_VALUE = OPEN + """
K = KEY
R = {"corrupted": p11.corrupted_objects(),
     "value": ckr(p11.C_GetAttributeValue, h, K, [CKA_VALUE])}
try:
    R["leaked"] = p11.C_GetAttributeValue(h, K, [CKA_VALUE])[0].hex()
except Exception:
    R["leaked"] = None
print(json.dumps(R))
"""

CKA_SENSITIVE = 0x103
CKA_EXTRACTABLE = 0x162


def _flip_bool(data: bytearray, attr: int, value: bool) -> None:
    i = 12
    end = len(data) - 32
    while i < end:
        t = int.from_bytes(data[i:i + 4], "big")
        tag = data[i + 4]
        ln = int.from_bytes(data[i + 5:i + 7], "big")
        if t == attr:
            data[i + 4] = 1 if value else 0
            return
        i += 7 + ln
        del tag
    raise AssertionError(f"attribute {attr:#x} not in the record")


def test_flipping_sensitive_and_extractable_and_rehashing_is_detected(unix_fw) -> None:
    k = last_json(unix_fw.run(MAKE_KEY))["k"]
    rec = unix_fw.token_dir / f"{k:08x}.obj"
    data = bytearray(rec.read_bytes())
    _flip_bool(data, CKA_SENSITIVE, False)
    _flip_bool(data, CKA_EXTRACTABLE, True)
    data[-32:] = hashlib.sha256(bytes(data[:-32])).digest()    # what the old format trusted
    rec.write_bytes(bytes(data))
    res = last_json(unix_fw.run(READ_VALUE.replace("KEY", str(k))))
    assert res["leaked"] is None
    assert res["value"] == "DEVICE_ERROR"
    assert res["corrupted"] == [[k, "integrity check failed"]]


def test_records_from_another_device_are_refused(unix_fw, tmp_path) -> None:
    k = last_json(unix_fw.run(MAKE_KEY))["k"]
    other = tmp_path / "other"
    shutil.copytree(unix_fw.token_dir, other / "token")
    # the copy has the records but not this device's key (it lives outside the dir)
    res = last_json(unix_fw.run(READ_VALUE.replace("KEY", str(k)),
                                env={"PKCS11_TOKEN_DIR": str(other / "token")}))
    assert res["leaked"] is None
    assert res["value"] == "DEVICE_ERROR"
    assert res["corrupted"] == [[k, "integrity check failed"]]


def test_device_key_lives_outside_the_token_dir_0600(unix_fw) -> None:
    unix_fw.run(MAKE_KEY)
    key = unix_fw.token_dir.parent / "token.key"
    assert key.exists() and key.stat().st_size == 32
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not [p for p in unix_fw.token_dir.iterdir() if "key" in p.name]


def test_deleting_the_token_record_does_not_give_a_pinless_token(unix_fw) -> None:
    k = last_json(unix_fw.run(MAKE_KEY + "p11.C_SetPIN(h, b'', b'user-pin')\n"))["k"]
    (unix_fw.token_dir / "token.rec").unlink()
    res = last_json(unix_fw.run(OPEN + f"""
R = {{"value": ckr(p11.C_GetAttributeValue, h, {k}, [CKA_LABEL]),
     "login": ckr(p11.C_Login, h, CKU_USER, b"user-pin"),
     "sign": ckr(p11.C_SignInit, h, CKM_ECDSA, {k}),
     "login_required": p11.C_GetTokenInfo(0)["flags"] & CKF_LOGIN_REQUIRED != 0}}
p11.C_CloseAllSessions(0)
R["init_token"] = ckr(p11.C_InitToken, 0, b"so-pin-new", b"taken")
print(json.dumps(R))
"""))
    assert res["value"] == "USER_NOT_LOGGED_IN" and res["sign"] == "USER_NOT_LOGGED_IN"
    assert res["login"] == "DEVICE_ERROR" and res["login_required"] is True
    assert res["init_token"] == "DEVICE_ERROR"


def test_objects_without_token_record_and_counter_still_damaged(unix_fw) -> None:
    """Removing the token record and the counter too (the key stays) is still
    a damaged token: objects exist without a token record."""
    k = last_json(unix_fw.run(MAKE_KEY + "p11.C_SetPIN(h, b'', b'user-pin')\n"))["k"]
    (unix_fw.token_dir / "token.rec").unlink()
    (unix_fw.token_dir.parent / "token.key.gen").unlink()
    res = last_json(unix_fw.run(OPEN + f"""
print(json.dumps({{"value": ckr(p11.C_GetAttributeValue, h, {k}, [CKA_LABEL]),
                  "login": ckr(p11.C_Login, h, CKU_USER, b"user-pin")}}))
"""))
    assert res == {"value": "USER_NOT_LOGGED_IN", "login": "DEVICE_ERROR"}


def test_rolled_back_token_record_is_detected(unix_fw) -> None:
    unix_fw.run(OPEN + "p11.C_SetPIN(h, b'', b'user-pin')\n")
    saved = (unix_fw.token_dir / "token.rec").read_bytes()
    res = last_json(unix_fw.run(OPEN + """
print(json.dumps({"r": [ckr(p11.C_Login, h, CKU_USER, b"wrong%d" % i) for i in range(3)]}))
"""))
    assert res == {"r": ["PIN_INCORRECT"] * 3}
    # put back the record from before the wrong guesses (failure count 0)
    (unix_fw.token_dir / "token.rec").write_bytes(saved)
    res = last_json(unix_fw.run(OPEN + """
print(json.dumps({"login": ckr(p11.C_Login, h, CKU_USER, b"user-pin")}))
"""))
    assert res == {"login": "DEVICE_ERROR"}


def test_damaged_token_can_be_erased_and_starts_afresh(unix_fw) -> None:
    k = last_json(unix_fw.run(MAKE_KEY + "p11.C_SetPIN(h, b'', b'user-pin')\n"))["k"]
    (unix_fw.token_dir / "token.rec").unlink()
    res = last_json(unix_fw.run(P11_PRELUDE + f"""
p11.C_Initialize()
R = {{"init": ckr(p11.C_InitToken, 0, b"so-pin-new", b"fresh"), "erase": ckr(p11.erase_token, 0)}}
R["init_after"] = ckr(p11.C_InitToken, 0, b"so-pin-new", b"fresh")
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
R["old"] = ckr(p11.C_GetAttributeValue, h, {k}, [CKA_LABEL])
R["flags_login"] = p11.C_GetTokenInfo(0)["flags"] & CKF_LOGIN_REQUIRED != 0
print(json.dumps(R))
"""))
    assert res == {"init": "DEVICE_ERROR", "erase": "OK", "init_after": "OK",
                   "old": "OBJECT_HANDLE_INVALID", "flags_login": False}
    assert not list(unix_fw.token_dir.glob("*.obj"))


def test_damaged_device_key_is_a_damaged_token_not_a_crash(unix_fw) -> None:
    unix_fw.run(MAKE_KEY + "p11.C_SetPIN(h, b'', b'user-pin')\n")
    (unix_fw.token_dir.parent / "token.key").write_bytes(b"short")
    res = last_json(unix_fw.run(OPEN + """
print(json.dumps({"login": ckr(p11.C_Login, h, CKU_USER, b"user-pin")}))
"""))
    assert res == {"login": "DEVICE_ERROR"}
