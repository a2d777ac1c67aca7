"""pkcs11.pure.backend on the unix firmware: parsing private keys, public keys and
certificates made by openssl, compared with what the host `cryptography` package reads."""

from __future__ import annotations

import datetime
import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PRE = """\
import json
from pkcs11.pure import backend as b
def hx(d):
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in d.items()}
def parse(kind, path):
    f = {'priv': b.parse_private_key, 'pub': b.parse_public_key,
         'cert': b.parse_certificate}[kind]
    data = open(path, 'rb').read()
    try:
        r = f(data)
    except ValueError as e:
        return 'ValueError: ' + str(e)
    if kind == 'cert' and r['public_key'] is not None:
        r['public_key'] = hx(r['public_key'])
    return hx(r)
"""


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def parse_on_fw(unix_fw, items: list[tuple[str, str]]) -> list:
    """items: (kind, file name in unix_fw.work_dir); PEM files are also tried as str."""
    out = unix_fw.run(PRE + textwrap.dedent(f"""
        res = []
        for kind, path in {items!r}:
            res.append(parse(kind, path))
        print(json.dumps(res))
    """))
    return json.loads(out.strip().splitlines()[-1])


def h(i: int) -> str:
    return i.to_bytes(max(1, (i.bit_length() + 7) // 8), "big").hex()


def expected_private(path: Path) -> dict:
    data = path.read_bytes()
    key = (serialization.load_pem_private_key(data, None) if data.startswith(b"-----")
           else serialization.load_der_private_key(data, None))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        pn = key.private_numbers()
        q = pn.public_numbers
        return {"type": "ec", "d": pn.private_value.to_bytes(32, "big").hex(),
                "q": "04" + q.x.to_bytes(32, "big").hex() + q.y.to_bytes(32, "big").hex()}
    assert isinstance(key, rsa.RSAPrivateKey)
    pn = key.private_numbers()
    return {"type": "rsa", "n": h(pn.public_numbers.n), "e": h(pn.public_numbers.e),
            "d": h(pn.d), "p": h(pn.p), "q": h(pn.q), "dp": h(pn.dmp1), "dq": h(pn.dmq1),
            "qinv": h(pn.iqmp)}


def expected_public(key) -> dict:
    if isinstance(key, ec.EllipticCurvePublicKey):
        n = key.public_numbers()
        return {"type": "ec", "q": "04" + n.x.to_bytes(32, "big").hex() + n.y.to_bytes(32, "big").hex()}
    n = key.public_numbers()
    return {"type": "rsa", "n": h(n.n), "e": h(n.e)}


@pytest.fixture(scope="module")
def keydir(tmp_path_factory) -> Path:
    """Keys exactly as openssl's usual commands make them (PEM and DER)."""
    d = tmp_path_factory.mktemp("keys")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", "ec_sec1_params.pem", cwd=d)
    openssl("ec", "-in", "ec_sec1_params.pem", "-out", "ec_sec1.pem", cwd=d)
    openssl("ec", "-in", "ec_sec1.pem", "-outform", "DER", "-out", "ec_sec1.der", cwd=d)
    openssl("ec", "-in", "ec_sec1.pem", "-no_public", "-out", "ec_sec1_nopub.pem", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "ec_pkcs8.pem", cwd=d)
    openssl("pkey", "-in", "ec_pkcs8.pem", "-outform", "DER", "-out", "ec_pkcs8.der", cwd=d)
    openssl("pkey", "-in", "ec_sec1_params.pem", "-outform", "DER", "-out", "ec_sec1_as_pkcs8.der",
            cwd=d)
    openssl("genrsa", "-traditional", "-out", "rsa_pkcs1.pem", "2048", cwd=d)
    openssl("rsa", "-in", "rsa_pkcs1.pem", "-traditional", "-outform", "DER", "-out",
            "rsa_pkcs1.der", cwd=d)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "rsa_pkcs8.pem", cwd=d)
    openssl("pkey", "-in", "rsa_pkcs8.pem", "-outform", "DER", "-out", "rsa_pkcs8.der", cwd=d)
    for name in ("ec_pkcs8", "rsa_pkcs8"):
        openssl("pkey", "-in", f"{name}.pem", "-pubout", "-out", f"{name}_pub.pem", cwd=d)
        openssl("pkey", "-in", f"{name}.pem", "-pubout", "-outform", "DER",
                "-out", f"{name}_pub.der", cwd=d)
    return d


def copy_to(unix_fw, src: Path, names) -> None:
    for n in names:
        (unix_fw.work_dir / n).write_bytes((src / n).read_bytes())


PRIVATE = ["ec_sec1_params.pem", "ec_sec1.pem", "ec_sec1.der", "ec_sec1_nopub.pem",
           "ec_pkcs8.pem", "ec_pkcs8.der", "ec_sec1_as_pkcs8.der",
           "rsa_pkcs1.pem", "rsa_pkcs1.der", "rsa_pkcs8.pem", "rsa_pkcs8.der"]


def test_private_keys_from_openssl(unix_fw, keydir):
    copy_to(unix_fw, keydir, PRIVATE)
    res = parse_on_fw(unix_fw, [("priv", n) for n in PRIVATE])
    for name, got in zip(PRIVATE, res):
        assert got == expected_private(keydir / name), name
    # the SEC1 file starts with an EC PARAMETERS block, as `openssl ecparam -genkey` writes
    assert (keydir / "ec_sec1_params.pem").read_bytes().startswith(b"-----BEGIN EC PARAMETERS")
    # without the optional public key the point is derived from d
    assert b"-----BEGIN EC PRIVATE KEY" in (keydir / "ec_sec1_nopub.pem").read_bytes()
    assert res[3] == res[1]


def test_public_keys_from_openssl(unix_fw, keydir):
    names = ["ec_pkcs8_pub.pem", "ec_pkcs8_pub.der", "rsa_pkcs8_pub.pem", "rsa_pkcs8_pub.der"]
    copy_to(unix_fw, keydir, names)
    res = parse_on_fw(unix_fw, [("pub", n) for n in names])
    for name, got in zip(names, res):
        data = (keydir / name).read_bytes()
        key = (serialization.load_pem_public_key(data) if name.endswith(".pem")
               else serialization.load_der_public_key(data))
        assert got == expected_public(key), name


def test_private_key_errors(unix_fw, keydir, tmp_path):
    d = unix_fw.work_dir
    copy_to(unix_fw, keydir, ["ec_pkcs8.pem", "ec_sec1.pem", "rsa_pkcs1.pem"])
    openssl("pkey", "-in", "ec_pkcs8.pem", "-aes256", "-passout", "pass:secret",
            "-out", "enc_pkcs8.pem", cwd=d)
    openssl("pkcs8", "-topk8", "-in", "ec_pkcs8.pem", "-v2", "aes256", "-passout", "pass:secret",
            "-outform", "DER", "-out", "enc_pkcs8.der", cwd=d)
    openssl("ec", "-in", "ec_sec1.pem", "-aes256", "-passout", "pass:secret",
            "-out", "enc_sec1.pem", cwd=d)
    openssl("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "p384.pem", cwd=d)
    openssl("genpkey", "-algorithm", "ED25519", "-out", "ed25519.pem", cwd=d)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-param_enc", "explicit",
            "-out", "explicit.pem", cwd=d)
    (d / "garbage.bin").write_bytes(bytes(range(200)))
    (d / "empty.bin").write_bytes(b"")
    (d / "cert_not_key.pem").write_text("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")
    # a valid SEC1 key with the scalar replaced by n (out of range)
    der = serialization.load_pem_private_key((d / "ec_sec1.pem").read_bytes(), None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    n = bytes.fromhex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
    i = der.index(b"\x04\x20") + 2
    (d / "d_is_n.der").write_bytes(der[:i] + n + der[i + 32:])
    (d / "truncated.der").write_bytes(der[:-10])
    # the optional public key (the last 65 bytes) belongs to another key
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert der[-66:-65] == b"\x00" and len(other) == 65
    (d / "mismatch.der").write_bytes(der[:-65] + other)
    cases = {
        "enc_pkcs8.pem": "encrypted", "enc_pkcs8.der": "encrypted", "enc_sec1.pem": "encrypted",
        "p384.pem": "curve", "ed25519.pem": "algorithm", "explicit.pem": "explicit",
        "garbage.bin": "", "empty.bin": "", "cert_not_key.pem": "private key",
        "d_is_n.der": "range", "truncated.der": "", "mismatch.der": "does not match",
    }
    res = parse_on_fw(unix_fw, [("priv", n) for n in cases])
    secrets = [expected_private(d / "ec_sec1.pem")["d"], expected_private(d / "ec_pkcs8.pem")["d"]]
    for (name, word), got in zip(cases.items(), res):
        assert isinstance(got, str) and got.startswith("ValueError: "), (name, got)
        assert word in got, (name, got)
        for s in secrets:
            assert s[:12] not in got.lower()


def make_cert(d: Path, key_file: str, name: str, *extra: str) -> Path:
    openssl("req", "-x509", "-key", key_file, "-subj", "/C=US/O=Test Org/CN=" + name,
            "-out", name + ".pem", *extra, cwd=d)
    openssl("x509", "-in", name + ".pem", "-outform", "DER", "-out", name + ".der", cwd=d)
    return d / (name + ".pem")


def der_integer(i: int) -> bytes:
    body = i.to_bytes(i.bit_length() // 8 + 1, "big")
    assert len(body) < 128
    return bytes([2, len(body)]) + body


def test_certificates_from_openssl(unix_fw, keydir):
    d = unix_fw.work_dir
    copy_to(unix_fw, keydir, ["ec_pkcs8.pem", "rsa_pkcs1.pem"])
    openssl("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "p384.pem", cwd=d)
    make_cert(d, "ec_pkcs8.pem", "ec_dev", "-days", "30")
    make_cert(d, "rsa_pkcs1.pem", "rsa_dev", "-days", "365", "-set_serial", "1")
    # validity beyond 2049 is a GeneralizedTime
    make_cert(d, "ec_pkcs8.pem", "long_lived", "-days", "36500", "-set_serial", "0x00ff00ff")
    # a root with a key type the token cannot use is still parsed
    make_cert(d, "p384.pem", "p384_root", "-days", "10")
    # an issued certificate: issuer differs from subject
    openssl("req", "-new", "-key", "rsa_pkcs1.pem", "-subj", "/CN=leaf device", "-out", "leaf.csr",
            cwd=d)
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ec_dev.pem", "-CAkey", "ec_pkcs8.pem",
            "-days", "5", "-set_serial", "123456789012345678901234567890", "-out", "leaf.pem",
            cwd=d)
    names = ["ec_dev.pem", "ec_dev.der", "rsa_dev.pem", "long_lived.pem", "p384_root.der",
             "leaf.pem"]
    res = parse_on_fw(unix_fw, [("cert", n) for n in names])
    fmt = "%Y%m%d%H%M%SZ"
    for name, got in zip(names, res):
        data = (d / name).read_bytes()
        cert = (x509.load_pem_x509_certificate(data) if name.endswith(".pem")
                else x509.load_der_x509_certificate(data))
        assert isinstance(got, dict), (name, got)
        assert got["der"] == cert.public_bytes(serialization.Encoding.DER).hex()
        assert got["subject"] == cert.subject.public_bytes().hex()
        assert got["issuer"] == cert.issuer.public_bytes().hex()
        assert got["serial"] == der_integer(cert.serial_number).hex()
        assert got["not_before"] == cert.not_valid_before_utc.strftime(fmt)
        assert got["not_after"] == cert.not_valid_after_utc.strftime(fmt)
        if name.startswith("p384"):
            assert got["public_key"] is None
        else:
            assert got["public_key"] == expected_public(cert.public_key()), name
    assert res[3]["not_after"][:2] == "21"
    assert res[5]["issuer"] == res[0]["subject"] != res[5]["subject"]
    assert res[1] == res[0]


def test_certificate_utctime_centuries(unix_fw):
    # UTCTime years 50..99 are 19xx and 00..49 are 20xx (RFC 5280)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(datetime.datetime(1999, 12, 31, 23, 59, 58))
            .not_valid_after(datetime.datetime(2049, 12, 31, 23, 59, 59))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    assert b"\x17\x0d991231235958Z" in der and b"\x17\x0d491231235959Z" in der
    (unix_fw.work_dir / "old.der").write_bytes(der)
    res = parse_on_fw(unix_fw, [("cert", "old.der")])[0]
    assert (res["not_before"], res["not_after"]) == ("19991231235958Z", "20491231235959Z")
    assert res["serial"] == "020107"


def test_certificate_errors(unix_fw, keydir):
    d = unix_fw.work_dir
    copy_to(unix_fw, keydir, ["ec_pkcs8.pem"])
    make_cert(d, "ec_pkcs8.pem", "ok", "-days", "1")
    der = (d / "ok.der").read_bytes()
    (d / "trunc.der").write_bytes(der[:-1])
    (d / "trailing.der").write_bytes(der + b"\x00")
    (d / "key_not_cert.pem").write_bytes((d / "ec_pkcs8.pem").read_bytes())
    (d / "bad_b64.pem").write_text("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
    names = ["trunc.der", "trailing.der", "key_not_cert.pem", "bad_b64.pem"]
    res = parse_on_fw(unix_fw, [("cert", n) for n in names])
    for name, got in zip(names, res):
        assert isinstance(got, str) and got.startswith("ValueError: "), (name, got)
    assert "certificate" in res[2].lower()
