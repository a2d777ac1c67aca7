"""_pkcs11 key and certificate parsing on the unix firmware, for files made by openssl."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness.cmodule import is_error

RSA_FIELDS = ("n", "e", "d", "p", "q", "dp", "dq", "qinv")


def b(i: int) -> bytes:
    return i.to_bytes((i.bit_length() + 7) // 8 or 1, "big")


def load_key(path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    data = path.read_bytes()
    if data.startswith(b"-----") or b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, None)
    return serialization.load_der_private_key(data, None)


def expected_private(key) -> dict:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"type": "ec", "d": key.private_numbers().private_value.to_bytes(32, "big"),
                "q": key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)}
    pn = key.private_numbers()
    pub = pn.public_numbers
    values = (pub.n, pub.e, pn.d, pn.p, pn.q, pn.dmp1, pn.dmq1, pn.iqmp)
    return {"type": "rsa", **{k: b(v) for k, v in zip(RSA_FIELDS, values)}}


def expected_public(key) -> dict:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"type": "ec", "q": key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)}
    pub = key.public_numbers()
    return {"type": "rsa", "n": b(pub.n), "e": b(pub.e)}


def parse_files(cmodule, func: str, names: list[str]) -> list:
    return cmodule.run(f"out = [call(P.{func}, rd(n)) for n in {names!r}]")


@pytest.fixture
def ec_files(cmodule):
    """EC P-256 keys in every form openssl writes them."""
    o = cmodule.openssl
    o("ecparam", "-name", "prime256v1", "-genkey", "-out", "ecparam_genkey.pem")   # EC PARAMETERS + SEC1
    o("ec", "-in", "ecparam_genkey.pem", "-out", "sec1.pem")
    o("ec", "-in", "ecparam_genkey.pem", "-outform", "DER", "-out", "sec1.der")
    o("ec", "-in", "ecparam_genkey.pem", "-no_public", "-out", "sec1_nopub.pem")
    o("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "pkcs8.pem")
    o("pkey", "-in", "pkcs8.pem", "-outform", "DER", "-out", "pkcs8.der")
    return {
        "ecparam_genkey.pem": "ecparam_genkey.pem", "sec1.pem": "ecparam_genkey.pem",
        "sec1.der": "ecparam_genkey.pem", "sec1_nopub.pem": "ecparam_genkey.pem",
        "pkcs8.pem": "pkcs8.pem", "pkcs8.der": "pkcs8.pem",
    }


def test_ec_private_keys_in_every_openssl_form(cmodule, ec_files):
    names = list(ec_files)
    out = parse_files(cmodule, "parse_private_key", names)
    text = (cmodule.work_dir / "ecparam_genkey.pem").read_text()
    assert "BEGIN EC PARAMETERS" in text and "BEGIN EC PRIVATE KEY" in text
    for name, result in zip(names, out):
        want = expected_private(load_key(cmodule.work_dir / ec_files[name]))
        assert result == want, name


def test_rsa_private_keys_in_every_openssl_form(cmodule):
    o = cmodule.openssl
    o("genrsa", "-out", "genrsa.pem", "2048")                      # OpenSSL 3: PKCS#8
    o("genrsa", "-traditional", "-out", "pkcs1.pem", "2048")       # RSA PRIVATE KEY
    o("rsa", "-in", "pkcs1.pem", "-outform", "DER", "-traditional", "-out", "pkcs1.der")
    o("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "pkcs8.pem")
    o("pkey", "-in", "pkcs8.pem", "-outform", "DER", "-out", "pkcs8.der")
    o("genrsa", "-traditional", "-out", "rsa1024.pem", "1024")
    assert b"BEGIN RSA PRIVATE KEY" in (cmodule.work_dir / "pkcs1.pem").read_bytes()
    sources = {"genrsa.pem": "genrsa.pem", "pkcs1.pem": "pkcs1.pem", "pkcs1.der": "pkcs1.pem",
               "pkcs8.pem": "pkcs8.pem", "pkcs8.der": "pkcs8.pem", "rsa1024.pem": "rsa1024.pem"}
    out = parse_files(cmodule, "parse_private_key", list(sources))
    for (name, src), result in zip(sources.items(), out):
        assert result == expected_private(load_key(cmodule.work_dir / src)), name
        assert set(result) == {"type", *RSA_FIELDS}


def test_parsed_keys_sign_like_the_originals(cmodule, ec_files):
    # The parsed values are usable as they are by the sign functions.
    cmodule.openssl("genrsa", "-traditional", "-out", "r.pem", "2048")
    out = cmodule.run("""
        fields = ('n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qinv')
        k = P.parse_private_key(rd('r.pem'))
        rk = [k[f] for f in fields]
        s = P.rsa_sign_pkcs1(rk, b'digest info')
        e = P.parse_private_key(rd('sec1_nopub.pem'))
        g = bytes(range(32))
        out = [P.rsa_verify_pkcs1(k['n'], k['e'], b'digest info', s),
               P.ec_verify(e['q'], g, P.ec_sign(e['d'], g))]
    """)
    assert out == [True, True]


def test_public_keys(cmodule, ec_files):
    o = cmodule.openssl
    o("pkey", "-in", "pkcs8.pem", "-pubout", "-out", "ec_pub.pem")
    o("pkey", "-in", "pkcs8.pem", "-pubout", "-outform", "DER", "-out", "ec_pub.der")
    o("genrsa", "-out", "r.pem", "2048")
    o("pkey", "-in", "r.pem", "-pubout", "-out", "rsa_pub.pem")
    o("pkey", "-in", "r.pem", "-pubout", "-outform", "DER", "-out", "rsa_pub.der")
    names = ["ec_pub.pem", "ec_pub.der", "rsa_pub.pem", "rsa_pub.der"]
    out = parse_files(cmodule, "parse_public_key", names)
    for name, result in zip(names, out):
        data = (cmodule.work_dir / name).read_bytes()
        key = (serialization.load_pem_public_key(data) if name.endswith(".pem")
               else serialization.load_der_public_key(data))
        assert result == expected_public(key), name


def _cert_expect(path) -> dict:
    data = path.read_bytes()
    cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data))
    serial = cert.serial_number
    content = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # DER INTEGER content
    assert len(content) < 128
    return {
        "der": cert.public_bytes(Encoding.DER),
        "subject": cert.subject.public_bytes(),
        "issuer": cert.issuer.public_bytes(),
        "serial": bytes([2, len(content)]) + content,
        "not_before": cert.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
        "not_after": cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"),
        "public_key": expected_public(cert.public_key()),
    }


def test_certificates_self_signed_and_ca_signed(cmodule):
    o = cmodule.openssl
    o("ecparam", "-name", "prime256v1", "-genkey", "-out", "ca.key")
    o("req", "-x509", "-new", "-key", "ca.key", "-subj", "/C=DE/O=Test CA/CN=Root Cert",
      "-days", "3650", "-set_serial", "1", "-out", "ca.pem")
    o("genrsa", "-out", "dev.key", "2048")
    o("req", "-new", "-key", "dev.key", "-subj", "/O=Things/CN=device-0001", "-out", "dev.csr")
    # A serial with the top bit set needs a leading zero octet in DER.
    o("x509", "-req", "-in", "dev.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
      "-set_serial", "0x9fe3c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2", "-days", "30", "-out", "dev.pem")
    o("x509", "-in", "dev.pem", "-outform", "DER", "-out", "dev.der")
    (cmodule.work_dir / "chain.pem").write_bytes(
        (cmodule.work_dir / "dev.pem").read_bytes() + (cmodule.work_dir / "ca.pem").read_bytes())
    text = o("x509", "-in", "dev.pem", "-text")
    (cmodule.work_dir / "with_text.pem").write_bytes(text)   # text first, then the PEM block
    names = ["ca.pem", "dev.pem", "dev.der", "chain.pem", "with_text.pem"]
    out = parse_files(cmodule, "parse_certificate", names)
    for name, result in zip(names, out):
        src = "ca.pem" if name == "ca.pem" else "dev.pem"
        assert result == _cert_expect(cmodule.work_dir / src), name
    dev = out[1]
    assert dev["serial"][:3] == b"\x02\x15\x00"
    assert dev["issuer"] == out[0]["subject"] != dev["subject"]
    assert dev["public_key"]["type"] == "rsa" and out[0]["public_key"]["type"] == "ec"


def test_certificate_validity_dates_exact(cmodule):
    from cryptography.hazmat.primitives import hashes

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "dates")])
    before = datetime.datetime(2024, 2, 29, 23, 59, 58, tzinfo=datetime.timezone.utc)
    after = datetime.datetime(2051, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)  # GeneralizedTime
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(127)
            .not_valid_before(before).not_valid_after(after)
            .sign(key, hashes.SHA256()))
    (cmodule.work_dir / "d.der").write_bytes(cert.public_bytes(Encoding.DER))
    out = cmodule.run("c = P.parse_certificate(rd('d.der')); out = [c['not_before'], c['not_after'], c['serial']]")
    assert out == ["20240229235958Z", "20510102030405Z", b"\x02\x01\x7f"]


def test_p384_keys_rejected_but_p384_ca_certificate_parses(cmodule):
    o = cmodule.openssl
    o("ecparam", "-name", "secp384r1", "-genkey", "-out", "p384.pem")
    o("pkey", "-in", "p384.pem", "-out", "p384_pkcs8.pem")
    o("pkey", "-in", "p384.pem", "-pubout", "-out", "p384_pub.pem")
    o("req", "-x509", "-new", "-key", "p384.pem", "-subj", "/CN=P-384 Root", "-days", "1", "-out", "p384_ca.pem")
    out = cmodule.run("""
        out = [call(P.parse_private_key, rd('p384.pem')), call(P.parse_private_key, rd('p384_pkcs8.pem')),
               call(P.parse_public_key, rd('p384_pub.pem')), call(P.parse_certificate, rd('p384_ca.pem'))]
    """)
    for result in out[:3]:
        assert is_error(result) and "P-256" in result["msg"], result
    cert = out[3]
    assert cert["public_key"] is None
    assert cert["subject"] == x509.load_pem_x509_certificate(
        (cmodule.work_dir / "p384_ca.pem").read_bytes()).subject.public_bytes()


def test_other_curves_rejected_in_sec1_and_pkcs8(cmodule):
    # brainpoolP256r1 is not even compiled into the firmware's mbedTLS; secp256k1 is.
    o = cmodule.openssl
    names = []
    for curve in ("brainpoolP256r1", "secp256k1", "secp521r1"):
        o("ecparam", "-name", curve, "-genkey", "-noout", "-out", f"{curve}.pem")
        o("pkcs8", "-topk8", "-nocrypt", "-in", f"{curve}.pem", "-outform", "DER", "-out", f"{curve}.p8.der")
        names += [f"{curve}.pem", f"{curve}.p8.der"]
    out = parse_files(cmodule, "parse_private_key", names)
    for name, result in zip(names, out):
        assert is_error(result) and "P-256" in result["msg"], (name, result)


def test_sec1_key_whose_public_point_does_not_match_is_rejected(cmodule):
    a = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    der = a.private_bytes(Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    qa = expected_private(a)["q"]
    assert der.endswith(qa)
    (cmodule.work_dir / "mismatch.der").write_bytes(der[:-65] + expected_private(other)["q"])
    (cmodule.work_dir / "match.der").write_bytes(der)
    out = parse_files(cmodule, "parse_private_key", ["mismatch.der", "match.der"])
    assert is_error(out[0]) and "match" in out[0]["msg"]
    assert out[1] == expected_private(a)


def test_bad_inputs_raise_value_error_without_key_bytes(cmodule, ec_files):
    o = cmodule.openssl
    o("pkcs8", "-topk8", "-in", "pkcs8.pem", "-v2", "aes-256-cbc", "-passout", "pass:secret", "-out", "enc_pkcs8.pem")
    o("pkcs8", "-topk8", "-in", "pkcs8.pem", "-v2", "aes-256-cbc", "-passout", "pass:secret",
      "-outform", "DER", "-out", "enc_pkcs8.der")
    o("ec", "-in", "sec1.pem", "-aes256", "-passout", "pass:secret", "-out", "enc_sec1.pem")
    o("genpkey", "-algorithm", "ED25519", "-out", "ed25519.pem")
    wd = cmodule.work_dir
    sec1 = (wd / "sec1.pem").read_text()
    lines = sec1.splitlines()
    body = "".join(lines[1:-1])
    (wd / "garbage.pem").write_text("-----BEGIN EC PRIVATE KEY-----\nnot*base64!\n-----END EC PRIVATE KEY-----\n")
    (wd / "nokey.pem").write_text("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")
    (wd / "wrong_b64.pem").write_text(lines[0] + "\n" + body[:-8] + "AAAA" + body[-4:] + "\n" + lines[-1] + "\n")
    (wd / "truncated.der").write_bytes((wd / "sec1.der").read_bytes()[:-10])
    (wd / "random.bin").write_bytes(bytes(range(7, 200)))
    (wd / "empty.bin").write_bytes(b"")
    (wd / "unterminated.pem").write_text(lines[0] + "\n" + body + "\n")
    names = ["enc_pkcs8.pem", "enc_pkcs8.der", "enc_sec1.pem", "ed25519.pem", "garbage.pem", "nokey.pem",
             "wrong_b64.pem", "truncated.der", "random.bin", "empty.bin", "unterminated.pem"]
    out = parse_files(cmodule, "parse_private_key", names)
    secret = expected_private(load_key(wd / "sec1.pem"))["d"]
    for name, result in zip(names, out):
        assert is_error(result), (name, result)
        msg = result["msg"]
        assert len(msg) < 120, msg
        assert secret.hex() not in msg.lower() and body[:12] not in msg, msg
        assert all(secret[i:i + 4].hex() not in msg.lower() for i in range(0, 32, 4)), msg
    for name in ("enc_pkcs8.pem", "enc_pkcs8.der", "enc_sec1.pem"):
        assert "encrypted" in out[names.index(name)]["msg"], name
    assert "unsupported" in out[names.index("ed25519.pem")]["msg"]
    assert "base64" in out[names.index("garbage.pem")]["msg"]
    assert "PEM block" in out[names.index("nokey.pem")]["msg"]

    more = cmodule.run("""
        out = [call(P.parse_public_key, rd('sec1.pem')), call(P.parse_public_key, b'\\x30\\x03\\x02\\x01\\x01'),
               call(P.parse_certificate, rd('sec1.pem')), call(P.parse_certificate, rd('truncated.der')),
               call(P.parse_certificate, 'not a certificate')]
    """)
    for result in more:
        assert is_error(result), result
        assert secret.hex() not in result["msg"].lower()
