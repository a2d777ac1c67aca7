"""_pkcs11 ECDSA P-256 (p256-m) on the unix firmware, checked against the host's `cryptography`."""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness.cmodule import is_error

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
HASH_FOR_LEN = {20: hashes.SHA1(), 32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}


def host_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def host_verify(q: bytes, digest: bytes, sig: bytes) -> bool:
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), q)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        pub.verify(der, digest, ec.ECDSA(Prehashed(HASH_FOR_LEN[len(digest)])))
    except InvalidSignature:
        return False
    return True


def test_generated_keys_are_valid_and_distinct(cmodule):
    out = cmodule.run("""
        keys = [P.ec_generate() for i in range(4)]
        out = [[d, q, P.ec_public(d), P.ec_check_point(q)] for d, q in keys]
    """)
    seen = set()
    for d, q, q_again, on_curve in out:
        assert len(d) == 32 and len(q) == 65 and q[0] == 4
        assert 1 <= int.from_bytes(d, "big") < N
        assert q_again == q and on_curve is True
        assert host_point(ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())) == q
        seen.add(d)
    assert len(seen) == 4


def test_public_from_private_matches_host_including_edge_scalars(cmodule):
    scalars = [1, 2, N - 1, int.from_bytes(os.urandom(32), "big") % (N - 1) + 1]
    ds = [s.to_bytes(32, "big") for s in scalars]
    out = cmodule.run(f"out = [P.ec_public(x(h)) for h in {[d.hex() for d in ds]!r}]")
    for s, q in zip(scalars, out):
        assert q == host_point(ec.derive_private_key(s, ec.SECP256R1()))


def test_signatures_verify_on_host_for_every_digest_length(cmodule):
    key = ec.generate_private_key(ec.SECP256R1())
    d = key.private_numbers().private_value.to_bytes(32, "big")
    msg = os.urandom(100)
    digests = [hashlib.sha1(msg).digest(), hashlib.sha256(msg).digest(),
               hashlib.sha384(msg).digest(), hashlib.sha512(msg).digest()]
    out = cmodule.run(f"""
        d = x({d.hex()!r})
        out = [P.ec_sign(d, x(h)) for h in {[g.hex() for g in digests]!r}]
    """)
    q = host_point(key)
    for digest, sig in zip(digests, out):
        assert len(sig) == 64
        assert host_verify(q, digest, sig), f"host rejects the signature over a {len(digest)}-byte digest"
        assert not host_verify(q, bytes(len(digest)), sig)


def test_long_digests_are_truncated_to_256_bits(cmodule):
    # ECDSA uses the leftmost 256 bits: a 64-byte digest signs like its first 32 bytes.
    key = ec.generate_private_key(ec.SECP256R1())
    d = key.private_numbers().private_value.to_bytes(32, "big")
    digest = os.urandom(64)
    out = cmodule.run(f"""
        d = x({d.hex()!r}); q = P.ec_public(d); g = x({digest.hex()!r})
        s = P.ec_sign(d, g)
        out = [s, P.ec_verify(q, g[:32], s), P.ec_verify(q, g[:32] + bytes(32), s),
               P.ec_verify(q, g[32:], s)]
    """)
    sig, short_ok, padded_ok, other_half_ok = out
    assert short_ok is True and padded_ok is True and other_half_ok is False
    assert host_verify(host_point(key), digest[:32], sig)


def test_host_signatures_verify_in_c(cmodule):
    key = ec.generate_private_key(ec.SECP256R1())
    q = host_point(key)
    cases = []
    for algo in (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        h = hashes.Hash(algo)
        h.update(b"host message")
        digest = h.finalize()
        r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(algo))))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        bad = bytearray(sig)
        bad[10] ^= 1
        cases.append((digest, sig, bytes(bad)))
    out = cmodule.run(f"""
        q = x({q.hex()!r})
        out = []
        for g, s, b in {[(g.hex(), s.hex(), b.hex()) for g, s, b in cases]!r}:
            g, s, b = x(g), x(s), x(b)
            out.append([P.ec_verify(q, g, s), P.ec_verify(q, g, b), P.ec_verify(q, bytes(len(g)), s),
                        P.ec_verify(q, g, s[:63]), P.ec_verify(q, g, bytes(64)),
                        P.ec_verify(q, g, s[:32] + x('{N:064x}'))])
    """)
    for row in out:
        assert row == [True, False, False, False, False, False]


def test_bad_private_keys_and_digests_raise_value_error(cmodule):
    good = (12345).to_bytes(32, "big")
    out = cmodule.run(f"""
        g = bytes(32)
        good = x({good.hex()!r})
        out = [
            call(P.ec_public, bytes(32)),
            call(P.ec_public, x('{N:064x}')),
            call(P.ec_public, b'\\xff' * 32),
            call(P.ec_public, good[1:]),
            call(P.ec_sign, bytes(32), g),
            call(P.ec_sign, x('{N:064x}'), g),
            call(P.ec_sign, good + b'\\x00', g),
            call(P.ec_sign, good, bytes(19)),
            call(P.ec_sign, good, bytes(65)),
            call(P.ec_sign, good, bytes(20)),
            call(P.ec_sign, good, bytes(64)),
        ]
    """)
    for result in out[:9]:
        assert is_error(result), result
    assert "d" in out[0]["msg"] and "range" in out[0]["msg"]
    assert "20..64" in out[7]["msg"]
    assert len(out[9]) == 64 and len(out[10]) == 64
    # The messages never quote the key.
    for result in out[:9]:
        assert good.hex() not in result["msg"] and "12345" not in result["msg"]


def test_points_are_checked(cmodule):
    key = ec.generate_private_key(ec.SECP256R1())
    q = host_point(key)
    off_curve = q[:-1] + bytes([q[-1] ^ 1])
    compressed = key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    p = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
    big_x = b"\x04" + p.to_bytes(32, "big") + q[33:]
    points = [q, off_curve, compressed, b"\x05" + q[1:], q[:64], big_x, b"\x04" + bytes(64)]
    out = cmodule.run(f"""
        pts = [x(h) for h in {[t.hex() for t in points]!r}]
        out = [[P.ec_check_point(t) for t in pts],
               [call(P.ec_verify, t, bytes(32), bytes(64)) for t in pts[1:]]]
    """)
    checks, verifies = out
    assert checks == [True, False, False, False, False, False, False]
    for result in verifies:
        assert is_error(result), result
