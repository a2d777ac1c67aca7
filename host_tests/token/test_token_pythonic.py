"""The Pythonic layer (python-pkcs11 style) and the promise that private key
material never shows up in any output."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from harness.token_files import (P11_PRELUDE, TokenKeys, last_json, secret_patterns,
                                 verify_ecdsa_raw)


def test_import_every_key_form_and_certificates(unix_fw, token_keys: TokenKeys) -> None:
    """PEM and DER; PKCS#8, SEC1 (with the EC PARAMETERS block openssl ecparam
    writes) and PKCS#1; certificates fill CKA_SUBJECT/ISSUER/SERIAL_NUMBER."""
    token_keys.copy_to(unix_fw.work_dir)
    for name in ("ec_pkcs8", "rsa_pkcs1"):
        key = token_keys.private(getattr(token_keys, name))
        fmt = serialization.PrivateFormat.PKCS8 if name == "ec_pkcs8" else serialization.PrivateFormat.TraditionalOpenSSL
        (unix_fw.work_dir / f"{name}.der").write_bytes(
            key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption()))
    cert = x509.load_pem_x509_certificate(token_keys.ec_cert.read_bytes())
    (unix_fw.work_dir / "ec_cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    res = last_json(unix_fw.run(P11_PRELUDE + """
import binascii
hx = lambda b: binascii.hexlify(b).decode()
R = {}
with pkcs11.open_session() as s:
    for f in ("ec_sec1.pem", "ec_pkcs8.pem", "rsa_pkcs8.pem", "rsa_pkcs1.pem", "ec_pkcs8.der", "rsa_pkcs1.der"):
        k = s.import_key(open(f, "rb").read(), label=f)
        R[f] = [type(k).__name__, k.label.decode(), k.key_type, k[CKA_PRIVATE], k[CKA_SENSITIVE],
                k[CKA_EXTRACTABLE], k[CKA_TOKEN]]
    c = s.import_pem(open("ec_cert.pem", "rb").read())
    d = s.import_pem(open("ec_cert.der", "rb").read(), label="der cert")
    R["cert"] = [type(c).__name__, c.label.decode(), hx(c[CKA_SUBJECT]), hx(c[CKA_ISSUER]),
                 hx(c[CKA_SERIAL_NUMBER]), c.der == d.der, c[CKA_PRIVATE], hx(c.der)]
    ca = s.import_certificate(open("ca_cert.pem", "rb").read(), label=pkcs11.LABEL_ROOT_CERTIFICATE)
    R["root"] = [ca.label.decode(), ca[CKA_SUBJECT] == ca[CKA_ISSUER], ca[CKA_SUBJECT] == c[CKA_ISSUER]]
    R["garbage"] = ckr(s.import_pem, b"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n")
print(json.dumps(R))
"""))
    for f in ("ec_sec1.pem", "ec_pkcs8.pem", "ec_pkcs8.der"):
        assert res[f] == ["PrivateKey", f, 3, True, True, False, True]
    for f in ("rsa_pkcs8.pem", "rsa_pkcs1.pem", "rsa_pkcs1.der"):
        assert res[f] == ["PrivateKey", f, 0, True, True, False, True]
    kind, label, subject, issuer, serial, same, private, der = res["cert"]
    assert (kind, label, same, private) == ("Certificate", "Device Cert", True, False)
    assert bytes.fromhex(subject) == cert.subject.public_bytes()
    assert bytes.fromhex(issuer) == cert.issuer.public_bytes()
    assert bytes.fromhex(serial) == bytes.fromhex("02091234567890abcdef01")
    assert bytes.fromhex(der) == cert.public_bytes(serialization.Encoding.DER)
    assert res["root"] == ["Root Cert", True, True]
    assert res["garbage"] == "ATTRIBUTE_VALUE_INVALID"


def test_session_layer(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    res = last_json(unix_fw.run(P11_PRELUDE + """
import binascii
hx = lambda b: binascii.hexlify(b).decode()
R = {}
with pkcs11.open_session(rw=True) as s:
    R["initialized_by_session"] = p11.is_initialized()
    pub, priv = s.generate_keypair()
    R["labels"] = [pub.label.decode(), priv.label.decode(), type(pub).__name__, type(priv).__name__]
    key = s.get_key(object_class=CKO_PRIVATE_KEY, label=pkcs11.LABEL_DEVICE_PRIVATE_KEY)
    R["same_key"] = key == priv
    sig = key.sign(b"hello")
    R["sig"] = hx(sig)
    R["point"] = hx(pub[CKA_EC_POINT])
    R["verify"] = [pub.verify(b"hello", sig), pub.verify(b"hullo", sig), pub.verify(b"hello", sig[:10])]
    r = s.import_pem(open("rsa_pkcs8.pem", "rb").read(), label="rsa key", id=b"\\x07")
    R["rsa_sig"] = hx(r.sign(b"hello"))
    R["rsa_pss_sig"] = hx(r.sign(b"hello", CKM_SHA256_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA256, 32)))
    R["by_id"] = s.get_key(id=b"\\x07") == r
    s.import_pem(open("ec_pkcs8.pem", "rb").read(), label="twin")
    s.import_pem(open("ec_sec1.pem", "rb").read(), label="twin 2")[CKA_LABEL] = "twin"   # a taken label is refused
    try:
        s.get_key(label="twin")
    except pkcs11.MultipleObjectsReturned as e:
        R["multiple"] = [isinstance(e, pkcs11.PKCS11Error), str(e)]
    try:
        s.get_key(label="nobody")
    except pkcs11.NoSuchKey as e:
        R["none"] = str(e)
    R["find_all_private"] = len(s.find_objects(object_class=CKO_PRIVATE_KEY))
    r[CKA_LABEL] = "renamed"
    R["renamed"] = r.label.decode()
    kt, kid = r.get(CKA_KEY_TYPE, CKA_ID)
    R["get_many"] = [kt, hx(kid)]
    r.destroy()
    R["destroyed"] = len(s.find_objects(label="renamed"))
    R["random"] = len(s.generate_random(12))
    R["digest"] = hx(s.digest(b"abc"))
    tmp_pub, tmp_priv = s.generate_keypair(label="temp", store=False)
    R["session_keys"] = [tmp_pub[CKA_TOKEN], tmp_priv[CKA_TOKEN]]
R["finalized_after_with"] = not p11.is_initialized()
with pkcs11.open_session(rw=False) as s:
    R["persisted"] = [o.label.decode() for o in s.find_objects(object_class=CKO_PRIVATE_KEY)]
    R["ro_create"] = ckr(s.generate_keypair, label="ro")
print(json.dumps(R))
"""))
    assert res["initialized_by_session"] and res["finalized_after_with"]
    assert res["labels"] == ["Device Pub TLS Key", "Device Priv TLS Key", "PublicKey", "PrivateKey"]
    assert res["same_key"] and res["verify"] == [True, False, False] and res["by_id"]
    point = bytes.fromhex(res["point"])
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])
    verify_ecdsa_raw(pub, bytes.fromhex(res["sig"]), hashlib.sha256(b"hello").digest())
    rsa_pub = token_keys.private(token_keys.rsa_pkcs8).public_key()
    rsa_pub.verify(bytes.fromhex(res["rsa_sig"]), b"hello", padding.PKCS1v15(), hashes.SHA256())
    rsa_pub.verify(bytes.fromhex(res["rsa_pss_sig"]), b"hello",
                   padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    assert res["multiple"] == [True, "PKCS#11 error: 2 keys match"]
    assert res["none"] == "PKCS#11 error: no key matches"
    assert res["find_all_private"] == 4
    assert res["renamed"] == "renamed" and res["get_many"] == [0, "07"] and res["destroyed"] == 0
    assert res["random"] == 12
    assert res["digest"] == hashlib.sha256(b"abc").hexdigest()
    assert res["session_keys"] == [False, False]
    assert sorted(res["persisted"]) == ["Device Priv TLS Key", "twin", "twin"]
    assert res["ro_create"] == "SESSION_READ_ONLY"


def test_private_values_never_appear_in_output(unix_fw, token_keys: TokenKeys) -> None:
    """Every way a REPL user might look at a key: reprs, exceptions (with their
    .values), attribute reads, dumps of the session/function list.  None of it
    contains the private values; only the record files in the token hold them."""
    token_keys.copy_to(unix_fw.work_dir)
    proc = unix_fw.run_file(_script(unix_fw, P11_PRELUDE + """
import sys
with pkcs11.open_session() as s:
    ec = s.import_pem(open("ec_sec1.pem", "rb").read())
    rsa = s.import_pem(open("rsa_pkcs1.pem", "rb").read(), label="rsa")
    print(ec, rsa, repr(ec), repr(rsa), s, p11, p11._t.sessions, p11._t.objects)  # internals too
    for k, types in ((ec, [CKA_VALUE, CKA_LABEL]), (rsa, [CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2,
                                                          CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT,
                                                          CKA_VALUE, CKA_MODULUS])):
        try:
            k.get(*types)
        except pkcs11.PKCS11Error as e:
            print(repr(e), e, e.values, e.args)
        for t in types:
            try:
                print(k[t])
            except pkcs11.PKCS11Error as e:
                print(e)
        try:
            k[CKA_SENSITIVE] = False
        except pkcs11.PKCS11Error as e:
            print(e)
        try:
            k[CKA_EXTRACTABLE] = True
        except pkcs11.PKCS11Error as e:
            print(e)
    p11.C_FindObjectsInit(s.h, [])
    for h in p11.C_FindObjects(s.h, 50):
        o = s.object(h)
        print(o, o.get(CKA_CLASS, CKA_LABEL, CKA_ID))
    p11.C_FindObjectsFinal(s.h)
    try:
        ec.sign(b"x" * 19, CKM_ECDSA)
    except pkcs11.PKCS11Error as e:
        print(e)
raise ValueError("the end")
"""), check=False)
    out = proc.stdout + proc.stderr
    assert "AttributeSensitive" in out and "the end" in out
    for key in (token_keys.ec_sec1, token_keys.rsa_pkcs1):
        for pattern in secret_patterns(key):
            assert pattern.decode("latin-1") not in out
            for f in unix_fw.work_dir.rglob("*"):
                if f.is_file() and not f.name.endswith(".pem"):
                    assert pattern not in f.read_bytes(), f"secret in {f}"


def _script(unix_fw, code: str):
    p = unix_fw.work_dir / "leak.py"
    p.write_text(code)
    return p
