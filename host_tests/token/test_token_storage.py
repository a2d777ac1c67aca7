"""Token storage: objects persist across C_Finalize/C_Initialize and firmware
restarts with stable handles; records carry a version and an integrity check;
damaged records are detected and reported; a replace is atomic (a power cut
leaves the old or the new record), on the host filesystem and on littlefs;
a full store gives CKR_DEVICE_MEMORY without harming what is stored."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.token_files import P11_PRELUDE, TokenKeys, last_json

SETUP = P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
def ec_key(label, token=True, d=b"\\x11" * 32):
    return p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, token),
                                  (CKA_LABEL, label), (CKA_EC_PARAMS, P256), (CKA_VALUE, d)])
def data_obj(label, value=b"v"):
    return p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_LABEL, label),
                                  (CKA_VALUE, value)])
def find(label):
    p11.C_FindObjectsInit(h, [(CKA_LABEL, label)])
    r = p11.C_FindObjects(h, 10)
    p11.C_FindObjectsFinal(h)
    return r
"""

# A littlefs2 filesystem on a RAM block device that can snapshot its bytes
# after every program/erase: each snapshot is what the flash would hold if the
# power failed right after that write.
LFS = """
import os
class RAMBlock:
    def __init__(self, bs, n, data=None):
        self.bs = bs
        self.data = data if data is not None else bytearray(bs * n)
        self.snaps = None
    def _snap(self):
        if self.snaps is not None:
            self.snaps.append(bytes(self.data))
    def readblocks(self, n, buf, off=0):
        a = n * self.bs + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, n, buf, off=None):
        a = n * self.bs + (off or 0)
        self.data[a:a + len(buf)] = buf
        self._snap()
    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.bs
        if op == 5:
            return self.bs
        if op == 6:
            a = arg * self.bs
            self.data[a:a + self.bs] = b"\\xff" * self.bs
            self._snap()
        return 0
def mount(bd, where):
    os.mount(os.VfsLfs2(bd), where)
"""


def _records(token_dir: Path) -> list[Path]:
    return sorted(token_dir.glob("*.obj"))


def test_objects_survive_finalize_and_restart_with_stable_handles(unix_fw) -> None:
    first = last_json(unix_fw.run(SETUP + """
a = ec_key(b"Device Priv TLS Key")
b = data_obj(b"config", b"endpoint.example")
s = ec_key(b"session only", token=False)
p11.C_DestroyObject(h, data_obj(b"gone"))
c = data_obj(b"after the gone one")
p11.C_Finalize()
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
same = [find(b"Device Priv TLS Key"), find(b"config"), find(b"after the gone one"), find(b"session only")]
print(json.dumps({"handles": [a, b, c], "session": s, "same": same}))
"""))
    a, b, c = first["handles"]
    assert first["same"] == [[a], [b], [c], []]
    assert first["session"] >= 0x10000000
    assert len(_records(unix_fw.token_dir)) == 3

    second = last_json(unix_fw.run(SETUP + """
print(json.dumps({"found": [find(b"Device Priv TLS Key"), find(b"config"), find(b"gone"), find(b"session only")],
                  "value": p11.C_GetAttributeValue(h, find(b"config")[0], [CKA_VALUE])[0].decode(),
                  "new": data_obj(b"next")}))
"""))
    assert second["found"] == [[a], [b], [], []]
    assert second["value"] == "endpoint.example"
    assert second["new"] > max(a, b, c)     # a new object never takes a live handle


def test_record_format_version_and_checksum(unix_fw) -> None:
    out = last_json(unix_fw.run(SETUP + """
print(json.dumps({"h": data_obj(b"fmt", b"payload")}))
"""))
    rec = unix_fw.token_dir / f"{out['h']:08x}.obj"
    data = rec.read_bytes()
    assert data[:4] == b"P11R" and data[4] == 2 and data[5:6] == b"O"
    assert int.from_bytes(data[6:10], "big") == out["h"]
    # version 2: an HMAC under the device key, not a hash anyone can recompute
    assert hashlib.sha256(data[:-32]).digest() != data[-32:]
    assert b"payload" in data and b"fmt" in data
    meta = (unix_fw.token_dir / "token.rec").read_bytes()
    assert meta[:4] == b"P11R" and meta[5:6] == b"T"
    assert not list(unix_fw.token_dir.glob("*.tmp"))


def test_pin_is_stored_as_a_salted_hash(unix_fw) -> None:
    unix_fw.run(SETUP + """
p11.C_SetPIN(h, b"", b"pin-4711-secret")
""")
    meta = (unix_fw.token_dir / "token.rec").read_bytes()
    assert b"pin-4711-secret" not in meta
    # the verifier is HMAC(PBKDF2-HMAC-SHA256(PIN, per-token salt), "pin verifier")
    # (the PBKDF2 output itself also derives the key that wraps the user key)
    import hmac
    found = False
    for i in range(len(meta) - 48):
        salt, digest = meta[i:i + 16], meta[i + 16:i + 48]
        p = hashlib.pbkdf2_hmac("sha256", b"pin-4711-secret", salt, 2700)     # config.PIN_ITERATIONS_C
        if hmac.new(p, b"pin verifier", "sha256").digest() == digest:
            found = True
    assert found


@pytest.mark.parametrize("damage", ["flip_value_byte", "truncate", "version", "handle_mismatch", "empty"])
def test_damaged_record_is_detected_and_reported(unix_fw, damage: str) -> None:
    ids = last_json(unix_fw.run(SETUP + """
print(json.dumps({"good": data_obj(b"good"), "bad": data_obj(b"victim", b"A" * 40)}))
"""))
    path = unix_fw.token_dir / f"{ids['bad']:08x}.obj"
    data = bytearray(path.read_bytes())
    if damage == "flip_value_byte":
        data[data.index(b"A" * 40) + 7] ^= 0x01
    elif damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "version":
        data[4] = 99
    elif damage == "handle_mismatch":
        # a valid record, but under another handle's file name
        path.unlink()
        path = unix_fw.token_dir / f"{ids['bad'] + 5:08x}.obj"
    elif damage == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))
    bad = int(path.name[:8], 16)
    res = last_json(unix_fw.run(SETUP + f"""
bad = {bad}
R = {{"corrupted": p11.corrupted_objects(), "find_victim": find(b"victim"), "find_good": find(b"good")}}
R["get"] = ckr(p11.C_GetAttributeValue, h, bad, [CKA_LABEL])
R["set"] = ckr(p11.C_SetAttributeValue, h, bad, [(CKA_LABEL, b"x")])
R["sign_init"] = ckr(p11.C_SignInit, h, CKM_ECDSA, bad)
R["destroy"] = ckr(p11.C_DestroyObject, h, bad)
R["after_destroy"] = p11.corrupted_objects()
print(json.dumps(R))
"""))
    reasons = {
        "flip_value_byte": "integrity check failed", "truncate": "integrity check failed",
        "version": "unsupported format version 99", "handle_mismatch": "handle does not match the file name",
        "empty": "truncated",
    }
    assert res["corrupted"] == [[bad, reasons[damage]]]
    assert res["find_victim"] == [] and res["find_good"] == [ids["good"]]
    assert res["get"] == res["set"] == res["sign_init"] == "DEVICE_ERROR"
    assert res["destroy"] == "OK" and res["after_destroy"] == []
    assert not path.exists()


def test_record_damaged_while_running_is_detected_on_use(unix_fw) -> None:
    res = last_json(unix_fw.run(SETUP + """
k = ec_key(b"key")
path = pkcs11.config.token_dir() + "/%08x.obj" % k
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x40
open(path, "wb").write(data)
R = {"label_from_ram_index": p11.C_GetAttributeValue(h, k, [CKA_LABEL])[0].decode()}
R["sign_init"] = ckr(p11.C_SignInit, h, CKM_ECDSA, k)
R["corrupted"] = p11.corrupted_objects()
R["label_now"] = ckr(p11.C_GetAttributeValue, h, k, [CKA_LABEL])
print(json.dumps(R))
"""))
    assert res["label_from_ram_index"] == "key"
    assert res["sign_init"] == "DEVICE_ERROR" and res["label_now"] == "DEVICE_ERROR"
    assert res["corrupted"] == [[1, "integrity check failed"]]


def test_power_cut_between_temp_write_and_rename(unix_fw) -> None:
    """store.fault simulates the power failing at a point of a replace (SystemExit
    skips every cleanup, like a reset would); the next boot sees old or new."""
    ids = last_json(unix_fw.run(SETUP + """
print(json.dumps({"h": data_obj(b"before", b"old value")}))
"""))
    h = ids["h"]
    cut = SETUP + """
import sys
from pkcs11 import store
def fault(stage, name):
    if stage == STAGE:
        print("power cut at", stage, name)
        sys.exit(3)
store.fault = fault
WHAT
"""
    set_label = f"p11.C_SetAttributeValue(h, {h}, [(CKA_LABEL, b'after'), (CKA_VALUE, b'new value')])"
    proc = unix_fw.run_file(_write(unix_fw, cut.replace("STAGE", "'tmp'").replace("WHAT", set_label)),
                            check=False)
    assert proc.returncode == 3 and "power cut at tmp" in proc.stdout
    assert list(unix_fw.token_dir.glob("*.tmp")), "the crash left its temp file"
    check = SETUP + f"""
label = p11.C_GetAttributeValue(h, {h}, [CKA_LABEL])[0].decode()
print(json.dumps({{"label": label, "corrupted": p11.corrupted_objects()}}))
"""
    res = last_json(unix_fw.run(check))
    assert res["label"] == "before" and res["corrupted"] == []
    assert not list(unix_fw.token_dir.glob("*.tmp")), "the next C_Initialize removes stale temp files"

    proc = unix_fw.run_file(_write(unix_fw, cut.replace("STAGE", "'renamed'").replace("WHAT", set_label)),
                            check=False)
    assert proc.returncode == 3 and "power cut at renamed" in proc.stdout
    res = last_json(unix_fw.run(check))
    assert res["label"] == "after" and res["corrupted"] == []

    # a create cut before its rename never happened
    create = "print(json.dumps({'h': data_obj(b'half made')}))"
    proc = unix_fw.run_file(_write(unix_fw, cut.replace("STAGE", "'tmp'").replace("WHAT", create)), check=False)
    assert proc.returncode == 3
    res = last_json(unix_fw.run(SETUP + """
print(json.dumps({"half": find(b"half made"), "all": sorted(find(b"after") + find(b"half made")),
                  "corrupted": p11.corrupted_objects()}))
"""))
    assert res["half"] == [] and res["all"] == [h] and res["corrupted"] == []
    assert [p.name for p in _records(unix_fw.token_dir)] == [f"{h:08x}.obj"]


def _write(unix_fw, code: str) -> Path:
    p = unix_fw.work_dir / "cut.py"
    p.write_text(code)
    return p


def test_power_cut_at_every_flash_write_on_littlefs(unix_fw) -> None:
    """The token on littlefs2 (as on the boards): for every block write of a
    replace and of a create, the flash contents right after that write mount
    to a token where the object is either old or new (or absent/present for
    the create), never damaged, and the other objects are untouched."""
    res = last_json(unix_fw.run(LFS + P11_PRELUDE + """
bd = RAMBlock(512, 96)
os.VfsLfs2.mkfs(bd)
mount(bd, "/flash")
pkcs11.configure(root="/flash/token")
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
def data_obj(label, value):
    return p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_LABEL, label), (CKA_VALUE, value)])
keep = data_obj(b"keep", b"K" * 300)
obj = data_obj(b"old", b"O" * 700)
bd.snaps = []
p11.C_SetAttributeValue(h, obj, [(CKA_LABEL, b"new"), (CKA_VALUE, b"N" * 900)])
replace_snaps = bd.snaps
bd.snaps = []
made = data_obj(b"made", b"M" * 500)
create_snaps = bd.snaps
bd.snaps = None
p11.C_Finalize()
os.umount("/flash")

def state_after(snap):
    mount(RAMBlock(512, 96, bytearray(snap)), "/cut")
    pkcs11.configure(root="/cut/token")
    p11.C_Initialize()
    s = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
    def get(o):
        try:
            lab, val = p11.C_GetAttributeValue(s, o, [CKA_LABEL, CKA_VALUE])
            return lab.decode() + ":" + val[:1].decode() + str(len(val))
        except errors.PKCS11Error as e:
            return errors.name(e.rv)
    r = [get(keep), get(obj), get(made), len(p11.corrupted_objects())]
    p11.C_Finalize()
    os.umount("/cut")
    return r
print(json.dumps({"made": made,
                  "replace": [state_after(s) for s in replace_snaps],
                  "create": [state_after(s) for s in create_snaps]}))
"""))
    replace, create = res["replace"], res["create"]
    assert len(replace) >= 3 and len(create) >= 3, "the writes were observed"
    seen = set()
    for keep, obj, made, corrupted in replace:
        assert keep == "keep:K300" and corrupted == 0
        assert obj in ("old:O700", "new:N900")
        assert made == "OBJECT_HANDLE_INVALID"
        seen.add(obj)
    assert seen == {"old:O700", "new:N900"}
    assert replace[-1][1] == "new:N900"
    seen = set()
    for keep, obj, made, corrupted in create:
        assert keep == "keep:K300" and obj == "new:N900" and corrupted == 0
        assert made in ("OBJECT_HANDLE_INVALID", "made:M500")
        seen.add(made)
    assert seen == {"OBJECT_HANDLE_INVALID", "made:M500"}


def test_full_store_gives_device_memory_and_keeps_objects(unix_fw) -> None:
    res = last_json(unix_fw.run(LFS + P11_PRELUDE + """
bd = RAMBlock(512, 24)
os.VfsLfs2.mkfs(bd)
mount(bd, "/small")
pkcs11.configure(root="/small/token")
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
made = []
rv = None
for i in range(40):
    try:
        made.append(p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_LABEL, b"o%d" % i),
                                           (CKA_VALUE, bytes([i]) * 900)]))
    except errors.PKCS11Error as e:
        rv = errors.name(e.rv)
        break
ok = all(p11.C_GetAttributeValue(h, o, [CKA_VALUE])[0] == bytes([i]) * 900 for i, o in enumerate(made))
grow = ckr(p11.C_SetAttributeValue, h, made[0], [(CKA_VALUE, b"z" * 4000)])
still = p11.C_GetAttributeValue(h, made[0], [CKA_VALUE])[0] == bytes([0]) * 900
p11.C_Finalize()
p11.C_Initialize()
after = len(p11.corrupted_objects())
tmp = [n for n in os.listdir("/small/token") if n.endswith(".tmp")]
print(json.dumps({"n": len(made), "rv": rv, "ok": ok, "grow": grow, "still": still, "after": after, "tmp": tmp}))
"""))
    assert res["rv"] == "DEVICE_MEMORY" and res["n"] >= 2
    assert res["ok"] and res["still"] and res["grow"] == "DEVICE_MEMORY"
    assert res["after"] == 0 and res["tmp"] == []


def test_object_limit_gives_device_memory(unix_fw) -> None:
    res = last_json(unix_fw.run("import pkcs11\npkcs11.configure(max_objects=3)\n" + SETUP + """
made = [data_obj(b"a"), data_obj(b"b"), data_obj(b"c")]
R = {"fourth": ckr(data_obj, b"d"), "session_object": ckr(ec_key, b"s", False)}
p11.C_DestroyObject(h, made[0])
R["after_destroy"] = ckr(data_obj, b"e")
print(json.dumps(R))
"""))
    assert res == {"fourth": "DEVICE_MEMORY", "session_object": "OK", "after_destroy": "OK"}


def test_damaged_token_record_fails_closed(unix_fw) -> None:
    ids = last_json(unix_fw.run(SETUP + """
priv = ec_key(b"secret key")
pub = data_obj(b"public data")
p11.C_SetPIN(h, b"", b"1234")
print(json.dumps({"priv": priv, "pub": pub}))
"""))
    meta = unix_fw.token_dir / "token.rec"
    data = bytearray(meta.read_bytes())
    data[20] ^= 0xFF
    meta.write_bytes(bytes(data))
    res = last_json(unix_fw.run(SETUP + f"""
R = {{"flags_login_required": p11.C_GetTokenInfo(0)["flags"] & CKF_LOGIN_REQUIRED != 0}}
R["login"] = ckr(p11.C_Login, h, CKU_USER, b"1234")
R["private"] = ckr(p11.C_GetAttributeValue, h, {ids['priv']}, [CKA_LABEL])
R["public"] = ckr(p11.C_GetAttributeValue, h, {ids['pub']}, [CKA_LABEL])
R["set_pin"] = ckr(p11.C_SetPIN, h, b"", b"9999")
p11.C_CloseAllSessions(0)
R["init_token"] = ckr(p11.C_InitToken, 0, b"new-so-pin", b"fresh")
R["erase"] = ckr(p11.erase_token, 0)
R["init_after_erase"] = ckr(p11.C_InitToken, 0, b"new-so-pin", b"fresh")
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
R["old_objects"] = ckr(p11.C_GetAttributeValue, h, {ids['pub']}, [CKA_LABEL])
R["label"] = p11.C_GetTokenInfo(0)["label"].decode().strip()
print(json.dumps(R))
"""))
    assert res == {"flags_login_required": True, "login": "DEVICE_ERROR", "private": "USER_NOT_LOGGED_IN",
                   "public": "OK", "set_pin": "DEVICE_ERROR", "init_token": "DEVICE_ERROR",
                   "erase": "OK", "init_after_erase": "OK",
                   "old_objects": "OBJECT_HANDLE_INVALID", "label": "fresh"}


def test_storage_root_resolution(unix_fw, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    code = """
import os, json
from pkcs11 import config
R = {"env": config.token_dir()}
config.configure(root="/explicit/dir")
R["explicit"] = config.token_dir()
config.configure(root=None)
os.unsetenv("PKCS11_TOKEN_DIR")
R["default"] = config.token_dir()
config._isdir = lambda p: p == "/token"
R["board"] = config.token_dir()
print(json.dumps(R))
"""
    res = last_json(unix_fw.run(code, env={"HOME": str(home)}))
    assert res == {"env": str(unix_fw.token_dir), "explicit": "/explicit/dir",
                   "default": f"{home}/.micropython/pkcs11-token", "board": "/token"}
    # with neither: the default directory is created on first use
    out = unix_fw.run("import os\nos.unsetenv('PKCS11_TOKEN_DIR')\n" + SETUP + "data_obj(b'x')\nprint('ok')",
                      env={"HOME": str(home)})
    assert "ok" in out and (home / ".micropython" / "pkcs11-token" / "token.rec").exists()
