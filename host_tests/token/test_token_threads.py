"""Two threads x 10 rounds, each with its own session, as FreeRTOS's porting
test suite does: random, find the key/certificate/public key by label, read the
certificate, be refused the private value, sign and verify, create and destroy
objects.  Every round succeeds and no two objects ever share a handle."""

from __future__ import annotations

from harness.token_files import P11_PRELUDE, TokenKeys, last_json

THREADS = P11_PRELUDE + """
import _thread, time
p11.C_Initialize()
s = pkcs11.open_session()
h = s.h
s.import_pem(open("ec_sec1.pem", "rb").read(), public_label=pkcs11.LABEL_DEVICE_PUBLIC_KEY)
s.import_pem(open("ec_cert.pem", "rb").read())
results = {}
created = []
lock = _thread.allocate_lock()

def worker(name):
    log = []
    try:
        sh = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
        for r in range(10):
            rnd = p11.C_GenerateRandom(sh, 32)
            found = []
            for label in (b"Device Priv TLS Key", b"Device Cert", b"Device Pub TLS Key"):
                p11.C_FindObjectsInit(sh, [(CKA_LABEL, label)])
                found += p11.C_FindObjects(sh, 2)
                p11.C_FindObjectsFinal(sh)
            key, cert, pub = found
            der = p11.C_GetAttributeValue(sh, cert, [CKA_VALUE])[0]
            try:
                p11.C_GetAttributeValue(sh, key, [CKA_VALUE])
                refused = False
            except errors.PKCS11Error as e:
                refused = e.rv == CKR_ATTRIBUTE_SENSITIVE
            digest = p11.C_GenerateRandom(sh, 32)
            p11.C_SignInit(sh, CKM_ECDSA, key)
            sig = p11.C_Sign(sh, digest)
            p11.C_VerifyInit(sh, CKM_ECDSA, pub)
            p11.C_Verify(sh, digest, sig)
            o = p11.C_CreateObject(sh, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True),
                                        (CKA_LABEL, b"%s-%d" % (name, r)), (CKA_VALUE, rnd)])
            with lock:
                created.append(o)
            if r % 2:
                p11.C_DestroyObject(sh, o)
            log.append(len(found) == 3 and len(der) > 100 and refused)
        p11.C_CloseSession(sh)
    except Exception as e:
        log.append(repr(e))
    with lock:
        results[name] = log

for n in ("A", "B"):
    _thread.start_new_thread(worker, (n,))
for _ in range(600):
    if len(results) == 2:
        break
    time.sleep(0.05)
p11.C_FindObjectsInit(h, [(CKA_CLASS, CKO_DATA)])
left = p11.C_FindObjects(h, 100)
p11.C_FindObjectsFinal(h)
print(json.dumps({"results": results, "created": created, "left": len(left)}))
"""


def test_two_threads_ten_rounds(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    res = last_json(unix_fw.run(THREADS))
    assert res["results"] == {"A": [True] * 10, "B": [True] * 10}
    assert len(res["created"]) == 20 and len(set(res["created"])) == 20
    assert res["left"] == 10
    assert len(list(unix_fw.token_dir.glob("*.obj"))) == 2 + 1 + 10
