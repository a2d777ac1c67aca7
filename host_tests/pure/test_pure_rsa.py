"""pkcs11.pure.backend on the unix firmware: RSA PKCS#1 v1.5 and PSS signatures,
cross-checked against the host `cryptography` package."""

from __future__ import annotations

import hashlib

import pytest
from harness.device_json import run_json, snippet
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

ALGS = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512()}


def fw(unix_fw, code: str, **kw):
    """Run code after the pure-backend prelude; its last output line is JSON."""
    return run_json(unix_fw, code, prelude=snippet("pure_prelude"), **kw)


def b(i: int) -> bytes:
    return i.to_bytes(max(1, (i.bit_length() + 7) // 8), "big")


def key_tuple_src(key: rsa.RSAPrivateKey) -> str:
    """MicroPython source for the contract's (n, e, d, p, q, dp, dq, qinv) tuple."""
    pn = key.private_numbers()
    parts = [pn.public_numbers.n, pn.public_numbers.e, pn.d, pn.p, pn.q, pn.dmp1, pn.dmq1,
             pn.iqmp]
    return "(" + ", ".join(f"H('{b(x).hex()}')" for x in parts) + ")"


def pub_src(key: rsa.RSAPrivateKey) -> str:
    n = key.public_key().public_numbers()
    return f"H('{b(n.n).hex()}'), H('{b(n.e).hex()}')"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_pkcs1_signatures_verify_on_host(unix_fw, rsa_key):
    digests = {name: hashlib.new(name, b"pkcs1 " + name.encode()).digest() for name in ALGS}
    res = fw(unix_fw, f"""
        key = {key_tuple_src(rsa_key)}
        out = {{}}
        for name, d in {[(k, v.hex()) for k, v in digests.items()]!r}:
            # the firmware's own DigestInfo helper builds the input
            out[name] = b.rsa_sign_pkcs1(key, asn1.digest_info(name, H(d))).hex()
        out['raw'] = b.rsa_sign_pkcs1(key, b'short raw data').hex()
        print(json.dumps(out))
    """)
    pub = rsa_key.public_key()
    for name, digest in digests.items():
        sig = bytes.fromhex(res[name])
        assert len(sig) == 256
        pub.verify(sig, digest, padding.PKCS1v15(), Prehashed(ALGS[name]))
    # PKCS#1 v1.5 signing is deterministic: the host's signature is identical
    assert bytes.fromhex(res["sha256"]) == rsa_key.sign(
        digests["sha256"], padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    # data that is not a DigestInfo is padded as is (CKM_RSA_PKCS semantics)
    m = pow(int(res["raw"], 16), 65537, pub.public_numbers().n).to_bytes(256, "big")
    assert m == b"\x00\x01" + b"\xff" * (256 - 3 - 14) + b"\x00" + b"short raw data"


@pytest.mark.parametrize("name,salt", [("sha256", 0), ("sha256", 32), ("sha1", 20),
                                       ("sha384", 48), ("sha512", 64), ("sha512", 0)])
def test_pss_signatures_verify_on_host(unix_fw, rsa_key, name, salt):
    digest = hashlib.new(name, b"pss message").digest()
    res = fw(unix_fw, f"""
        key = {key_tuple_src(rsa_key)}
        print(json.dumps([b.rsa_sign_pss(key, H('{digest.hex()}'), '{name}', {salt}).hex()
                          for _ in range(2)]))
    """)
    pub = rsa_key.public_key()
    for sig in res:
        pub.verify(bytes.fromhex(sig), digest,
                   padding.PSS(mgf=padding.MGF1(ALGS[name]), salt_length=salt),
                   Prehashed(ALGS[name]))
    # a random salt makes each signature different; without salt PSS is deterministic
    assert (res[0] != res[1]) == (salt > 0)
    if salt:
        with pytest.raises(InvalidSignature):
            pub.verify(bytes.fromhex(res[0]), digest,
                       padding.PSS(mgf=padding.MGF1(ALGS[name]), salt_length=salt - 1),
                       Prehashed(ALGS[name]))


def test_host_signatures_verify_on_firmware(unix_fw, rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = []
    for name, alg in ALGS.items():
        digest = hashlib.new(name, b"host " + name.encode()).digest()
        cases.append(("pkcs1", name, 0, digest,
                      rsa_key.sign(digest, padding.PKCS1v15(), Prehashed(alg))))
        for salt in (0, 32):
            cases.append(("pss", name, salt, digest, rsa_key.sign(
                digest, padding.PSS(mgf=padding.MGF1(alg), salt_length=salt), Prehashed(alg))))
    rows = [(kind, name, salt, d.hex(), s.hex()) for kind, name, salt, d, s in cases]
    res = fw(unix_fw, f"""
        n, e = {pub_src(rsa_key)}
        n2, e2 = {pub_src(other)}
        def check(n, e, kind, name, salt, d, s):
            if kind == 'pkcs1':
                return b.rsa_verify_pkcs1(n, e, asn1.digest_info(name, d), s)
            return b.rsa_verify_pss(n, e, d, name, salt, s)
        out = []
        for kind, name, salt, d, s in {rows!r}:
            d, s = H(d), H(s)
            bad_d = bytes([d[0] ^ 1]) + d[1:]
            bad_s = s[:100] + bytes([s[100] ^ 4]) + s[100:][1:]
            out.append([check(n, e, kind, name, salt, d, s),
                        check(n, e, kind, name, salt, bad_d, s),
                        check(n, e, kind, name, salt, d, bad_s),
                        check(n, e, kind, name, salt, d, s[1:]),
                        check(n2, e2, kind, name, salt, d, s),
                        kind == 'pss' and check(n, e, kind, name, 20 if salt == 32 else 32, d, s)])
        print(json.dumps(out))
    """)
    assert res == [[True, False, False, False, False, False]] * len(cases)


def test_signature_not_below_modulus_is_rejected(unix_fw, rsa_key):
    n = rsa_key.public_key().public_numbers().n
    digest = hashlib.sha256(b"x").digest()
    sig = rsa_key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    # values >= n are not valid signature representatives, even when congruent
    bad = [n.to_bytes(256, "big"), b"\xff" * 256]
    if int.from_bytes(sig, "big") + n < 2**2048:
        bad.append((int.from_bytes(sig, "big") + n).to_bytes(256, "big"))
    res = fw(unix_fw, f"""
        n, e = {pub_src(rsa_key)}
        di = asn1.digest_info('sha256', H('{digest.hex()}'))
        print(json.dumps([b.rsa_verify_pkcs1(n, e, di, H(s))
                          for s in {[sig.hex()] + [x.hex() for x in bad]!r}]))
    """)
    assert res == [True] + [False] * len(bad)


def test_rsa_errors(unix_fw, rsa_key):
    pn = rsa_key.private_numbers()
    secret_hex = b(pn.p).hex()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    res = fw(unix_fw, f"""
        key = {key_tuple_src(rsa_key)}
        bad = key[:3] + (H('{b(other.p).hex()}'),) + key[4:]
        print(json.dumps([
            err(b.rsa_sign_pkcs1, key, bytes(246)),
            err(b.rsa_sign_pss, key, bytes(32), 'sha256', 300),
            err(b.rsa_sign_pss, key, bytes(31), 'sha256', 32),
            err(b.rsa_sign_pss, key, bytes(16), 'md5', 0),
            err(b.rsa_sign_pkcs1, bad, bytes(51)),
            err(b.rsa_sign_pkcs1, key[:7], bytes(51)),
            err(b.rsa_sign_pkcs1, key, bytes(245)),
        ]))
    """)
    assert all(r and r.startswith("ValueError: ") for r in res[:6]), res
    assert "too long" in res[0] and "salt" in res[1] and "length" in res[2]
    assert "inconsistent" in res[4]
    assert res[6] is None  # k - 11 bytes is the limit and is accepted
    text = " ".join(r for r in res if r)
    assert secret_hex[:16] not in text and b(pn.d).hex()[:16] not in text


def test_key_without_crt_values_still_signs(unix_fw, rsa_key):
    # empty dp/dq/qinv are derived from d, p and q (keys imported from bare attributes)
    digest = hashlib.sha256(b"crt").digest()
    res = fw(unix_fw, f"""
        key = {key_tuple_src(rsa_key)}
        key = key[:5] + (b'', b'', b'')
        print(json.dumps(b.rsa_sign_pkcs1(key, asn1.digest_info('sha256', H('{digest.hex()}'))).hex()))
    """)
    rsa_key.public_key().verify(bytes.fromhex(res), digest, padding.PKCS1v15(),
                                Prehashed(hashes.SHA256()))
