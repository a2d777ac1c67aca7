"""The pure-Python backend (pkcs11.pure.backend) against the C module (_pkcs11) on the
same unix firmware: each verifies the other's signatures, deterministic outputs are
byte-identical, and both parse the same files into the same dicts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness.device_json import run_json
from cryptography.hazmat.primitives.asymmetric import rsa

PRE = """\
import json, _pkcs11 as C
from pkcs11.pure import backend as P
from pkcs11 import der as asn1
H = bytes.fromhex
def err(f, *a):
    try:
        f(*a)
    except ValueError:
        return 'ValueError'
    return 'no error'
def hx(d):
    if d is None:
        return None
    return {k: (v.hex() if isinstance(v, bytes) else hx(v) if isinstance(v, dict) else v)
            for k, v in d.items()}
"""


def fw(unix_fw, code: str, **kw):
    return run_json(unix_fw, code, prelude=PRE, **kw)


def test_both_backends_have_the_whole_contract(unix_fw):
    names = ["random_bytes", "ec_generate", "ec_public", "ec_sign", "ec_verify",
             "ec_check_point", "rsa_sign_pkcs1", "rsa_sign_pss", "rsa_verify_pkcs1",
             "rsa_verify_pss", "hash_new", "parse_private_key", "parse_public_key",
             "parse_certificate"]
    res = fw(unix_fw, f"""
        print(json.dumps([[n for n in {names!r} if not callable(getattr(m, n, None))]
                          for m in (C, P)]))
    """)
    assert res == [[], []]


def test_ec_keys_and_signatures_interoperate(unix_fw):
    res = fw(unix_fw, """
        out = []
        for gen, other in ((C, P), (P, C)):
            d, q = gen.ec_generate()
            row = [other.ec_public(d) == q, gen.ec_check_point(q), other.ec_check_point(q)]
            # 40 bytes is no standard hash size: only the two backends can cross-check it
            for n in (20, 32, 40, 48, 64):
                digest = C.random_bytes(n)
                sig = gen.ec_sign(d, digest)
                bad = digest[:5] + bytes([digest[5] ^ 1]) + digest[6:]
                row += [other.ec_verify(q, digest, sig), gen.ec_verify(q, digest, sig),
                        other.ec_verify(q, bad, sig)]
            out.append(row)
        print(json.dumps(out))
    """)
    for row in res:
        assert row[:3] == [True, True, True]
        assert row[3:] == [True, True, False] * 5


def test_ec_point_checks_and_errors_agree(unix_fw):
    res = fw(unix_fw, """
        d, q = C.ec_generate()
        y = int.from_bytes(q[33:], 'big')
        P256 = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
        pts = [q, q[:33] + (P256 - y).to_bytes(32, 'big'), q[:64] + bytes([q[64] ^ 1]),
               q[:64], b'\\x03' + q[1:], bytes([2 + (y & 1)]) + q[1:33], bytes(65), b'']
        checks = [[m.ec_check_point(p) for p in pts] for m in (C, P)]
        n = H('FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551')
        errs = [[err(m.ec_public, bytes(32)), err(m.ec_public, n), err(m.ec_public, d[:31]),
                 err(m.ec_sign, d, bytes(19)), err(m.ec_sign, d, bytes(65)),
                 err(m.ec_verify, pts[2], bytes(32), bytes(64)),
                 err(m.ec_verify, pts[5], bytes(32), bytes(64)),
                 m.ec_verify(q, bytes(32), bytes(63)), m.ec_verify(q, bytes(32), bytes(64))]
                for m in (C, P)]
        print(json.dumps([checks, errs]))
    """)
    checks, errs = res
    assert checks[0] == checks[1] == [True, True, False, False, False, False, False, False]
    assert errs[0] == errs[1] == ["ValueError"] * 7 + [False, False]


def key_src(key: rsa.RSAPrivateKey) -> str:
    pn = key.private_numbers()
    parts = [pn.public_numbers.n, pn.public_numbers.e, pn.d, pn.p, pn.q, pn.dmp1, pn.dmq1,
             pn.iqmp]
    return "(" + ", ".join(
        f"H('{x.to_bytes((x.bit_length() + 7) // 8, 'big').hex()}')" for x in parts) + ")"


@pytest.mark.parametrize("bits", [2048, 1025])
def test_rsa_signatures_interoperate(unix_fw, bits):
    # 1025 bits: the PSS encoded message is one byte shorter than the modulus
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    res = fw(unix_fw, f"""
        key = {key_src(key)}
        n, e = key[0], key[1]
        di = asn1.digest_info('sha256', C.random_bytes(32))
        s_c, s_p = C.rsa_sign_pkcs1(key, di), P.rsa_sign_pkcs1(key, di)
        out = [s_c == s_p, P.rsa_verify_pkcs1(n, e, di, s_c), C.rsa_verify_pkcs1(n, e, di, s_p),
               C.rsa_verify_pkcs1(n, e, di[:-1] + bytes([di[-1] ^ 1]), s_p)]
        for name in ('sha1', 'sha256', 'sha384', 'sha512'):
            mh = C.hash_new(name)
            mh.update(b'pss ' + name.encode())
            mh = mh.digest()
            for salt in (0, 20, 32):
                if salt + len(mh) + 2 > {(bits - 1 + 7) // 8}:
                    continue
                a, b = C.rsa_sign_pss(key, mh, name, salt), P.rsa_sign_pss(key, mh, name, salt)
                out.append([name, salt, a == b, P.rsa_verify_pss(n, e, mh, name, salt, a),
                            C.rsa_verify_pss(n, e, mh, name, salt, b),
                            C.rsa_verify_pss(n, e, mh, name, salt + 1, b),
                            P.rsa_verify_pss(n, e, mh, name, salt + 1, a)])
        print(json.dumps(out))
    """)
    assert res[:4] == [True, True, True, False]
    rows = res[4:]
    assert len(rows) >= 9
    for name, salt, same, p_ok, c_ok, c_bad, p_bad in rows:
        # PKCS#1 v1.5 and salt-less PSS are deterministic; salted PSS is not
        assert same == (salt == 0), (name, salt)
        assert (p_ok, c_ok, c_bad, p_bad) == (True, True, False, False), (name, salt)


def test_rsa_errors_agree(unix_fw):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    res = fw(unix_fw, f"""
        key = {key_src(key)}
        bad = key[:3] + ({key_src(other)}[3],) + key[4:]
        print(json.dumps([[err(m.rsa_sign_pkcs1, key, bytes(246)),
                           err(m.rsa_sign_pkcs1, key, bytes(245)),
                           err(m.rsa_sign_pss, key, bytes(32), 'sha256', 300),
                           err(m.rsa_sign_pss, key, bytes(31), 'sha256', 32),
                           err(m.rsa_sign_pss, key, bytes(16), 'md5', 0),
                           err(m.rsa_sign_pkcs1, bad, bytes(51)),
                           err(m.rsa_sign_pkcs1, key[:7], bytes(51)),
                           err(m.hash_new, 'md5'),
                           m.rsa_verify_pkcs1(key[0], key[1], bytes(51), bytes(255)),
                           m.rsa_verify_pkcs1(key[0], key[1], bytes(51), b'\\xff' * 256)]
                          for m in (C, P)]))
    """)
    assert res[0] == res[1] == ["ValueError", "no error"] + ["ValueError"] * 6 + [False, False]


def test_hashes_agree(unix_fw):
    res = fw(unix_fw, """
        out = []
        for name in ('sha1', 'sha256', 'sha384', 'sha512'):
            for n in (0, 1, 111, 112, 128, 1000):
                data = C.random_bytes(n)
                a, b = C.hash_new(name), P.hash_new(name)
                a.update(data[:7]); a.update(data[7:])
                b.update(data)
                out.append(a.digest() == b.digest() and len(a.digest()) > 0)
        print(json.dumps(out))
    """)
    assert res == [True] * 24


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_parsing_gives_identical_dicts(unix_fw):
    d = unix_fw.work_dir
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", "sec1.pem", cwd=d)
    openssl("ec", "-in", "sec1.pem", "-outform", "DER", "-out", "sec1.der", cwd=d)
    openssl("ec", "-in", "sec1.pem", "-no_public", "-out", "sec1_nopub.pem", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "ec8.pem", cwd=d)
    openssl("pkey", "-in", "ec8.pem", "-outform", "DER", "-out", "ec8.der", cwd=d)
    openssl("genrsa", "-traditional", "-out", "rsa1.pem", "2048", cwd=d)
    openssl("rsa", "-in", "rsa1.pem", "-traditional", "-outform", "DER", "-out", "rsa1.der", cwd=d)
    openssl("pkey", "-in", "rsa1.pem", "-out", "rsa8.pem", cwd=d)
    openssl("pkey", "-in", "ec8.pem", "-pubout", "-out", "ecpub.pem", cwd=d)
    openssl("pkey", "-in", "rsa1.pem", "-pubout", "-outform", "DER", "-out", "rsapub.der", cwd=d)
    openssl("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "p384.pem", cwd=d)
    openssl("pkey", "-in", "ec8.pem", "-aes256", "-passout", "pass:x", "-out", "enc.pem", cwd=d)
    for key, name in (("ec8.pem", "ec_cert"), ("rsa1.pem", "rsa_cert"), ("p384.pem", "p384_cert")):
        openssl("req", "-x509", "-key", key, "-subj", f"/O=Cross Check/CN={name}", "-days", "40",
                "-out", f"{name}.pem", cwd=d)
    openssl("x509", "-in", "rsa_cert.pem", "-outform", "DER", "-out", "rsa_cert.der", cwd=d)
    (d / "chain.pem").write_text((d / "ec_cert.pem").read_text() + (d / "rsa_cert.pem").read_text())
    (d / "garbage.bin").write_bytes(b"\x30\x03\x02\x01\x00garbage")
    items = [("priv", f) for f in ("sec1.pem", "sec1.der", "sec1_nopub.pem", "ec8.pem", "ec8.der",
                                   "rsa1.pem", "rsa1.der", "rsa8.pem")]
    items += [("pub", "ecpub.pem"), ("pub", "rsapub.der")]
    items += [("cert", f) for f in ("ec_cert.pem", "rsa_cert.pem", "rsa_cert.der",
                                    "p384_cert.pem", "chain.pem")]
    bad = [("priv", "p384.pem"), ("priv", "enc.pem"), ("priv", "garbage.bin"),
           ("priv", "ecpub.pem"), ("pub", "garbage.bin"), ("cert", "garbage.bin"),
           ("cert", "ec8.pem")]
    res = fw(unix_fw, f"""
        def run(m, kind, path):
            f = {{'priv': m.parse_private_key, 'pub': m.parse_public_key,
                  'cert': m.parse_certificate}}[kind]
            data = open(path, 'rb').read()
            try:
                return hx(f(data))
            except ValueError:
                return 'ValueError'
        print(json.dumps([[[run(m, k, p) for k, p in {items + bad!r}] for m in (C, P)]]))
    """)[0]
    c_res, p_res = res
    for (kind, path), a, b in zip(items + bad, c_res, p_res):
        assert a == b, (kind, path)
    for (kind, path), a in zip(items, c_res):
        assert isinstance(a, dict), (kind, path, a)
    assert c_res[len(items):] == ["ValueError"] * len(bad)
    certs = dict(zip([p for k, p in items if k == "cert"], c_res[-len(bad) - 5:-len(bad)]))
    assert certs["p384_cert.pem"]["public_key"] is None
    assert certs["chain.pem"] == certs["ec_cert.pem"]
