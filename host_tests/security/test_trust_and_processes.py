"""Findings 8 and 10 (issue 10): CKA_TRUSTED is set only by the SO (or on a
token with no SO PIN) and a trusted object is changed or destroyed only by the
SO; a PIN set by another process is seen by a running one (the token record is
re-read before PIN checks)."""

from __future__ import annotations

import subprocess

from harness.token_files import P11_PRELUDE, TokenKeys, last_json  # noqa: F401
from harness.unix import firmware_env

CA = P11_PRELUDE + """
def ca_obj(h, trusted):
    return p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                                  (CKA_TOKEN, True), (CKA_LABEL, b"Root CA"), (CKA_TRUSTED, trusted),
                                  (CKA_VALUE, @CERT@)])
"""


def _cert_der(tmp_path) -> bytes:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", "ca.key", "-subj", "/CN=Test Root", "-days", "3",
                    "-outform", "DER", "-out", "ca.der"], cwd=tmp_path, check=True, capture_output=True)
    return (tmp_path / "ca.der").read_bytes()


def test_trusted_only_by_the_so(unix_fw, tmp_path) -> None:
    cert = _cert_der(tmp_path)
    res = last_json(unix_fw.run(CA.replace("@CERT@", repr(cert)) + """
p11.C_Initialize()
p11.C_InitToken(0, b"so-pin-1", b"t")
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
R = {"public_trusted": ckr(ca_obj, h, True), "public_untrusted": ckr(ca_obj, h, False)}
p11.C_Login(h, CKU_SO, b"so-pin-1")
ca = ca_obj(h, True)
R["so_trusted"] = "OK"
p11.C_Logout(h)
R["public_destroy"] = ckr(p11.C_DestroyObject, h, ca)
R["public_relabel"] = ckr(p11.C_SetAttributeValue, h, ca, [(CKA_LABEL, b"evil")])
p11.C_Login(h, CKU_SO, b"so-pin-1")
R["so_destroy"] = ckr(p11.C_DestroyObject, h, ca)
print(json.dumps(R))
"""))
    assert res == {"public_trusted": "ATTRIBUTE_READ_ONLY", "public_untrusted": "OK", "so_trusted": "OK",
                   "public_destroy": "ACTION_PROHIBITED", "public_relabel": "ACTION_PROHIBITED",
                   "so_destroy": "OK"}


def test_trusted_on_a_token_without_so_pin(unix_fw, tmp_path) -> None:
    cert = _cert_der(tmp_path)
    res = last_json(unix_fw.run(CA.replace("@CERT@", repr(cert)) + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
print(json.dumps({"r": ckr(ca_obj, h, True)}))
"""))
    assert res == {"r": "OK"}


def test_a_pin_set_by_another_process_is_seen(unix_fw) -> None:
    """Process A is running with a PIN-less token; process B sets a user PIN;
    A's C_Login then checks against B's PIN (and a wrong one is counted)."""
    a = subprocess.Popen([str(unix_fw.binary), "-X", "heapsize=8M", "-c", P11_PRELUDE + """
import sys
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
print("ready")
sys.stdin.readline()
R = {"wrong": ckr(p11.C_Login, h, CKU_USER, b"not-it"), "right": ckr(p11.C_Login, h, CKU_USER, b"pin-from-b")}
print(json.dumps(R))
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=unix_fw.work_dir,
        env=firmware_env(unix_fw.token_dir, ".frozen"))
    try:
        assert a.stdout.readline().strip() == "ready"
        unix_fw.run(P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_SetPIN(h, b"", b"pin-from-b")
""")
        out, _ = a.communicate("go\n", timeout=120)
    finally:
        if a.poll() is None:
            a.kill()
    assert last_json(out) == {"wrong": "PIN_INCORRECT", "right": "OK"}


def test_p11tls_uses_only_a_trusted_root(unix_fw, tmp_path) -> None:
    cert = _cert_der(tmp_path)
    res = last_json(unix_fw.run(CA.replace("@CERT@", repr(cert)) + """
import socket, p11tls
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
                       (CKA_LABEL, p11tls.KEY_LABEL), (CKA_EC_PARAMS, P256), (CKA_VALUE, b"\\x07" * 32)])
p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509), (CKA_TOKEN, True),
                       (CKA_LABEL, p11tls.CERT_LABEL), (CKA_VALUE, @CERT@)])
p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509), (CKA_TOKEN, True),
                       (CKA_LABEL, p11tls.CA_LABEL), (CKA_VALUE, @CERT@)])
p11.C_CloseSession(h)
try:
    p11tls.wrap_socket(socket.socket(), "localhost")
    r = "no error"
except Exception as e:
    r = str(e)
print(json.dumps({"r": r}))
""".replace("@CERT@", repr(cert))))
    assert "not trusted" in res["r"]
