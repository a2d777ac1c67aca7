"""_pkcs11 on the emulated Cortex-M3: the same answers as on the host.

p256-m takes a different code path here (Thumb-2 inline assembly with 16x16-bit
multiplies, since the M3 has no constant-time 32x32 multiply) and mbedTLS's
bignum runs on 32-bit limbs, so results are checked against the host again.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from test_cmodule_ec import N, host_point, host_verify
from test_cmodule_parse import _cert_expect, expected_private, load_key
from test_cmodule_rsa import SHA256_PREFIX, host_key, key_tuple

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def test_ec_rsa_hash_and_parsing_on_the_board(cmodule, qemu_board):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    d = ec_key.private_numbers().private_value.to_bytes(32, "big")
    q = host_point(ec_key)
    msg = os.urandom(77)
    digests = [hashlib.sha1(msg).digest(), hashlib.sha256(msg).digest(),
               hashlib.sha384(msg).digest(), hashlib.sha512(msg).digest()]
    r, s = decode_dss_signature(ec_key.sign(digests[1], ec.ECDSA(Prehashed(hashes.SHA256()))))
    host_sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    rsa_key = host_key()
    info = SHA256_PREFIX + hashlib.sha256(msg).digest()

    o = cmodule.openssl
    o("ecparam", "-name", "prime256v1", "-genkey", "-out", "q_ec.pem")
    o("genrsa", "-traditional", "-out", "q_rsa.pem", "1024")
    o("req", "-x509", "-new", "-key", "q_ec.pem", "-subj", "/O=qemu/CN=board",
      "-set_serial", "0x80ff", "-days", "9", "-out", "q_cert.pem")

    out = cmodule.run_on_board(qemu_board, f"""
        d, q = x({d.hex()!r}), x({q.hex()!r})
        digests = [x(h) for h in {[g.hex() for g in digests]!r}]
        key = [x(h) for h in {key_tuple(rsa_key)!r}]
        gd, gq = P.ec_generate()
        out = {{
            'gen': [gd, gq, P.ec_public(gd), P.ec_check_point(gq)],
            'edge': [P.ec_public(x('{1:064x}')), P.ec_public(x('{N - 1:064x}'))],
            'pub': P.ec_public(d),
            'sigs': [P.ec_sign(d, g) for g in digests],
            'host_sig': [P.ec_verify(q, digests[1], x({host_sig.hex()!r})),
                         P.ec_verify(q, digests[0], x({host_sig.hex()!r}))],
            'bad_d': call(P.ec_sign, x('{N:064x}'), digests[1]),
            'pkcs1': P.rsa_sign_pkcs1(key, x({info.hex()!r})),
            'pss': P.rsa_sign_pss(key, digests[2], 'sha384', 48),
            'hashes': [],
            'ec_file': P.parse_private_key(rd('q_ec.pem')),
            'rsa_file': P.parse_private_key(rd('q_rsa.pem')),
            'cert': P.parse_certificate(rd('q_cert.pem')),
        }}
        for name in ('sha1', 'sha256', 'sha384', 'sha512'):
            h = P.hash_new(name)
            h.update(x({msg.hex()!r}))
            out['hashes'].append(h.digest())
    """, files=("q_ec.pem", "q_rsa.pem", "q_cert.pem"))

    gd, gq, gq_again, on_curve = out["gen"]
    assert gq == gq_again and on_curve is True
    assert host_point(ec.derive_private_key(int.from_bytes(gd, "big"), ec.SECP256R1())) == gq
    assert out["edge"] == [host_point(ec.derive_private_key(1, ec.SECP256R1())),
                           host_point(ec.derive_private_key(N - 1, ec.SECP256R1()))]
    assert out["pub"] == q
    for digest, sig in zip(digests, out["sigs"]):
        assert host_verify(q, digest, sig), len(digest)
    assert out["host_sig"] == [True, False]
    assert out["bad_d"]["error"] == "ValueError"
    assert out["pkcs1"] == rsa_key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    rsa_key.public_key().verify(out["pss"], digests[2], padding.PSS(padding.MGF1(hashes.SHA384()), 48),
                                Prehashed(hashes.SHA384()))
    assert out["hashes"] == [hashlib.new(n, msg).digest() for n in ("sha1", "sha256", "sha384", "sha512")]
    assert out["ec_file"] == expected_private(load_key(cmodule.work_dir / "q_ec.pem"))
    assert out["rsa_file"] == expected_private(load_key(cmodule.work_dir / "q_rsa.pem"))
    assert out["cert"] == _cert_expect(cmodule.work_dir / "q_cert.pem")
    assert out["cert"]["serial"] == b"\x02\x03\x00\x80\xff"


def test_random_bytes_differ_between_boots(cmodule, qemu_board):
    # Seeded from the host's entropy through semihosting, not a fixed seed.
    first = cmodule.run_on_board(qemu_board, "out = P.random_bytes(32)")
    qemu_board.restart()
    second = cmodule.run_on_board(qemu_board, "out = P.random_bytes(32)")
    assert len(first) == 32 and first != second


def test_soft_reset_after_seeding_the_drbg_keeps_the_heap_intact(qemu_board):
    """Regression: the DRBG's entropy context used to live in a C static with its hash
    state on the MicroPython heap; after a soft reset (every `mpremote exec`) mbedTLS's
    tracked-allocation list pointed into the wiped heap and corrupted new objects."""
    assert len(qemu_board.exec("import _pkcs11\nprint(_pkcs11.random_bytes(8).hex())").strip()) == 16
    out = qemu_board.exec("""
import _pkcs11
objs = [[i, str(i)] for i in range(1500)]
n = b'\\xc1' + b'\\x11' * 254 + b'\\x01'
for _ in range(20):
    _pkcs11.rsa_verify_pkcs1(n, b'\\x01\\x00\\x01', b'x' * 51, b'\\x02' * 256)
    _pkcs11.random_bytes(32)
print('intact', all(o == [i, str(i)] for i, o in enumerate(objs)))
""", timeout=60)
    assert out.strip() == "intact True"
