# test_token_ckr.py: helpers every group uses (runs after p11_prelude).
R = {}
def rec(name, f, *a, **k):
    R[name] = ckr(f, *a, **k)
def rw_session():
    return p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
def ec_key(h, label=b"k", token=True, **extra):
    d = b"\x11" * 32
    t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, token),
         (CKA_LABEL, label), (CKA_EC_PARAMS, P256), (CKA_VALUE, d)]
    for a, v in extra.items():
        t.append((globals()["CKA_" + a], v))
    return p11.C_CreateObject(h, t)
def ec_pub(h, label=b"p", token=True, **extra):
    from pkcs11 import crypto
    q = crypto.ec_public(b"\x11" * 32)
    t = [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, token),
         (CKA_LABEL, label), (CKA_EC_PARAMS, P256), (CKA_EC_POINT, b"\x04\x41" + q)]
    for a, v in extra.items():
        t.append((globals()["CKA_" + a], v))
    return p11.C_CreateObject(h, t)
def rsa_template(label=b"r"):
    from pkcs11 import crypto
    k = crypto.parse_private_key(open("rsa_pkcs1.pem", "rb").read())
    return [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_RSA), (CKA_TOKEN, True),
            (CKA_LABEL, label), (CKA_MODULUS, k["n"]), (CKA_PUBLIC_EXPONENT, k["e"]),
            (CKA_PRIVATE_EXPONENT, k["d"]), (CKA_PRIME_1, k["p"]), (CKA_PRIME_2, k["q"]),
            (CKA_EXPONENT_1, k["dp"]), (CKA_EXPONENT_2, k["dq"]), (CKA_COEFFICIENT, k["qinv"])]
def without(t, attr):
    return [x for x in t if x[0] != attr]
def replaced(t, attr, v):
    return without(t, attr) + [(attr, v)]
