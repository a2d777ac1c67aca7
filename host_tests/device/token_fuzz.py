# test_token_fuzz.py: random C_* calls (SEED and N are set in front of this; runs after p11_prelude).
import random
random.seed(SEED)
with pkcs11.open_session() as s:
    key = s.import_pem(open("ec_sec1.pem", "rb").read(), public_label="pub")
    rsa = s.import_pem(open("rsa_pkcs1.pem", "rb").read(), label="rsa")
    cert = s.import_pem(open("ec_cert.pem", "rb").read())
    pub = s.get_key(object_class=CKO_PUBLIC_KEY)
    h = s.h
    ATTRS = [CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_VALUE, CKA_KEY_TYPE, CKA_ID, CKA_SIGN,
             CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_EC_PARAMS, CKA_EC_POINT, CKA_MODULUS, CKA_PUBLIC_EXPONENT,
             CKA_PRIME_1, CKA_CERTIFICATE_TYPE, CKA_SUBJECT, CKA_LOCAL, CKA_MODIFIABLE, CKA_DESTROYABLE,
             CKA_START_DATE, 0x9999, -1, 2 ** 40]
    MECHS = [CKM_ECDSA, CKM_ECDSA_SHA256, CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS_PSS,
             CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKM_EC_KEY_PAIR_GEN, 0x253, -5]
    def value():
        r = random.randint(0, 11)
        if r == 0: return True
        if r == 1: return False
        if r == 2: return random.randint(-3, 5)
        if r == 3: return random.getrandbits(32)
        if r == 4: return bytes(random.getrandbits(8) for _ in range(random.randint(0, 80)))
        if r == 5: return "text"
        if r == 6: return None
        if r == 7: return [1, 2]
        if r == 8: return P256
        if r == 9: return b"\x04\x41\x04" + bytes(64)
        if r == 10: return random.choice([CKO_DATA, CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKK_EC, CKK_RSA])
        return 3.5
    def template():
        t = [(random.choice(ATTRS), value()) for _ in range(random.randint(0, 7))]
        if random.randint(0, 5) == 0:
            t.append(("x", 1))
        if random.randint(0, 8) == 0:
            return random.choice([None, 5, "t", (1,), {CKA_CLASS: CKO_DATA}])
        return t
    def handle():
        return random.choice([key.handle, rsa.handle, cert.handle, pub.handle, 0, -1, 99999, "1", None,
                              0x10000000, 1.0])
    def mech():
        m = random.choice(MECHS)
        r = random.randint(0, 4)
        if r == 0: return (m, value())
        if r == 1: return (m, (random.choice([CKM_SHA256, CKM_SHA384, 7]), random.randint(0, 5), random.randint(-2, 300)))
        if r == 2: return [m]
        return m
    calls = [
        lambda: p11.C_CreateObject(h, template()),
        lambda: p11.C_SetAttributeValue(h, handle(), template()),
        lambda: p11.C_GetAttributeValue(h, handle(), random.choice([[random.choice(ATTRS)], ATTRS, "x", None, [None]])),
        lambda: p11.C_FindObjectsInit(h, template()),
        lambda: p11.C_FindObjects(h, random.choice([1, 0, -1, "x", 50])),
        lambda: p11.C_FindObjectsFinal(h),
        lambda: p11.C_SignInit(h, mech(), handle()),
        lambda: p11.C_Sign(h, value(), random.choice([None, bytearray(3), bytearray(300), b"x"]),
                           random.choice([False, True])),
        lambda: p11.C_SignUpdate(h, value()),
        lambda: p11.C_SignFinal(h),
        lambda: p11.C_VerifyInit(h, mech(), handle()),
        lambda: p11.C_Verify(h, value(), value()),
        lambda: p11.C_DigestInit(h, mech()),
        lambda: p11.C_Digest(h, value()),
        lambda: p11.C_GenerateKeyPair(h, mech(), template(), template()),
        lambda: p11.C_GenerateRandom(h, random.choice([-1, 0, 5, "5", None])),
        lambda: p11.C_Login(h, random.choice([0, 1, 2, "1", None]), value()),
        lambda: p11.C_OpenSession(random.choice([0, 1, None, "0"]), random.choice([0, 4, 6, None, "6"])),
        lambda: p11.C_GetSessionInfo(handle()),
        lambda: p11.C_GetMechanismInfo(random.choice([0, 1, None]), random.choice(MECHS + [None, "x"])),
        lambda: p11.C_DestroyObject(h, random.choice([0, -1, 99999, "1", None, 0x10000005])),
    ]
    bad = {}
    codes = {}
    for i in range(N):
        n = random.randint(0, len(calls) - 1)
        try:
            calls[n]()
            codes["OK"] = codes.get("OK", 0) + 1
        except errors.PKCS11Error as e:
            codes[errors.name(e.rv)] = codes.get(errors.name(e.rv), 0) + 1
        except Exception as e:
            k = "call %d: %s %s" % (n, type(e).__name__, e)
            bad[k] = bad.get(k, 0) + 1
    p11.C_CloseAllSessions(0)
# the session above initialized the library and finalized it on leaving
with pkcs11.open_session() as s:
    k = s.get_key(object_class=CKO_PRIVATE_KEY, label=pkcs11.LABEL_DEVICE_PRIVATE_KEY)
    ok = s.get_key(object_class=CKO_PUBLIC_KEY, label="pub").verify(b"m", k.sign(b"m"))
    damaged = p11.corrupted_objects()
print(json.dumps({"bad": bad, "codes": codes, "still_signs": ok, "damaged": damaged}))
