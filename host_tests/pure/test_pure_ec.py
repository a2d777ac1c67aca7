"""pkcs11.pure.backend on the unix firmware: P-256 ECDSA, hashes, randomness and the
asn1 helpers, cross-checked against the host `cryptography` package."""

from __future__ import annotations

import hashlib

from harness.device_json import run_json, snippet
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed, decode_dss_signature, encode_dss_signature)
from cryptography.x509.oid import NameOID

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
HASHES = {20: hashes.SHA1(), 32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}



def fw(unix_fw, code: str, **kw):
    """Run code after the pure-backend prelude; its last output line is JSON."""
    return run_json(unix_fw, code, prelude=snippet("pure_prelude"), **kw)


def point(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    n = pub.public_numbers()
    return b"\x04" + n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")


def raw_to_der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def der_to_raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_rfc6979_p256_sha256_vectors(unix_fw):
    # RFC 6979 appendix A.2.5: deterministic nonces give the published signatures.
    d = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"
    res = fw(unix_fw, f"""
        d = H('{d}')
        print(json.dumps([b.ec_public(d).hex(),
                          b.ec_sign(d, H('{hashlib.sha256(b"sample").hexdigest()}')).hex(),
                          b.ec_sign(d, H('{hashlib.sha256(b"test").hexdigest()}')).hex()]))
    """)
    assert res[0] == ("04" "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
                      "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299").lower()
    assert res[1] == ("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                      "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8").lower()
    assert res[2] == ("F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367"
                      "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083").lower()


def test_keygen_gives_matching_public_point(unix_fw):
    res = fw(unix_fw, """
        out = []
        for i in range(3):
            d, q = b.ec_generate()
            out.append([d.hex(), q.hex()])
        print(json.dumps(out))
    """)
    ds = set()
    for d_hex, q_hex in res:
        d = int(d_hex, 16)
        assert len(d_hex) == 64 and 1 <= d < N
        assert bytes.fromhex(q_hex) == point(ec.derive_private_key(d, ec.SECP256R1()))
        ds.add(d)
    assert len(ds) == 3


def test_public_from_private_matches_host(unix_fw):
    scalars = [1, 2, 3, N - 1, N - 2, 2**255 + 12345] + \
        [ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value for _ in range(4)]
    hexes = [s.to_bytes(32, "big").hex() for s in scalars]
    res = fw(unix_fw, f"""
        print(json.dumps([b.ec_public(H(x)).hex() for x in {hexes!r}]))
    """)
    for s, q in zip(scalars, res):
        assert bytes.fromhex(q) == point(ec.derive_private_key(s, ec.SECP256R1()))


def test_firmware_signatures_verify_on_host(unix_fw):
    key = ec.generate_private_key(ec.SECP256R1())
    d = key.private_numbers().private_value.to_bytes(32, "big").hex()
    digests = [hashlib.new(h, b"message %d" % i).hexdigest()
               for i, h in enumerate(["sha1", "sha256", "sha384", "sha512", "sha256"])]
    res = fw(unix_fw, f"""
        d = H('{d}')
        sigs = [b.ec_sign(d, H(x)).hex() for x in {digests!r}]
        print(json.dumps([sigs, b.ec_sign(d, H('{digests[1]}')).hex()]))
    """)
    sigs, again = res
    pub = key.public_key()
    for dg, sig in zip(digests, sigs):
        raw = bytes.fromhex(sig)
        assert len(raw) == 64
        digest = bytes.fromhex(dg)
        pub.verify(raw_to_der(raw), digest, ec.ECDSA(Prehashed(HASHES[len(digest)])))
    # deterministic nonces (RFC 6979): the same digest gives the same signature,
    # different digests give different r values
    assert again == sigs[1]
    assert len({s[:64] for s in sigs[:4]}) == 4


def test_host_signatures_verify_on_firmware(unix_fw):
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    cases = []
    for n, alg in HASHES.items():
        digest = hashlib.new(alg.name, b"data for %d" % n).digest()
        sig = der_to_raw(key.sign(digest, ec.ECDSA(Prehashed(alg))))
        bad_digest = bytes([digest[0] ^ 1]) + digest[1:]
        bad_sig = sig[:40] + bytes([sig[40] ^ 0x80]) + sig[41:]
        cases += [(digest, sig, True), (bad_digest, sig, False), (digest, bad_sig, False)]
    digest = hashlib.sha256(b"x").digest()
    good = der_to_raw(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    zero_r = bytes(32) + good[32:]
    s_is_n = good[:32] + N.to_bytes(32, "big")
    cases += [(digest, zero_r, False), (digest, s_is_n, False), (digest, good[:63], False)]
    q, q2 = point(key).hex(), point(other).hex()
    res = fw(unix_fw, f"""
        cases = {[(d.hex(), s.hex()) for d, s, _ in cases]!r}
        out = [b.ec_verify(H('{q}'), H(d), H(s)) for d, s in cases]
        out.append(b.ec_verify(H('{q2}'), H(cases[0][0]), H(cases[0][1])))
        print(json.dumps(out))
    """)
    assert res == [ok for _, _, ok in cases] + [False]


def test_check_point(unix_fw):
    q = point(ec.generate_private_key(ec.SECP256R1()))
    x, y = int.from_bytes(q[1:33], "big"), int.from_bytes(q[33:], "big")
    off_curve = b"\x04" + q[1:33] + ((y + 1) % P).to_bytes(32, "big")
    x_too_big = b"\x04" + (x + P).to_bytes(33, "big")[1:] + q[33:] if x + P < 2**256 else None
    negated = b"\x04" + q[1:33] + (P - y).to_bytes(32, "big")
    compressed = bytes([2 + (y & 1)]) + q[1:33]
    candidates = [q, negated, off_curve, q[:64], b"\x02" + q[1:], compressed, b"\x00", bytes(65)]
    expected = [True, True, False, False, False, False, False, False]
    if x_too_big:
        candidates.append(x_too_big)
        expected.append(False)
    res = fw(unix_fw, f"""
        print(json.dumps([b.ec_check_point(H(c)) for c in {[c.hex() for c in candidates]!r}]))
    """)
    assert res == expected


def test_ec_errors_are_value_errors_without_key_bytes(unix_fw):
    d = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    dh = d.to_bytes(32, "big").hex()
    q = point(ec.derive_private_key(d, ec.SECP256R1()))
    off = q[:64] + bytes([q[64] ^ 1])
    res = fw(unix_fw, f"""
        d = H('{dh}')
        print(json.dumps([
            err(b.ec_public, bytes(32)),
            err(b.ec_public, H('{N.to_bytes(32, "big").hex()}')),
            err(b.ec_public, d[:31]),
            err(b.ec_sign, d, bytes(19)),
            err(b.ec_sign, d, bytes(65)),
            err(b.ec_sign, bytes(32), bytes(32)),
            err(b.ec_verify, H('{off.hex()}'), bytes(32), bytes(64)),
            err(b.ec_verify, H('{q.hex()}'), bytes(10), bytes(64)),
        ]))
    """)
    assert all(r and r.startswith("ValueError: ") for r in res), res
    text = " ".join(res).lower()
    assert dh not in text and dh[:16] not in text
    assert "range" in res[0] and "32 bytes" in res[2] and "digest" in res[3]
    assert "curve" in res[6]


def test_hashes_match_host(unix_fw):
    # lengths around the padding boundaries of 64- and 128-byte blocks
    lengths = [0, 3, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 300]
    res = fw(unix_fw, f"""
        out = {{}}
        for name in ('sha1', 'sha256', 'sha384', 'sha512'):
            r = []
            for n in {lengths!r}:
                data = bytes((i * 7 + n) & 255 for i in range(n))
                h = b.hash_new(name)
                h.update(data[:n // 3])
                h.update(data[n // 3:])
                r.append(h.digest().hex())
            out[name] = r
        out['bad'] = err(b.hash_new, 'md5')
        print(json.dumps(out))
    """)
    for name in ("sha1", "sha256", "sha384", "sha512"):
        want = [hashlib.new(name, bytes((i * 7 + n) & 255 for i in range(n))).hexdigest()
                for n in lengths]
        assert res[name] == want, name
    assert res["bad"] and "md5" in res["bad"]


def test_pure_sha_fallbacks_used_without_hashlib_support(unix_fw):
    # the unix firmware has hashlib.sha1; ports without TLS do not, so the pure
    # SHA-1 must be right on its own (sha384/512 are always pure)
    res = fw(unix_fw, """
        from pkcs11.pure import sha2
        h = sha2._SHA1()
        h.update(b'abc')
        a = h.digest().hex()
        h.update(b'def')
        print(json.dumps([a, h.digest().hex(), sha2._SHA1(b'x' * 1000).digest().hex()]))
    """)
    assert res == [hashlib.sha1(b"abc").hexdigest(), hashlib.sha1(b"abcdef").hexdigest(),
                   hashlib.sha1(b"x" * 1000).hexdigest()]


def test_random_bytes(unix_fw):
    res = fw(unix_fw, """
        a = b.random_bytes(32)
        c = b.random_bytes(32)
        print(json.dumps([len(b.random_bytes(0)), len(b.random_bytes(1)),
                          len(b.random_bytes(1000)), a.hex(), c.hex(),
                          err(b.random_bytes, -1)]))
    """)
    assert res[:3] == [0, 1, 1000]
    assert res[3] != res[4]
    assert res[5] is not None


def test_ecdsa_signature_format_helpers(unix_fw):
    key = ec.generate_private_key(ec.SECP256R1())
    # raw signatures with high bits set, leading zero bytes and tiny values
    raws = [bytes([0x80 + i]) + bytes(range(31)) + bytes([0xFF]) * 32 for i in range(2)]
    raws += [bytes(31) + b"\x01" + bytes(30) + b"\x7f\xff",
             bytes([0, 0, 0x80]) + bytes(29) + bytes([0x00, 0x7F]) + bytes(30)]
    raws += [der_to_raw(key.sign(b"m%d" % i, ec.ECDSA(hashes.SHA256()))) for i in range(3)]
    ders = [raw_to_der(r) for r in raws]
    res = fw(unix_fw, f"""
        raws = {[r.hex() for r in raws]!r}
        ders = {[d.hex() for d in ders]!r}
        print(json.dumps([[asn1.ecdsa_raw_to_der(H(r)).hex() for r in raws],
                          [asn1.ecdsa_der_to_raw(H(d)).hex() for d in ders],
                          err(asn1.ecdsa_der_to_raw, H(ders[0]) + b'\\x00'),
                          err(asn1.ecdsa_der_to_raw, b'\\x30\\x03\\x02\\x01'),
                          err(asn1.ecdsa_raw_to_der, b'\\x01\\x02\\x03')]))
    """)
    assert res[0] == [d.hex() for d in ders]
    assert res[1] == [r.hex() for r in raws]
    assert all(e and e.startswith("ValueError") for e in res[2:])


def test_asn1_writer_matches_host_encodings(unix_fw):
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Ünïcode"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "thing-1")])
    ints = [0, 1, 127, 128, 255, 256, 2**64, 2**2047 + 5]
    res = fw(unix_fw, f"""
        print(json.dumps([
            asn1.name([('C', 'DE'), ('O', 'Acme Ünïcode'), ('CN', 'thing-1')]).hex(),
            [asn1.integer(i).hex() for i in {ints!r}],
            asn1.integer(b'\\x00\\x00\\x80').hex(),
            asn1.oid('1.2.840.10045.3.1.7') == __import__('pkcs11.objects').objects.P256_PARAMS,
            asn1.oid_str(asn1.OID_RSA_PSS),
            asn1.oid('2.5.29.17').hex(),
        ]))
    """)
    assert bytes.fromhex(res[0]) == name.public_bytes()
    for i, h in zip(ints, res[1]):
        der = bytes.fromhex(h)
        assert der[0] == 2
        body = der[2:] if der[1] < 0x80 else der[2 + (der[1] & 0x7F):]
        assert int.from_bytes(body, "big") == i
        assert body[0] < 0x80 and (len(body) == 1 or body[0] or body[1] >= 0x80)
    assert res[2] == "02020080"
    assert res[3] is True
    assert res[4] == "1.2.840.113549.1.1.10"
    assert res[5] == "0603551d11"


def test_pem_roundtrip_with_host(unix_fw):
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    res = fw(unix_fw, f"""
        pem = asn1.pem_encode(H('{der.hex()}'), 'PUBLIC KEY')
        print(json.dumps([pem, asn1.pem_decode({pem.decode()!r}).hex(),
                          err(asn1.pem_decode, 'no pem here'),
                          err(asn1.pem_decode, '-----BEGIN X-----\\nAAAA\\n')]))
    """)
    assert res[0].encode() == pem
    assert bytes.fromhex(res[1]) == der
    assert res[2] and res[3] and "END" in res[3]


def test_sign_and_verify_fit_in_a_small_heap(unix_fw):
    # A P-256 sign and verify must work in a heap far smaller than the qemu board's
    # (~137 KB); 40 KB here includes the interpreter's own needs and the imports.
    key = ec.generate_private_key(ec.SECP256R1())
    d = key.private_numbers().private_value.to_bytes(32, "big").hex()
    res = fw(unix_fw, f"""
        import gc
        d = H('{d}')
        q = b.ec_public(d)
        s = b.ec_sign(d, bytes(32))
        print(json.dumps([s.hex(), b.ec_verify(q, bytes(32), s)]))
    """, heap="40k")
    key.public_key().verify(raw_to_der(bytes.fromhex(res[0])), bytes(32),
                            ec.ECDSA(Prehashed(hashes.SHA256())))
    assert res[1] is True

