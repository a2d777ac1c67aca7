"""A NOR-flash model under VfsLfs2 on the unix firmware, and a power cut at
every program and erase of every token operation (issue 10, reliability plan).

The model: 4096-byte sectors, erase sets a sector to 0xFF, program can only
clear bits (new = old AND data; a program that would set a bit is counted as a
violation), and a cut can leave the operation half done: a torn program has
written only the first half of its bytes, a torn erase has set only the first
half of the sector to 0xFF.  Each token operation runs once with the
operations logged; then for every operation k two images are rebuilt from the
image before the token operation: ops[:k] done (the cut came just before k) and
ops[:k] plus k torn.  Each image must mount, the token must not be damaged,
every committed object must read back unchanged, and the interrupted object
must be all old/absent or all new/present."""

from __future__ import annotations

from harness.token_files import P11_PRELUDE, last_json

NOR = """
import os, gc
SECTOR = 4096
class NOR:
    def __init__(self, n, data=None):
        self.n = n
        self.data = data if data is not None else bytearray(b"\\xff" * (SECTOR * n))
        self.log = None
        self.violations = 0
    def readblocks(self, b, buf, off=0):
        a = b * SECTOR + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, b, buf, off=None):
        a = b * SECTOR + (off or 0)
        if off is None:
            self.ioctl(6, b)
        if self.log is not None:
            self.log.append(("p", a, bytes(buf)))
        program(self.data, a, buf, self)
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return SECTOR
        if op == 6:
            if self.log is not None:
                self.log.append(("e", arg * SECTOR, None))
            erase(self.data, arg * SECTOR, SECTOR)
            return 0
        return 0
def program(data, a, buf, dev=None):
    for i in range(len(buf)):
        old = data[a + i]
        new = old & buf[i]
        if dev is not None and new != buf[i]:
            dev.violations += 1
        data[a + i] = new
def erase(data, a, n):
    data[a:a + n] = b"\\xff" * n
def replay(base, ops, k, torn):
    img = bytearray(base)
    for kind, a, buf in ops[:k]:
        if kind == "e":
            erase(img, a, SECTOR)
        else:
            program(img, a, buf)
    if torn:
        kind, a, buf = ops[k]
        if kind == "e":
            erase(img, a, SECTOR // 2)
        else:
            program(img, a, buf[:len(buf) // 2])
    return img
"""

RUN = NOR + P11_PRELUDE + """
from pkcs11 import errors
N = 48
dev = NOR(N)
os.VfsLfs2.mkfs(dev)
os.mount(os.VfsLfs2(dev), "/flash")
pkcs11.configure(root="/flash/token")

def data_obj(h, label, value, private=False):
    return p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_PRIVATE, private),
                                  (CKA_LABEL, label), (CKA_VALUE, value)])

p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
keep = data_obj(h, b"keep", b"K" * 300)
victim = data_obj(h, b"victim", b"O" * 700)
doomed = data_obj(h, b"doomed", b"D" * 100)

# each step: (name, function) run on the live token; the checker knows its before/after
STEPS = [
    ("create", lambda: data_obj(h, b"made", b"M" * 500)),
    ("replace", lambda: p11.C_SetAttributeValue(h, victim, [(CKA_LABEL, b"new"), (CKA_VALUE, b"N" * 900)])),
    ("destroy", lambda: p11.C_DestroyObject(h, doomed)),
    ("set_pin", lambda: p11.C_SetPIN(h, b"", b"user-pin")),
    ("wrong_pin", lambda: ckr(p11.C_Login, h, CKU_USER, b"wrong-pin")),
]

def state(img, pin_set):
    os.mount(os.VfsLfs2(NOR(N, img)), "/cut")
    pkcs11.configure(root="/cut/token")
    try:
        p11.C_Initialize()
        s = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
        flags = p11.C_GetTokenInfo(0)["flags"]
        login = None
        if flags & CKF_USER_PIN_INITIALIZED:
            login = ckr(p11.C_Login, s, CKU_USER, b"user-pin")
        def get(label):
            p11.C_FindObjectsInit(s, [(CKA_LABEL, label)])
            f = p11.C_FindObjects(s, 5)
            p11.C_FindObjectsFinal(s)
            if not f:
                return None
            v = p11.C_GetAttributeValue(s, f[0], [CKA_VALUE])[0]
            return v[:1].decode() + str(len(v))
        r = {"keep": get(b"keep"), "old": get(b"victim"), "new": get(b"new"), "made": get(b"made"),
             "doomed": get(b"doomed"), "bad": len(p11.corrupted_objects()), "login": login,
             "pin": bool(flags & CKF_USER_PIN_INITIALIZED)}
        p11.C_Finalize()
    except Exception as e:
        r = {"error": repr(e)}
        try:
            p11.C_Finalize()
        except Exception:
            pass
    os.umount("/cut")
    pkcs11.configure(root="/flash/token")
    gc.collect()
    return r

results = {}
tried = 0
for name, step in STEPS:
    p11.C_Finalize()
    p11.C_Initialize()
    h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
    base = bytes(dev.data)
    dev.log = []
    step()
    ops, dev.log = dev.log, None
    p11.C_Finalize()
    states = []
    for k in range(len(ops)):
        for torn in (False, True):
            states.append([k, torn, state(replay(base, ops, k, torn), None)])
            tried += 1
    states.append([len(ops), False, state(bytearray(dev.data), None)])
    results[name] = {"ops": len(ops), "states": states}
    # the checks finalized the library: bring the live token back
    p11.C_Initialize()
    h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
print(json.dumps({"results": results, "tried": tried, "violations": dev.violations}))
"""


def test_cut_at_every_program_and_erase_of_every_token_operation(unix_fw) -> None:
    res = last_json(unix_fw.run(RUN, timeout=1200, heap="16M"))
    assert res["violations"] == 0, "littlefs programmed bits from 0 to 1"
    failures = []
    seen: dict[str, set] = {}
    for name, r in res["results"].items():
        assert r["ops"] >= 1, f"{name}: the flash operations were observed"
        for k, torn, st in r["states"]:
            where = f"{name} cut at op {k}/{r['ops']}{' (torn)' if torn else ''}: {st}"
            if "error" in st:
                failures.append(where)
                continue
            ok = st["keep"] == "K300" and st["bad"] == 0 and st["login"] in (None, "OK")
            if name == "create":
                ok = ok and st["made"] in (None, "M500") and st["old"] == "O700" and st["doomed"] == "D100"
                seen.setdefault(name, set()).add(st["made"])
            elif name == "replace":
                ok = ok and (st["old"], st["new"]) in (("O700", None), (None, "N900"))
                seen.setdefault(name, set()).add(st["new"])
            elif name == "destroy":
                ok = ok and st["doomed"] in (None, "D100") and st["new"] == "N900"
                seen.setdefault(name, set()).add(st["doomed"])
            elif name == "set_pin":
                # before: no PIN, everything visible; after: the PIN works
                ok = ok and st["new"] == "N900"
                seen.setdefault(name, set()).add(st["pin"])
            elif name == "wrong_pin":
                ok = ok and st["pin"] and st["login"] == "OK"
            if not ok:
                failures.append(where)
    assert not failures, "\n".join(failures[:20])
    assert seen["create"] == {None, "M500"} and seen["replace"] == {None, "N900"}
    assert seen["destroy"] == {None, "D100"} and seen["set_pin"] == {False, True}
    print(f"cut points tried: {res['tried']}, failed: {len(failures)}")
