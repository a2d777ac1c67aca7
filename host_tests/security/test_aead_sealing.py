"""Finding 4 (issue 10): private values at rest are sealed with AES-256-GCM (the C
module's aead_seal/aead_open on mbedTLS), bound to their record kind, handle and
attribute type; records sealed the older way (the SHA-256 keystream, which firmware
without the C module still writes: the pure backend has no AES) are read and
re-sealed when next written. Firmware without the C module is simulated on the unix
firmware by a crypto.aead() that finds no AES-GCM."""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness.token_files import P11_PRELUDE, last_json

CKA_VALUE = 0x11
D1 = bytes(range(1, 33))
D2 = bytes(range(101, 133))


def _value_tags(token_dir) -> dict[str, int]:
    """{file name: tag of its CKA_VALUE} for the object records (format in store.py)."""
    out = {}
    for p in sorted(token_dir.glob("*.obj")):
        data = p.read_bytes()
        i = 12
        for _ in range(int.from_bytes(data[10:12], "big")):
            t = int.from_bytes(data[i:i + 4], "big")
            ln = int.from_bytes(data[i + 5:i + 7], "big")
            if t == CKA_VALUE:
                out[p.name] = data[i + 4]
            i += 7 + ln
    return out


def test_c_module_aes_gcm_matches_a_reference_and_refuses_any_change(unix_fw):
    key, nonce = os.urandom(32), os.urandom(12)
    cases = [(os.urandom(n), os.urandom(a)) for n, a in ((0, 0), (1, 9), (15, 9), (16, 0), (17, 9), (1190, 9))]
    out = last_json(unix_fw.run(f"""
import _pkcs11, json
key, nonce = {key!r}, {nonce!r}
res = {{"sealed": [], "opened": [], "refused": []}}
for pt, aad in {cases!r}:
    c = _pkcs11.aead_seal(key, nonce, aad, pt)
    res["sealed"].append(c.hex())
    res["opened"].append(_pkcs11.aead_open(key, nonce, aad, c) == pt)
c = _pkcs11.aead_seal(key, nonce, b"aad", b"private key bytes")
flip = lambda b, i: b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]
for args in ((key, nonce, b"aad", flip(c, 0)), (key, nonce, b"aad", flip(c, len(c) - 1)),
             (key, nonce, b"aae", c), (flip(key, 3), nonce, b"aad", c), (key, flip(nonce, 0), b"aad", c),
             (key, nonce, b"aad", c[:15]), (key[:16], nonce, b"aad", c), (key, nonce + b"1234", b"aad", c)):
    try:
        _pkcs11.aead_open(*args)
        res["refused"].append("opened")
    except ValueError as e:
        res["refused"].append(str(e))
print(json.dumps(res))
"""))
    ref = AESGCM(key)
    assert out["sealed"] == [ref.encrypt(nonce, pt, aad).hex() for pt, aad in cases]
    assert out["opened"] == [True] * len(cases)
    assert out["refused"][:5] == ["sealed value does not verify (wrong key or altered)"] * 5
    assert "shorter than its tag" in out["refused"][5]
    assert "AEAD key" in out["refused"][6] and "AEAD nonce" in out["refused"][7]
    assert "private key bytes" not in json.dumps(out["refused"])


MAKE_KEYS = P11_PRELUDE + f"""
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
ks = [p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
                             (CKA_LABEL, lab), (CKA_EC_PARAMS, P256), (CKA_VALUE, d)])
      for lab, d in ((b"one", {D1!r}), (b"two", {D2!r}))]
print(json.dumps(ks))
"""

SIGN_ALL = P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
res = {"bad": [[b, str(r)] for b, r in p11.corrupted_objects()], "signed": []}
for k in KEYS:
    try:
        p11.C_SignInit(h, CKM_ECDSA, k)
        res["signed"].append(len(p11.C_Sign(h, b"\\x01" * 32)))
    except Exception as e:
        res["signed"].append(type(e).__name__)
print(json.dumps(res))
"""


def test_private_values_are_sealed_with_aes_gcm(unix_fw):
    keys = last_json(unix_fw.run(MAKE_KEYS))
    assert set(_value_tags(unix_fw.token_dir).values()) == {6}
    blob = b"".join(p.read_bytes() for p in unix_fw.token_dir.iterdir())
    assert D1 not in blob and D2 not in blob
    out = last_json(unix_fw.run(SIGN_ALL.replace("KEYS", repr(keys))))
    assert out == {"bad": [], "signed": [64, 64]}


def test_a_sealed_value_moved_to_another_object_does_not_open(unix_fw):
    """Code with the device key (the REPL) re-MACs a record after copying key one's
    sealed value into key two's record: the MAC is right, but the value was sealed
    for another handle, so AES-GCM refuses it."""
    keys = last_json(unix_fw.run(MAKE_KEYS))
    unix_fw.run(P11_PRELUDE + f"""
from pkcs11 import store, config
st = store.Store(config.token_dir())
def fields(data):
    i, out = 12, {{}}
    for _ in range((data[10] << 8) | data[11]):
        t = int.from_bytes(data[i:i + 4], "big")
        ln = (data[i + 5] << 8) | data[i + 6]
        out[t] = (i, 7 + ln)
        i += 7 + ln
    return out
a = open(st._path(st.name({keys[0]})), "rb").read()
b = open(st._path(st.name({keys[1]})), "rb").read()
ia, na = fields(a)[CKA_VALUE]
ib, nb = fields(b)[CKA_VALUE]
forged = b[:ib] + a[ia:ia + na] + b[ib + nb:len(b) - 32]
forged += store._mac(st._mac_key(), forged)
with open(st._path(st.name({keys[1]})), "wb") as f:
    f.write(forged)
""")
    out = last_json(unix_fw.run(SIGN_ALL.replace("KEYS", repr(keys))))
    assert out["signed"] == [64, "DeviceError"], out
    assert out["bad"] == [[keys[1], "a sealed value does not verify"]], out


NO_AES = "from pkcs11 import crypto\ncrypto.aead = lambda: None\n"


def test_keystream_records_are_read_and_resealed_with_aes_gcm(unix_fw):
    """A token written without AES (the pure backend, as on stock firmware, or before
    this change) keeps working on the C firmware, and each record moves to AES-GCM
    when it is next written; firmware without AES-GCM cannot open those and says why."""
    keys = last_json(unix_fw.run(NO_AES + MAKE_KEYS))
    assert set(_value_tags(unix_fw.token_dir).values()) == {4}
    out = last_json(unix_fw.run(SIGN_ALL.replace("KEYS", repr(keys))))
    assert out == {"bad": [], "signed": [64, 64]}
    unix_fw.run(P11_PRELUDE + f"""
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_SetAttributeValue(h, {keys[0]}, [(CKA_LABEL, b"one, relabelled")])
""")
    tags = _value_tags(unix_fw.token_dir)
    assert sorted(tags.values()) == [4, 6]
    out = last_json(unix_fw.run(SIGN_ALL.replace("KEYS", repr(keys))))
    assert out == {"bad": [], "signed": [64, 64]}
    out = last_json(unix_fw.run(NO_AES + SIGN_ALL.replace("KEYS", repr(keys))))
    assert out["bad"] == [[keys[0], "sealed with AES-GCM, which this firmware lacks "
                                    "(it needs the _pkcs11 C module)"]], out
    assert out["signed"] == ["DeviceError", 64]
