"""TLS client authentication through the token (p11tls) against `openssl s_server
-Verify 1 -verify_return_error`, on the unix firmware.

The token is provisioned the seed's way (key imported with C_CreateObject, then the
certificate, then "Root Cert"); p11tls finds them by label and signs the handshake with
C_Sign. The server proves the signature is right: it verifies the client certificate and
the CertificateVerify signature, then echoes our line reversed.
"""

from __future__ import annotations

import pytest

from harness.pki import LocalCA
from harness.tls_device import TokenPKI
from harness.token_files import SEED_CLIENT_ORDER

SUITES = {
    "sha256": ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "SHA256"),
    "sha384": ("TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384", "SHA384"),
}

CONNECT = """
import p11tls, pkcs11
try:
    s = p11tls.connect("127.0.0.1", {port}, server_hostname={hostname!r}, ciphers={ciphers!r}{extra})
    s.write(b"hello token\\n")
    print("reply", s.read(12))
    s.close()
except Exception as e:
    print("error", type(e).__name__, getattr(e, "rv", None), str(e))
"""


def connect(pki: TokenPKI, port: int, *, suite: str = "sha256", hostname: str = "localhost",
            extra: str = "") -> str:
    return pki.fw.run(CONNECT.format(port=port, hostname=hostname, ciphers=[SUITES[suite][0]],
                                     extra=extra))


@pytest.fixture
def server_cert(local_ca: LocalCA):
    return local_ca.issue_server()


@pytest.mark.parametrize("suite", ["sha256", "sha384"])
@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_connect_through_the_token(token_pki, openssl_server, local_ca, server_cert, key_type,
                                   suite):
    client = token_pki.add_identity(f"device-{key_type}", key_type)
    token_pki.add_root()
    # The server allows only the suite's hash (with other hashes allowed, SHA-256 is chosen:
    # tls/test_tls_sigalgs.py).
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path,
                            sigalgs=("ECDSA+" if key_type == "ec" else "RSA+") + SUITES[suite][1])
    out = connect(token_pki, server.port, suite=suite)
    assert "reply b'nekot olleh\\n'" in out, out
    assert server.wait_for("Verification: OK")
    assert f"Peer certificate: CN = device-{key_type}" in server.output
    assert f"Hash used: {SUITES[suite][1]}" in server.output
    assert f"Signature type: {'ECDSA' if key_type == 'ec' else 'RSA'}" in server.output
    token_pki.assert_no_secrets(out, server.output)
    assert client.key is not None


def test_key_not_matching_the_certificate_is_rejected_by_the_server(
        token_pki, openssl_server, local_ca, server_cert):
    other = token_pki.add_identity("spare", "ec", key_label="Spare Key", cert_label="Spare Cert")
    # The token's "Device Priv TLS Key" is a new key; "Device Cert" certifies `other`'s key.
    token_pki.add_identity("device-mismatch", "ec", cert_key=other.key)
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path)
    out = connect(token_pki, server.port)
    assert "error TLSError" in out, out
    assert "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE" in out or "MBEDTLS_ERR_SSL_CONN_EOF" in out
    assert server.wait_for("bad signature")
    assert "Verification: OK" not in server.output
    token_pki.assert_no_secrets(out, server.output)


def test_untrusted_server_certificate_is_refused(token_pki, openssl_server, rogue_ca):
    token_pki.add_identity("device-ec", "ec")
    token_pki.add_root()
    rogue = rogue_ca.issue_server()
    server = openssl_server(rogue.cert_path, rogue.key_path, token_pki.ca.root_path)
    out = connect(token_pki, server.port)
    assert ("error TLSError None MBEDTLS_ERR_X509_CERT_VERIFY_FAILED: the server certificate is "
            "not signed by the root CA in the token ('Root Cert')") in out, out
    assert "CONNECTION ESTABLISHED" not in server.output


def test_wrong_server_name_is_refused(token_pki, openssl_server, local_ca):
    token_pki.add_identity("device-ec", "ec")
    token_pki.add_root()
    elsewhere = local_ca.issue_server(("elsewhere.example",))
    server = openssl_server(elsewhere.cert_path, elsewhere.key_path, local_ca.root_path)
    out = connect(token_pki, server.port, hostname="localhost")
    assert ("error TLSError None MBEDTLS_ERR_X509_CERT_VERIFY_FAILED: the server certificate is "
            "not issued for 'localhost'") in out, out
    # The same server is accepted under its own name (the refusal was about the name).
    ok = connect(token_pki, server.port, hostname="elsewhere.example")
    assert "reply b'nekot olleh\\n'" in ok, ok


def test_root_ca_given_by_the_caller(token_pki, openssl_server, local_ca, server_cert):
    """Without "Root Cert" in the token the caller may pass the CA; without either, a clear error."""
    token_pki.add_identity("device-ec", "ec")
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path)
    out = connect(token_pki, server.port)
    assert "error TokenError None no root CA certificate labelled 'Root Cert' in the token" in out
    (token_pki.fw.work_dir / "root.pem").write_bytes(local_ca.root_pem)
    out = connect(token_pki, server.port, extra=', ca=open("root.pem").read()')
    assert "reply b'nekot olleh\\n'" in out, out


def test_key_without_sign_permission_fails_cleanly(token_pki, openssl_server, local_ca,
                                                   server_cert):
    token_pki.add_identity("device-nosign", "ec", sign=False)
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path)
    out = connect(token_pki, server.port)
    # The token's own error comes out of the handshake, with its CKR code.
    assert "error KeyFunctionNotPermitted 104 CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)" in out, out
    assert "Verification: OK" not in server.output
    token_pki.assert_no_secrets(out, server.output)


def test_unknown_cipher_suite_name(token_pki, openssl_server, local_ca, server_cert):
    token_pki.add_identity("device-ec", "ec")
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path)
    out = token_pki.fw.run(CONNECT.format(port=server.port, hostname="localhost",
                                          ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", extra=""))
    assert ("MBEDTLS_ERR_SSL_BAD_CONFIG: unknown cipher suite 'ECDHE-ECDSA-AES128-GCM-SHA256': "
            "use mbedTLS names") in out, out


def test_two_connections_with_different_token_keys(token_pki, openssl_server, local_ca,
                                                   server_cert):
    """Two TLS sockets open at once, each signed by its own token key (one EC, one RSA)."""
    token_pki.add_identity("device-a", "ec", key_label="Key A", cert_label="Cert A")
    token_pki.add_identity("device-b", "rsa", key_label="Key B", cert_label="Cert B")
    token_pki.add_root()
    one = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path)
    two = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path)
    out = token_pki.fw.run(f"""
import p11tls
a = p11tls.connect("127.0.0.1", {one.port}, server_hostname="localhost",
                   key_label="Key A", cert_label="Cert A")
b = p11tls.connect("127.0.0.1", {two.port}, server_hostname="localhost",
                   key_label="Key B", cert_label="Cert B")
a.write(b"from a\\n")
b.write(b"from b\\n")
print("a", a.read(7), "b", b.read(7))
b.write(b"b again\\n")
a.write(b"a again\\n")
print("a", a.read(8), "b", b.read(8))
a.close()
b.close()
""")
    assert "a b'a morf\\n' b b'b morf\\n'" in out
    assert "a b'niaga a\\n' b b'niaga b\\n'" in out
    assert one.wait_for("Peer certificate: CN = device-a")
    assert two.wait_for("Peer certificate: CN = device-b")
    assert "Signature type: ECDSA" in one.output
    assert "Signature type: RSA" in two.output
    token_pki.assert_no_secrets(out, one.output, two.output)


def test_session_given_by_the_caller_and_pin(token_pki, openssl_server, local_ca, server_cert):
    """With a user PIN set, the key is hidden until C_Login: p11tls logs in with pin=, or
    uses the caller's logged-in session (which it leaves open)."""
    token_pki.add_identity("device-pin", "ec")
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path)
    token_pki.fw.run("""
import pkcs11
from pkcs11.constants import *
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_SetPIN(h, b"", b"4711")
p11.C_Finalize()
""")
    out = connect(token_pki, server.port)
    assert ("error TokenError None no private key labelled 'Device Priv TLS Key' in the token "
            "(with a user PIN set") in out, out
    out = connect(token_pki, server.port, extra=', pin="4711"')
    assert "reply b'nekot olleh\\n'" in out, out
    out = token_pki.fw.run(f"""
import p11tls, pkcs11
from pkcs11.constants import *
with pkcs11.open_session(user_pin=b"4711") as s:
    t = p11tls.connect("127.0.0.1", {server.port}, server_hostname="localhost", session=s)
    t.write(b"with a session\\n")
    print("reply", t.read(15))
    t.close()
    print("still open", s.p11.C_GetSessionInfo(s.h) is not None)
""")
    assert "reply b'noisses a htiw\\n'" in out, out
    assert "still open True" in out


ALPN_CONNECT = """
import p11tls
s = p11tls.connect("127.0.0.1", {port}, server_hostname="localhost", alpn={alpn!r})
print("selected", s.selected_alpn_protocol())
s.write(b"alpn\\n")
print("reply", s.read(5))
s.close()
"""


def test_alpn_is_offered_and_the_servers_choice_reported(token_pki, openssl_server, local_ca,
                                                          server_cert):
    """AWS IoT on port 443 needs ALPN "x-amzn-mqtt-ca" (firmware/patches/tls-alpn.patch).
    A server only selects a protocol the client offered, so the selection proves the offer."""
    token_pki.add_identity("device-ec", "ec")
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path,
                            extra=("-alpn", "x-amzn-mqtt-ca"))
    out = token_pki.fw.run(ALPN_CONNECT.format(port=server.port, alpn=["x-amzn-mqtt-ca"]))
    assert "selected x-amzn-mqtt-ca" in out, out
    assert "reply b'npla\\n'" in out, out


def test_alpn_refused_by_the_server_names_alpn_in_the_hint(token_pki, openssl_server, local_ca,
                                                            server_cert):
    token_pki.add_identity("device-ec", "ec")
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path,
                            extra=("-alpn", "other-proto"))
    out = connect(token_pki, server.port, extra=', alpn=["x-amzn-mqtt-ca"]')
    assert "error TLSError" in out and "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE" in out, out
    assert "none of the ALPN protocols offered (x-amzn-mqtt-ca)" in out, out


# Every C_* call p11tls makes through the function list, with the arguments that
# say what it asked for (templates, attribute types, mechanism).
RECORDED_CONNECT = """
import json, p11tls, pkcs11
p11 = pkcs11.C_GetFunctionList()
calls = []
def recorder(name, f):
    def call(*a):
        calls.append([name] + [x for x in a[1:] if not isinstance(x, (bytes, bytearray, memoryview))])
        return f(*a)
    return call
for name in dir(p11):
    if name.startswith("C_"):
        setattr(p11, name, recorder(name, getattr(p11, name)))
s = p11tls.connect("127.0.0.1", {port}, server_hostname="localhost"{extra})
s.write(b"hello token\\n")
reply = s.read(12)
s.close()
print(json.dumps({{"reply": reply.decode(), "calls": calls}}))
"""


def _recorded_connect(pki: TokenPKI, port: int, extra: str = "") -> list:
    import json
    out = pki.fw.run(RECORDED_CONNECT.format(port=port, extra=extra))
    res = json.loads(out.strip().splitlines()[-1])
    assert res["reply"] == "nekot olleh\n"
    return res["calls"]


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_connect_makes_the_seeds_calls_in_the_seeds_order(token_pki, openssl_server, local_ca,
                                                          server_cert, key_type):
    """A connect through the Pythonic layer makes the seed's client authentication calls
    in the seed's order: open, find the key and read its type, find the certificate and
    read it, sign, close. Two differences, both expected: no C_GenerateRandom (the seed
    feeds its TLS stack's RNG from the token, this firmware's TLS has its own RNG), and
    "Root Cert" is found and read after the certificate when the caller gives no CA; an
    RSA key's modulus and exponent are read before the signature. Over TLS 1.2, the
    seed's protocol (over TLS 1.3 an RSA key signs with CKM_RSA_PKCS_PSS: test_tls13.py)."""
    token_pki.add_identity(f"device-{key_type}", key_type)
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path,
                            extra=("-tls1_2",))
    (token_pki.fw.work_dir / "root.pem").write_bytes(local_ca.root_pem)

    calls = _recorded_connect(token_pki, server.port, ', ca=open("root.pem").read()')
    names = [c[0] for c in calls]
    seed = [n for n in SEED_CLIENT_ORDER if n != "C_GenerateRandom"]
    # Not in the seed: the search for intermediate CAs ("Device Cert CA 1", none here).
    chain = ["C_FindObjectsInit", "C_FindObjects", "C_FindObjectsFinal"]
    seed[11:11] = chain
    if key_type == "rsa":
        seed.insert(seed.index("C_SignInit"), "C_GetAttributeValue")
    assert names == seed
    CKA_CLASS, CKA_LABEL, CKA_VALUE, CKA_KEY_TYPE = 0x0, 0x3, 0x11, 0x100
    finds = [c for c in calls if c[0] == "C_FindObjectsInit"]
    # (MicroPython's json writes the bytes labels as strings)
    assert [c[1] for c in finds] == [[[CKA_CLASS, 3], [CKA_LABEL, "Device Priv TLS Key"]],
                                     [[CKA_CLASS, 1], [CKA_LABEL, "Device Cert"]],
                                     [[CKA_CLASS, 1], [CKA_LABEL, "Device Cert CA 1"]]]
    reads = [c[2] for c in calls if c[0] == "C_GetAttributeValue"]
    assert reads[:2] == [[CKA_KEY_TYPE], [CKA_VALUE]]
    mechanism = [c[1] for c in calls if c[0] == "C_SignInit"]
    assert mechanism == [0x1041 if key_type == "ec" else 0x1]   # CKM_ECDSA / CKM_RSA_PKCS
    assert server.wait_for("Verification: OK")

    # the root CA from the token: its search and read come right after the certificate's
    calls = _recorded_connect(token_pki, server.port)
    names = [c[0] for c in calls]
    cert_read = 10
    assert names[:cert_read + 1] == seed[:cert_read + 1]
    assert names[cert_read + 1:cert_read + 5] == ["C_FindObjectsInit", "C_FindObjects",
                                                  "C_FindObjectsFinal", "C_GetAttributeValue"]
    assert names[:cert_read + 1] + names[cert_read + 5:] == seed
