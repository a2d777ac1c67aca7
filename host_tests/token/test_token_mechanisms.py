"""Every signing mechanism, with the C backend and with the pure-Python one:
signatures made by the token verify on the host (`cryptography`), host-made
signatures verify in the token, digests match hashlib."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.exceptions import InvalidSignature

from harness.token_files import (P11_PRELUDE, TokenKeys, last_json, verify_ecdsa_raw)

HASHES = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
          "sha512": hashes.SHA512()}
MSG = b"The quick brown fox signs over the lazy token"

SIGN_ALL = P11_PRELUDE + """
import binascii, hashlib
with pkcs11.open_session() as s:
    ec = s.import_pem(open("ec_sec1.pem", "rb").read(), label="ec")
    rsa = s.import_pem(open("rsa_pkcs8.pem", "rb").read(), label="rsa")
    h = s.h
    def sign(key, mech, data, parts=None):
        p11.C_SignInit(h, mech, key.handle)
        if parts:
            for i in range(0, len(data), parts):
                p11.C_SignUpdate(h, data[i:i + parts])
            return binascii.hexlify(p11.C_SignFinal(h)).decode()
        return binascii.hexlify(p11.C_Sign(h, data)).decode()
    M = MSG
    D = {n: bytes.fromhex(x) for n, x in DIGESTS.items()}
    R = {}
    for n in ("sha1", "sha256", "sha384", "sha512"):
        R["ECDSA/" + n] = sign(ec, CKM_ECDSA, D[n])
    for n, m in (("sha1", CKM_ECDSA_SHA1), ("sha256", CKM_ECDSA_SHA256), ("sha384", CKM_ECDSA_SHA384),
                 ("sha512", CKM_ECDSA_SHA512)):
        R["ECDSA_" + n] = sign(ec, m, M)
    R["ECDSA_sha256/multi"] = sign(ec, CKM_ECDSA_SHA256, M, parts=7)
    R["RSA_PKCS/sha256"] = sign(rsa, CKM_RSA_PKCS, PREFIX + D["sha256"])
    for n, m in (("sha1", CKM_SHA1_RSA_PKCS), ("sha256", CKM_SHA256_RSA_PKCS), ("sha384", CKM_SHA384_RSA_PKCS),
                 ("sha512", CKM_SHA512_RSA_PKCS)):
        R["RSA_PKCS_" + n] = sign(rsa, m, M)
    R["RSA_PKCS_sha256/multi"] = sign(rsa, CKM_SHA256_RSA_PKCS, M, parts=5)
    for n, hm, mgf in (("sha256", CKM_SHA256, CKG_MGF1_SHA256), ("sha384", CKM_SHA384, CKG_MGF1_SHA384)):
        for salt in (0, 20, len(D[n])):
            R["PSS/%s/%d" % (n, salt)] = sign(rsa, (CKM_RSA_PKCS_PSS, (hm, mgf, salt)), D[n])
    for n, m, hm, mgf in (("sha1", CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, CKG_MGF1_SHA1),
                          ("sha256", CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256),
                          ("sha384", CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384),
                          ("sha512", CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, CKG_MGF1_SHA512)):
        R["PSS_%s/32" % n] = sign(rsa, (m, (hm, mgf, 32)), M)
    R["PSS_sha256/multi/32"] = sign(rsa, (CKM_SHA256_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA256, 32)), M, parts=3)
    for n, m in (("sha1", CKM_SHA_1), ("sha256", CKM_SHA256), ("sha384", CKM_SHA384), ("sha512", CKM_SHA512)):
        p11.C_DigestInit(h, m)
        R["DIGEST/" + n] = binascii.hexlify(p11.C_Digest(h, M)).decode()
    R["backend"] = pkcs11.crypto.which("ec_sign") + "," + pkcs11.crypto.which("rsa_sign_pss")
print(json.dumps(R))
"""


def _pss(salt: int, algo) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(algo), salt_length=salt)


@pytest.mark.parametrize("backend", ["auto", "pure"])
def test_every_mechanism_verifies_on_the_host(unix_fw, token_keys: TokenKeys, backend: str) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    digests = {n: hashlib.new(n, MSG).hexdigest() for n in HASHES}
    prefix = bytes.fromhex("3031300d060960864801650304020105000420")
    code = f"MSG = {MSG!r}\nDIGESTS = {digests!r}\nPREFIX = {prefix!r}\n" + SIGN_ALL
    res = last_json(unix_fw.run(code, env={"PKCS11_CRYPTO": backend}))
    assert res.pop("backend") == ("c,c" if backend == "auto" else "pure,pure")
    ec_pub = token_keys.private(token_keys.ec_sec1).public_key()
    rsa_pub = token_keys.private(token_keys.rsa_pkcs8).public_key()
    checked = 0
    for name, hexsig in res.items():
        sig = bytes.fromhex(hexsig)
        mech, _, rest = name.partition("/")
        if mech == "DIGEST":
            assert hexsig == digests[rest]
        elif mech == "ECDSA":
            verify_ecdsa_raw(ec_pub, sig, bytes.fromhex(digests[rest]), HASHES[rest])
        elif mech.startswith("ECDSA_"):
            assert len(sig) == 64
            der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            ec_pub.verify(der, MSG, ec.ECDSA(HASHES[mech[6:]]))
        elif mech == "RSA_PKCS":
            rsa_pub.verify(sig, bytes.fromhex(digests[rest]), padding.PKCS1v15(), utils.Prehashed(HASHES[rest]))
        elif mech.startswith("RSA_PKCS_"):
            rsa_pub.verify(sig, MSG, padding.PKCS1v15(), HASHES[mech[9:]])
        elif mech == "PSS":
            hname, salt = rest.split("/")
            algo = HASHES[hname]
            rsa_pub.verify(sig, bytes.fromhex(digests[hname]), _pss(int(salt), algo), utils.Prehashed(algo))
        elif mech.startswith("PSS_"):
            algo = HASHES[mech[4:]]
            rsa_pub.verify(sig, MSG, _pss(int(rest.split("/")[-1]), algo), algo)
        else:
            raise AssertionError(name)
        if mech.startswith(("RSA", "PSS")):
            assert len(sig) == 256
        checked += 1
    assert checked == 30
    # a tampered signature fails on the host: the checks above are real
    with pytest.raises(InvalidSignature):
        bad = bytearray(bytes.fromhex(res["RSA_PKCS_sha256"]))
        bad[5] ^= 1
        rsa_pub.verify(bytes(bad), MSG, padding.PKCS1v15(), hashes.SHA256())


def test_token_verifies_host_signatures(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    ec_key = token_keys.private(token_keys.ec_pkcs8)
    rsa_key = token_keys.private(token_keys.rsa_pkcs1)
    r, s = utils.decode_dss_signature(ec_key.sign(MSG, ec.ECDSA(hashes.SHA256())))
    ec_sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    pkcs1 = rsa_key.sign(MSG, padding.PKCS1v15(), hashes.SHA256())
    pss = rsa_key.sign(MSG, _pss(32, hashes.SHA256()), hashes.SHA256())
    code = P11_PRELUDE + f"""
with pkcs11.open_session() as s:
    ec = s.import_pem(open("ec_pkcs8.pem", "rb").read(), label="ec", public_label="ec pub")
    rsa = s.import_pem(open("rsa_pkcs1.pem", "rb").read(), label="rsa", public_label="rsa pub")
    ecp = s.get_key(object_class=CKO_PUBLIC_KEY, label="ec pub")
    rsap = s.get_key(object_class=CKO_PUBLIC_KEY, label="rsa pub")
    M = {MSG!r}
    pss = (CKM_SHA256_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA256, 32))
    R = {{"ec": ecp.verify(M, {ec_sig!r}), "ec_other_data": ecp.verify(M + b"!", {ec_sig!r}),
         "pkcs1": rsap.verify(M, {pkcs1!r}, CKM_SHA256_RSA_PKCS),
         "pkcs1_as_pss": rsap.verify(M, {pkcs1!r}, *pss),
         "pss": rsap.verify(M, {pss!r}, *pss),
         "pss_wrong_salt": rsap.verify(M, {pss!r}, CKM_SHA256_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA256, 20)),
         "ec_point": len(ecp[CKA_EC_POINT]), "ec_point_matches": ecp[CKA_EC_POINT] == ec[CKA_EC_POINT],
         "modulus_bits": rsap[CKA_MODULUS_BITS]}}
print(json.dumps(R))
"""
    res = last_json(unix_fw.run(code))
    assert res == {"ec": True, "ec_other_data": False, "pkcs1": True, "pkcs1_as_pss": False, "pss": True,
                   "pss_wrong_salt": False, "ec_point": 67, "ec_point_matches": True, "modulus_bits": 2048}


def test_ec_point_and_params_encodings(unix_fw, token_keys: TokenKeys) -> None:
    """CKA_EC_PARAMS is the 10-byte P-256 OID, CKA_EC_POINT the 67-byte DER
    OCTET STRING around the uncompressed point (FreeRTOS test suite)."""
    token_keys.copy_to(unix_fw.work_dir)
    res = last_json(unix_fw.run(P11_PRELUDE + """
import binascii
with pkcs11.open_session() as s:
    k = s.import_pem(open("ec_sec1.pem", "rb").read(), public_label=pkcs11.LABEL_DEVICE_PUBLIC_KEY)
    pub = s.get_key(object_class=CKO_PUBLIC_KEY, label=pkcs11.LABEL_DEVICE_PUBLIC_KEY)
    print(json.dumps({"params": binascii.hexlify(pub[CKA_EC_PARAMS]).decode(),
                      "point": binascii.hexlify(pub[CKA_EC_POINT]).decode()}))
"""))
    from cryptography.hazmat.primitives import serialization
    q = token_keys.private(token_keys.ec_sec1).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert res["params"] == "06082a8648ce3d030107"
    assert res["point"] == "0441" + q.hex()
