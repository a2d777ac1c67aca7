"""_pkcs11 RSA PKCS#1 v1.5 and PSS on the unix firmware, checked against the host's `cryptography`."""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import lru_cache

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from harness.cmodule import is_error

# DER DigestInfo prefix for SHA-256 (RFC 8017 9.2, note 1).
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
HASHES = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
          "sha512": hashes.SHA512()}


@lru_cache(maxsize=None)
def host_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@lru_cache(maxsize=None)
def key_2049() -> rsa.RSAPrivateKey:
    """A key whose modulus has 2049 bits (OpenSSL's generator rounds odd sizes down).
    `openssl prime -generate` sets the top two bits, so 1025 x 1024 bits gives 2049."""
    p, q = (int(subprocess.run(["openssl", "prime", "-generate", "-bits", str(bits)],
                               capture_output=True, text=True, check=True).stdout)
            for bits in (1025, 1024))
    assert (p * q).bit_length() == 2049
    e = 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key()


def b(i: int) -> bytes:
    return i.to_bytes((i.bit_length() + 7) // 8 or 1, "big")


def key_tuple(key: rsa.RSAPrivateKey) -> list[str]:
    """(n, e, d, p, q, dp, dq, qinv) as hex, the contract's key form."""
    pn = key.private_numbers()
    pub = pn.public_numbers
    return [b(v).hex() for v in (pub.n, pub.e, pn.d, pn.p, pn.q, pn.dmp1, pn.dmq1, pn.iqmp)]


def k_of(key: rsa.RSAPrivateKey) -> int:
    return (key.key_size + 7) // 8


def test_pkcs1_signature_equals_the_hosts(cmodule):
    # PKCS#1 v1.5 is deterministic: the device's signature must be byte-identical.
    key = host_key()
    msgs = [os.urandom(n) for n in (0, 1, 100)]
    infos = [SHA256_PREFIX + hashlib.sha256(m).digest() for m in msgs]
    out = cmodule.run(f"""
        key = [x(h) for h in {key_tuple(key)!r}]
        out = [P.rsa_sign_pkcs1(key, x(i)) for i in {[i.hex() for i in infos]!r}]
    """)
    for m, sig in zip(msgs, out):
        assert len(sig) == 256
        assert sig == key.sign(m, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(sig, m, padding.PKCS1v15(), hashes.SHA256())


def test_pkcs1_raw_data_up_to_k_minus_11(cmodule):
    key = host_key()
    k = k_of(key)
    n, e = key.public_key().public_numbers().n, key.public_key().public_numbers().e
    longest = os.urandom(k - 11)
    out = cmodule.run(f"""
        key = [x(h) for h in {key_tuple(key)!r}]
        out = [call(P.rsa_sign_pkcs1, key, x({longest.hex()!r})),
               call(P.rsa_sign_pkcs1, key, bytes({k - 10})),
               call(P.rsa_sign_pkcs1, key, b''),
               call(P.rsa_sign_pkcs1, tuple(key), b'abc')]
    """)
    sig = out[0]
    em = pow(int.from_bytes(sig, "big"), e, n).to_bytes(k, "big")
    assert em == b"\x00\x01" + b"\xff" * 8 + b"\x00" + longest
    assert is_error(out[1]) and "too long" in out[1]["msg"]
    em_empty = pow(int.from_bytes(out[2], "big"), e, n).to_bytes(k, "big")
    assert em_empty == b"\x00\x01" + b"\xff" * (k - 3) + b"\x00"
    assert len(out[3]) == k


@pytest.mark.parametrize("name", ["sha1", "sha256", "sha384", "sha512"])
def test_pss_signatures_verify_on_host(cmodule, name):
    key = host_key()
    algo = HASHES[name]
    h = hashes.Hash(algo)
    h.update(b"pss message")
    mhash = h.finalize()
    hlen = len(mhash)
    k = k_of(key)
    salts = [0, hlen, k - hlen - 2]  # the last is the longest that fits
    out = cmodule.run(f"""
        key = [x(h) for h in {key_tuple(key)!r}]
        out = [P.rsa_sign_pss(key, x({mhash.hex()!r}), {name!r}, s) for s in {salts!r}]
        out.append(P.rsa_sign_pss(key, x({mhash.hex()!r}), {name!r}, {hlen}))
    """)
    pub = key.public_key()
    for salt, sig in zip(salts + [hlen], out):
        assert len(sig) == k
        pub.verify(sig, mhash, padding.PSS(padding.MGF1(algo), salt), Prehashed(algo))
        with pytest.raises(InvalidSignature):
            pub.verify(sig, bytes(hlen), padding.PSS(padding.MGF1(algo), salt), Prehashed(algo))
    assert out[1] != out[3], "PSS signatures with a salt must differ (random salt)"


def test_pss_with_modulus_bits_one_more_than_a_byte_multiple(cmodule):
    # 2049-bit modulus: EM is one byte shorter than the signature (RFC 8017 9.1.1).
    key = key_2049()
    k = k_of(key)
    assert k == 257
    mhash = hashlib.sha256(b"odd").digest()
    out = cmodule.run(f"""
        key = [x(h) for h in {key_tuple(key)!r}]
        n, e = key[0], key[1]
        s = P.rsa_sign_pss(key, x({mhash.hex()!r}), 'sha256', 32)
        m = P.rsa_sign_pss(key, x({mhash.hex()!r}), 'sha256', {k - 1 - 32 - 2})
        out = [s, m, call(P.rsa_sign_pss, key, x({mhash.hex()!r}), 'sha256', {k - 32 - 2}),
               P.rsa_verify_pss(n, e, x({mhash.hex()!r}), 'sha256', 32, s)]
    """)
    pub = key.public_key()
    pub.verify(out[0], mhash, padding.PSS(padding.MGF1(hashes.SHA256()), 32), Prehashed(hashes.SHA256()))
    pub.verify(out[1], mhash, padding.PSS(padding.MGF1(hashes.SHA256()), k - 35), Prehashed(hashes.SHA256()))
    assert is_error(out[2]) and "salt" in out[2]["msg"]
    assert out[3] is True


def test_host_signatures_verify_in_c(cmodule):
    key = host_key()
    pub = key.public_key().public_numbers()
    n, e = b(pub.n).hex(), b(pub.e).hex()
    msg = b"signed on the host"
    info = SHA256_PREFIX + hashlib.sha256(msg).digest()
    pkcs1 = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    pss = {}
    for name, algo in HASHES.items():
        h = hashes.Hash(algo)
        h.update(msg)
        mhash = h.finalize()
        sig = key.sign(mhash, padding.PSS(padding.MGF1(algo), len(mhash)), Prehashed(algo))
        pss[name] = (mhash.hex(), sig.hex(), len(mhash))
    out = cmodule.run(f"""
        n, e = x({n!r}), x({e!r})
        info, sig = x({info.hex()!r}), x({pkcs1.hex()!r})
        bad = bytearray(sig); bad[100] ^= 1; bad = bytes(bad)
        out = {{'pkcs1': [P.rsa_verify_pkcs1(n, e, info, sig), P.rsa_verify_pkcs1(n, e, info, bad),
                          P.rsa_verify_pkcs1(n, e, info[:-1] + bytes([info[-1] ^ 1]), sig),
                          P.rsa_verify_pkcs1(n, e, info, sig[1:]),
                          P.rsa_verify_pkcs1(n, e, info, b'\\xff' * 256),
                          P.rsa_verify_pkcs1(n, e, bytes(250), sig)]}}
        for name, (mh, s, hl) in {pss!r}.items():
            mh, s = x(mh), x(s)
            t = bytearray(s); t[5] ^= 0x40; t = bytes(t)
            out[name] = [P.rsa_verify_pss(n, e, mh, name, hl, s),
                         P.rsa_verify_pss(n, e, mh, name, hl, t),
                         P.rsa_verify_pss(n, e, bytes(hl), name, hl, s),
                         P.rsa_verify_pss(n, e, mh, name, 0, s),
                         P.rsa_verify_pss(n, e, mh, name, hl + 1, s),
                         P.rsa_verify_pss(n, e, mh, name, -1, s),
                         P.rsa_verify_pss(n, e, mh, name, hl, s[:-1])]
    """)
    assert out["pkcs1"] == [True, False, False, False, False, False]
    for name in HASHES:
        assert out[name] == [True, False, False, False, False, False, False], name


def test_pss_argument_errors(cmodule):
    key = host_key()
    k = k_of(key)
    out = cmodule.run(f"""
        key = [x(h) for h in {key_tuple(key)!r}]
        n, e = key[0], key[1]
        out = [call(P.rsa_sign_pss, key, bytes(31), 'sha256', 32),
               call(P.rsa_sign_pss, key, bytes(16), 'md5', 0),
               call(P.rsa_sign_pss, key, bytes(32), 'sha256', {k - 32 - 1}),
               call(P.rsa_sign_pss, key, bytes(32), 'sha256', -1),
               call(P.rsa_verify_pss, n, e, bytes(20), 'sha256', 32, bytes({k})),
               call(P.rsa_verify_pss, n, e, bytes(28), 'sha224', 28, bytes({k}))]
    """)
    for result in out:
        assert is_error(result), result
    assert "hash length" in out[0]["msg"]
    assert "md5" in out[1]["msg"]
    assert "salt" in out[2]["msg"] and "salt" in out[3]["msg"]


def test_inconsistent_or_malformed_keys_raise_value_error(cmodule):
    key = host_key()
    other = host_key(1024)
    t = key_tuple(key)
    wrong_d = list(t)
    wrong_d[2] = (b(int(t[2], 16) + 2)).hex()
    wrong_p = list(t)
    wrong_p[3] = key_tuple(other)[3]
    even_n = list(t)
    even_n[0] = b(int(t[0], 16) + 1).hex()
    out = cmodule.run(f"""
        def k(h): return [x(v) for v in h]
        info = bytes(51)
        out = [call(P.rsa_sign_pkcs1, k({wrong_d!r}), info),
               call(P.rsa_sign_pkcs1, k({wrong_p!r}), info),
               call(P.rsa_sign_pkcs1, k({even_n!r}), info),
               call(P.rsa_sign_pkcs1, k({t!r})[:7], info),
               call(P.rsa_sign_pss, k({wrong_d!r}), bytes(32), 'sha256', 32),
               call(P.rsa_verify_pkcs1, x({even_n[0]!r}), x({t[1]!r}), info, bytes(256))]
    """)
    for result in out:
        assert is_error(result), result
    secrets = [t[2], t[3], t[4], t[5], t[6], t[7]]
    for result in out:
        for s in secrets:
            assert s[:16] not in result["msg"].lower()
