"""p11board against the unix firmware (through a pty, like a board)."""

from __future__ import annotations

import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from harness.p11board import run_openssl


def _spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _list(tool, *extra: str, env: dict[str, str] | None = None) -> list[dict]:
    return json.loads(tool("list", "--json", *extra, env=env).stdout)["objects"]


def test_seed_key_and_certificate_imported_listed_shown(tool_unix, seed_files):
    key = serialization.load_pem_private_key(seed_files.key.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(seed_files.cert.read_bytes())

    r = tool_unix("import-key", str(seed_files.key))
    assert "EC P-256 private key (PKCS#8)" in r.stderr
    tool_unix("import-cert", str(seed_files.cert))
    tool_unix("import-ca", str(seed_files.ca))

    rows = _list(tool_unix)
    got = {(o["class"], o["label"]): o for o in rows}
    assert set(got) == {("private-key", "Device Priv TLS Key"), ("public-key", "Device Pub TLS Key"),
                        ("certificate", "Device Cert"), ("certificate", "Root Cert")}
    assert got["private-key", "Device Priv TLS Key"]["key_type"] == "EC"
    assert got["private-key", "Device Priv TLS Key"]["size"] == "P-256"
    assert got["certificate", "Device Cert"]["size"] == f"{len(cert.public_bytes(serialization.Encoding.DER))} bytes"
    # the key, its public half and its certificate share one CKA_ID
    ids = {got[k]["id"] for k in [("private-key", "Device Priv TLS Key"),
                                   ("public-key", "Device Pub TLS Key"), ("certificate", "Device Cert")]}
    assert len(ids) == 1 and len(ids.pop()) == 40

    text = tool_unix("list").stdout
    assert "Device Priv TLS Key" in text and "Root Cert" in text

    shown = json.loads(tool_unix("show", "Device Cert", "--json").stdout)
    assert len(shown) == 1
    c = shown[0]["certificate"]
    assert c["subject"] == "CN=dcgecc" and c["issuer"] == "CN=Test Root CA"
    fp = run_openssl("x509", "-in", str(seed_files.cert), "-noout", "-fingerprint", "-sha256",
                     cwd=seed_files.dir).strip().split("=", 1)[1]
    assert c["sha256_fingerprint"] == fp
    assert c["not_after"].startswith(cert.not_valid_after_utc.strftime("%Y-%m-%d"))

    human = tool_unix("show", "Device Cert").stdout
    assert "CN=dcgecc" in human and fp in human

    # the private key shows its public half only, equal to the file's
    shown = json.loads(tool_unix("show", "Device Priv TLS Key", "--json").stdout)
    assert [o["class"] for o in shown] == ["private-key"]
    pem = shown[0]["public_key"]["pem"].encode()
    assert _spki(serialization.load_pem_public_key(pem)) == _spki(key.public_key())
    assert shown[0]["attributes"]["CKA_SENSITIVE"] is True
    assert shown[0]["attributes"]["CKA_EXTRACTABLE"] is False


def test_imported_key_signs_a_csr_that_openssl_accepts(tool_unix, seed_files, tmp_path):
    tool_unix("import-key", str(seed_files.key))
    out = tmp_path / "device.csr"
    tool_unix("csr", "--subject", "CN=dcgecc,O=Example", "--out", str(out))
    verify = subprocess.run(["openssl", "req", "-in", str(out), "-verify", "-noout", "-subject"],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert "verify OK" in verify.stdout + verify.stderr
    csr = x509.load_pem_x509_csr(out.read_bytes())
    key = serialization.load_pem_private_key(seed_files.key.read_bytes(), None)
    assert _spki(csr.public_key()) == _spki(key.public_key())   # the token holds the file's key
    assert csr.subject.rfc4514_string() == "O=Example,CN=dcgecc"


def test_generated_key_csr_matches_the_tokens_public_key(tool_unix, tmp_path):
    r = tool_unix("generate-key")
    pub_from_generate = serialization.load_pem_public_key(r.stdout.encode())
    assert isinstance(pub_from_generate, ec.EllipticCurvePublicKey)

    r = tool_unix("csr", "--subject", "CN=my-thing")            # PEM on stdout
    csr_file = tmp_path / "stdout.csr"
    csr_file.write_text(r.stdout)
    verify = subprocess.run(["openssl", "req", "-in", str(csr_file), "-verify", "-noout"],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and "verify OK" in verify.stdout + verify.stderr
    csr = x509.load_pem_x509_csr(r.stdout.encode())
    assert csr.is_signature_valid

    shown = json.loads(tool_unix("show", "Device Pub TLS Key", "--json").stdout)
    token_pub = serialization.load_pem_public_key(shown[0]["public_key"]["pem"].encode())
    assert _spki(csr.public_key()) == _spki(token_pub) == _spki(pub_from_generate)

    rows = {(o["class"], o["label"]): o for o in _list(tool_unix)}
    assert rows["private-key", "Device Priv TLS Key"]["id"] == rows["public-key", "Device Pub TLS Key"]["id"]

    # a second key under the default labels needs --replace; then the CSR key changes
    r = tool_unix("generate-key", expect=5)
    assert "--replace" in r.stderr
    r2 = tool_unix("generate-key", "--replace")
    assert r2.stdout != r.stdout and len(_list(tool_unix)) == 2
    csr2 = x509.load_pem_x509_csr(tool_unix("csr", "--subject", "CN=my-thing").stdout.encode())
    assert _spki(csr2.public_key()) == _spki(serialization.load_pem_public_key(r2.stdout.encode()))


def test_rsa_2048_pkcs1_key_and_its_csr(tool_unix, tmp_path):
    run_openssl("genrsa", "-traditional", "-out", "rsa.key", "2048", cwd=tmp_path)
    assert (tmp_path / "rsa.key").read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    r = tool_unix("import-key", str(tmp_path / "rsa.key"), "--label", "RSA Key")
    assert "RSA-2048 private key (PKCS#1)" in r.stderr
    rows = {(o["class"], o["label"]): o for o in _list(tool_unix)}
    assert rows["private-key", "RSA Key"]["size"] == "2048 bit"
    assert rows["public-key", "RSA Key"]["key_type"] == "RSA"
    r = tool_unix("csr", "--label", "RSA Key", "--subject", "CN=rsa-thing")
    csr = x509.load_pem_x509_csr(r.stdout.encode())
    key = serialization.load_pem_private_key((tmp_path / "rsa.key").read_bytes(), None)
    assert isinstance(csr.public_key(), rsa.RSAPublicKey)
    key.public_key().verify(csr.signature, csr.tbs_certrequest_bytes, padding.PKCS1v15(), hashes.SHA256())


def test_key_formats_sec1_with_ec_parameters_and_der(tool_unix, tmp_path):
    run_openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", "sec1.key", cwd=tmp_path)
    assert (tmp_path / "sec1.key").read_text().startswith("-----BEGIN EC PARAMETERS-----")
    r = tool_unix("import-key", str(tmp_path / "sec1.key"), "--label", "sec1")
    assert "(SEC1)" in r.stderr
    run_openssl("pkey", "-in", "sec1.key", "-outform", "DER", "-out", "k.der", cwd=tmp_path)
    tool_unix("import-key", str(tmp_path / "k.der"), "--label", "der", "--no-public")
    rows = [(o["class"], o["label"]) for o in _list(tool_unix)]
    assert sorted(rows) == [("private-key", "der"), ("private-key", "sec1"), ("public-key", "sec1")]
    # both hold the same key: their CSRs carry the same public key
    a = x509.load_pem_x509_csr(tool_unix("csr", "--label", "sec1", "--subject", "CN=a").stdout.encode())
    b = x509.load_pem_x509_csr(tool_unix("csr", "--label", "der", "--subject", "CN=b").stdout.encode())
    assert _spki(a.public_key()) == _spki(b.public_key())


@pytest.mark.parametrize("make, message", [
    (lambda d: run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                           "-out", "k.pem", cwd=d), "P-256"),
    (lambda d: run_openssl("genrsa", "-out", "k.pem", "1024", cwd=d), "RSA-2048 only"),
    (lambda d: run_openssl("genpkey", "-algorithm", "ED25519", "-out", "k.pem", cwd=d), "EC P-256 and RSA-2048"),
    (lambda d: run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                           "-aes256", "-pass", "pass:secret", "-out", "k.pem", cwd=d), "encrypted"),
    (lambda d: (d / "k.pem").write_text("hello\n"), "neither PEM"),
    (lambda d: (d / "k.pem").write_text(""), "empty"),
    (lambda d: None, "no such file"),
])
def test_wrong_key_files_exit_4_with_a_clear_message(tool_unix, tmp_path, make, message):
    make(tmp_path)
    r = tool_unix("import-key", str(tmp_path / "k.pem"), expect=4)
    assert message in r.stderr
    assert "connecting" not in r.stderr          # refused on the host, before any connection


def test_certificate_where_a_key_belongs_and_back(tool_unix, seed_files):
    r = tool_unix("import-key", str(seed_files.cert), expect=4)
    assert "certificate: use import-cert" in r.stderr
    r = tool_unix("import-cert", str(seed_files.key), expect=4)
    assert "private key: use import-key" in r.stderr
    r = tool_unix("import-cert", str(seed_files.csr), expect=4)
    assert "create-certificate-from-csr" in r.stderr


def test_destroy_asks_unless_yes(tool_unix, seed_files):
    tool_unix("import-key", str(seed_files.key))
    r = tool_unix("destroy", "Device Priv TLS Key", expect=6)           # no terminal to ask on
    assert "--yes" in r.stderr
    r = tool_unix("destroy", "Device Priv TLS Key", input="n\n", expect=6)
    assert len(_list(tool_unix)) == 2
    tool_unix("destroy", "Device Priv TLS Key", "--yes")
    assert [(o["class"], o["label"]) for o in _list(tool_unix)] == [("public-key", "Device Pub TLS Key")]
    r = tool_unix("destroy", "Device Priv TLS Key", "--yes", expect=5)
    assert "no object labelled" in r.stderr
    tool_unix("destroy", "Device Pub TLS Key", "--class", "public-key", "--yes")
    assert _list(tool_unix) == []


def test_pins_hide_private_objects_and_init_token_erases(tool_unix, seed_files):
    tool_unix("import-key", str(seed_files.key))
    tool_unix("set-pin", "--old-pin", "", "--new-pin", "246810")
    listed = json.loads(tool_unix("list", "--json").stdout)
    assert listed["login_required"] is True
    assert [o["class"] for o in listed["objects"]] == ["public-key"]     # the private key is hidden
    r = tool_unix("list")
    assert "--pin" in r.stderr
    assert len(_list(tool_unix, "--pin", "246810")) == 2
    assert len(_list(tool_unix, env={"P11BOARD_PIN": "246810"})) == 2
    r = tool_unix("--pin", "135790", "list", expect=1)
    assert "CKR_PIN_INCORRECT" in r.stderr and "the PIN is wrong" in r.stderr
    r = tool_unix("csr", "--subject", "CN=x", expect=5)
    assert "--pin" in r.stderr
    tool_unix("csr", "--subject", "CN=x", "--pin", "246810")
    tool_unix("set-pin", "--old-pin", "246810", "--new-pin", "112233")
    assert len(_list(tool_unix, "--pin", "112233")) == 2
    r = tool_unix("set-pin", "--old-pin", "246810", "--new-pin", "1", expect=1)
    assert "CKR_PIN_INCORRECT" in r.stderr

    r = tool_unix("init-token", "--so-pin", "so-secret", "--yes", "--label", "Fresh")
    info = json.loads(tool_unix("info", "--json").stdout)
    assert info["token"]["label"] == "Fresh"
    assert "user-pin-initialized" not in info["token"]["flags"]
    assert _list(tool_unix) == []
    r = tool_unix("init-token", "--so-pin", "not-it", "--yes", expect=1)
    assert "CKR_PIN_INCORRECT" in r.stderr
    tool_unix("init-token", "--so-pin", "so-secret", "--user-pin", "5555", "--yes")
    info = json.loads(tool_unix("info", "--json", "--pin", "5555").stdout)
    assert {"login-required", "user-pin-initialized"} <= set(info["token"]["flags"])
    r = tool_unix("init-token", "--so-pin", "so-secret", expect=6)
    assert "--yes" in r.stderr


def test_config_is_stored_on_the_device_and_survives_init_token(tool_unix, tmp_path):
    r = tool_unix("config")
    assert "not configured" in r.stdout
    tool_unix("config", "--endpoint", "a1b2c3-ats.iot.eu-west-1.amazonaws.com", "--thing-name", "dcgecc")
    stored = json.loads((tmp_path / "token" / "aws_clientcredential.json").read_text())
    assert stored == {"endpoint": "a1b2c3-ats.iot.eu-west-1.amazonaws.com", "thing_name": "dcgecc", "port": 8883}
    tool_unix("config", "--port", "443")
    assert json.loads(tool_unix("config", "--json").stdout)["port"] == 443
    info = json.loads(tool_unix("info", "--json").stdout)
    assert info["config"]["thing_name"] == "dcgecc"
    tool_unix("init-token", "--so-pin", "so-secret", "--yes")
    assert json.loads(tool_unix("config", "--json").stdout)["endpoint"].startswith("a1b2c3-ats")
    r = tool_unix("config", "--thing-name", "bad name!", expect=2)
    assert "thing names" in r.stderr
    r = tool_unix("config", "--endpoint", "https://x", expect=2)
    assert "host name" in r.stderr


def test_info_json(tool_unix):
    info = json.loads(tool_unix("info", "--json").stdout)
    assert info["platform"] == "linux"
    assert info["crypto_backend"] == "c"
    assert info["token"]["pin_length"] == [4, 64] or info["token"]["pin_length"][0] >= 1
    mechs = {m["mechanism"] for m in info["mechanisms"]}
    assert {"CKM_ECDSA", "CKM_ECDSA_SHA256", "CKM_RSA_PKCS", "CKM_SHA256_RSA_PKCS_PSS",
            "CKM_EC_KEY_PAIR_GEN"} <= mechs
    assert info["token_dir"].endswith("/token")


def test_exit_codes_for_usage_object_and_connection_errors(tool_unix, tmp_path):
    assert tool_unix("show", "nothing", expect=5).stderr.count("no object labelled") == 1
    r = tool_unix("csr", expect=2)                                       # --subject is required
    assert "--subject" in r.stderr
    r = tool_unix("csr", "--subject", "XX=1", expect=2)
    assert "unknown attribute" in r.stderr
    r = tool_unix("import-key", "x", "--label", "L" * 33, expect=4)       # the file is checked first
    tool_unix("generate-key", "--label", "L" * 33, expect=2)
    tool_unix("frobnicate", expect=2)

    from harness.p11board import P11Board
    none = P11Board(["--device", str(tmp_path / "no-such-port")], tmp_path)
    r = none("list", expect=3)
    assert "failed to access" in r.stderr
    missing = P11Board(["--unix", "--firmware", str(tmp_path / "nope")], tmp_path)
    r = missing("list", expect=3)
    assert "make unix" in r.stderr
    # a pty that answers nothing: no raw REPL
    import os, pty
    master, slave = pty.openpty()
    try:
        silent = P11Board(["--device", os.ttyname(slave), "--timeout", "3"], tmp_path)
        r = silent("list", expect=3)
        assert "raw REPL" in r.stderr
    finally:
        os.close(master)
        os.close(slave)


def test_tool_output_options_positions_and_help(tool_unix):
    # connection options work before and after the command
    before = tool_unix("--json", "list").stdout
    assert json.loads(before)["objects"] == []
    r = tool_unix("--help")
    assert "exit codes" in r.stdout and "5  object" in r.stdout
    r = tool_unix("list", "-q")
    assert r.stderr == ""
