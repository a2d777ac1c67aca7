"""The Pythonic layer does not make duplicates the TLS code cannot use: a taken
label is refused unless replace=True, import_pem picks the label from what the
PEM is, and the device key and certificate cannot silently stop matching."""

from __future__ import annotations

from harness.token_files import P11_PRELUDE, TokenKeys, last_json

_PRELUDE = P11_PRELUDE + """
def kind(f, *a, **k):
    try:
        f(*a, **k)
        return "OK"
    except Exception as e:
        return type(e).__name__ + ": " + str(e)
def labels(s):
    return sorted([o.label.decode() for o in s.find_objects()])
R = {}
"""


def test_taken_labels_and_import_pem_labels(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    res = _run(unix_fw, """
with pkcs11.open_session() as s:
    s.import_pem(open("ec_sec1.pem", "rb").read())
    s.import_pem(open("ec_cert.pem", "rb").read())
    s.import_pem(open("ca_cert.pem", "rb").read())       # a CA: "Root Cert", not a 2nd "Device Cert"
    R["after"] = labels(s)
    R["gen"] = kind(s.generate_keypair)
    R["pem"] = kind(s.import_pem, open("ec_cert.pem", "rb").read())
    R["ca"] = kind(s.import_pem, open("ca_cert.pem", "rb").read())
    R["same"] = labels(s)
    R["ca_replace"] = kind(s.import_pem, open("ca_cert.pem", "rb").read(), replace=True)
    R["int"] = kind(s.import_pem, 42)
    R["ed"] = kind(s.import_key, open("ed25519.pem", "rb").read())
    R["final"] = labels(s)
print(json.dumps(R))
""")
    assert res["after"] == ["Device Cert", "Device Priv TLS Key", "Root Cert"]
    assert res["gen"].startswith("LabelTaken") and "replace=True" in res["gen"]
    assert res["pem"].startswith("LabelTaken") and "Device Cert" in res["pem"]
    assert res["ca"].startswith("LabelTaken") and "Root Cert" in res["ca"]
    assert res["same"] == res["after"]
    assert res["ca_replace"] == "OK"
    assert res["int"].startswith("TypeError") and "open(path, 'rb').read()" in res["int"]
    assert "not a supported private key: " in res["ed"] and "EC P-256" in res["ed"], res["ed"]
    assert res["final"] == res["after"]


def _run(unix_fw, body: str) -> dict:
    (unix_fw.work_dir / "ed25519.pem").write_bytes(ED25519)
    return last_json(unix_fw.run(_PRELUDE + body))


# openssl genpkey -algorithm ed25519 (a throwaway test key)
ED25519 = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHlqVzHMY6gG1ypn3kDe0Mjv6SeBQ2pIK7E8SlYbUVVu
-----END PRIVATE KEY-----
"""


def test_key_and_certificate_must_match_unless_forced(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    res = _run(unix_fw, """
with pkcs11.open_session() as s:
    s.import_key(open("ec_sec1.pem", "rb").read())
    R["rsa_cert"] = kind(s.import_certificate, open("rsa_cert.pem", "rb").read())   # another key's
    R["ok"] = kind(s.import_certificate, open("ec_cert.pem", "rb").read())
    R["new_key"] = kind(s.import_key, open("ec_pkcs8.pem", "rb").read(), replace=True)
    R["regen"] = kind(s.generate_keypair, replace=True)
    R["labels"] = labels(s)
    R["forced"] = kind(s.import_key, open("ec_pkcs8.pem", "rb").read(), replace=True, force=True)
    R["forced_cert"] = kind(s.import_certificate, open("rsa_cert.pem", "rb").read(), replace=True, force=True)
print(json.dumps(R))
""")
    assert res["rsa_cert"].startswith("KeyMismatch") and "force=True" in res["rsa_cert"], res
    assert res["ok"] == "OK"
    assert res["new_key"].startswith("KeyMismatch") and "Device Cert" in res["new_key"], res
    assert res["regen"].startswith("KeyMismatch"), res
    assert res["labels"] == ["Device Cert", "Device Priv TLS Key"]
    assert res["forced"] == "OK" and res["forced_cert"] == "OK"
