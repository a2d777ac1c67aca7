# test_nor_flash_cuts.py: a power cut at every write of each token operation
# (runs after nor_flash_model and p11_prelude).
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
