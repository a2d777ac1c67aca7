# test_token_threads.py: threads signing, verifying and finding at once (runs after p11_prelude).
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
