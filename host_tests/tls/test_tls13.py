"""TLS 1.3 (issue 11 item 9): the unix firmware (boards/unix) speaks TLS 1.3 and 1.2,
like the ESP32 boards; the qemu board stays at TLS 1.2 (its size is measured by
firmware/measure-tls13.sh). Against `openssl s_server`: the CertificateVerify
signature is made by the token (ECDSA through mbedtls_pk_sign_ext -> the hook's TLS 1.2
path, RSA as RSASSA-PSS through CKM_RSA_PKCS_PSS, salt = hash length); `ciphers=` with
TLS 1.2 suites only also keeps the client at TLS 1.2; a client certificate the server
refuses, which TLS 1.3 reports after the client's handshake is done, is named on the
first read.
"""

from __future__ import annotations

import pytest

from harness.pki import LocalCA

CONNECT = """
import p11tls, pkcs11.pythonic as P
calls = []
_sign = P.PrivateKey.sign
def sign(self, data, mech=None, param=None):
    calls.append((len(data), mech))
    return _sign(self, data, mech, param)
P.PrivateKey.sign = sign
try:
    s = p11tls.connect("127.0.0.1", {port}, server_hostname="localhost"{extra})
    s.write(b"hello token\\n")
    print("reply", s.read(12))
    s.close()
except Exception as e:
    print("error", type(e).__name__, str(e))
    t = p11tls.tls_error(e)
    print("named", t)
print("calls", calls)
"""


def connect(token_pki, port: int, extra: str = "") -> str:
    return token_pki.fw.run(CONNECT.format(port=port, extra=extra))


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_tls13_certificate_verify_through_the_token(token_pki, openssl_server, local_ca, key_type):
    token_pki.add_identity(f"device13-{key_type}", key_type)
    token_pki.add_root()
    cert = local_ca.issue_server()
    server = openssl_server(cert.cert_path, cert.key_path, local_ca.root_path, extra=("-tls1_3",))
    out = connect(token_pki, server.port)
    assert "reply b'nekot olleh\\n'" in out, out + server.output
    assert server.wait_for("Verification: OK")
    assert f"Peer certificate: CN = device13-{key_type}" in server.output
    assert "Protocol version: TLSv1.3" in server.output, server.output
    if key_type == "ec":
        assert "calls [(32, 4161)]" in out, out          # CKM_ECDSA over a SHA-256 hash
        assert "Signature type: ECDSA" in server.output
    else:
        assert "calls [(" in out and ", (13, (" in out, out  # CKM_RSA_PKCS_PSS
        assert "Signature type: RSA-PSS" in server.output, server.output
    token_pki.assert_no_secrets(out, server.output)


def test_a_server_with_both_versions_gets_tls13(token_pki, openssl_server, local_ca):
    token_pki.add_identity("device13-default", "ec")
    token_pki.add_root()
    cert = local_ca.issue_server()
    server = openssl_server(cert.cert_path, cert.key_path, local_ca.root_path)
    out = connect(token_pki, server.port)
    assert "reply b'nekot olleh\\n'" in out, out + server.output
    assert "Protocol version: TLSv1.3" in server.output, server.output


def test_tls12_suites_keep_the_client_at_tls12(token_pki, openssl_server, local_ca):
    """mbedTLS offers TLS 1.3 even when the suites set are all TLS 1.2 ones; a server
    that picks TLS 1.3 then finds "no shared cipher". The suites choose the versions
    (firmware/patches/tls-ciphers-set-versions.patch), as OpenSSL's separate lists do."""
    token_pki.add_identity("device13-pinned", "ec")
    token_pki.add_root()
    cert = local_ca.issue_server()
    server = openssl_server(cert.cert_path, cert.key_path, local_ca.root_path)
    out = connect(token_pki, server.port, ", ciphers='TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256'")
    assert "reply b'nekot olleh\\n'" in out, out + server.output
    assert "Protocol version: TLSv1.2" in server.output, server.output
    assert "Verification: OK" in server.output


def test_a_refused_client_certificate_is_named_on_the_first_read(token_pki, openssl_server, local_ca):
    """In TLS 1.3 the server checks the client certificate after the client has
    finished its handshake: connect() returns, and the server's alert comes with the
    first read. It must be named there (firmware/patches/tls-read-alerts.patch,
    p11tls.tls_error), not be a bare OSError(-30592)."""
    token_pki.add_identity("device13-unknown", "ec")
    token_pki.add_root()
    other_ca = LocalCA(local_ca.dir.parent / "other-ca", "Other Root CA")   # the only CA the server trusts
    cert = local_ca.issue_server()
    server = openssl_server(cert.cert_path, cert.key_path, other_ca.root_path, extra=("-tls1_3",))
    out = connect(token_pki, server.port)
    assert "error OSError" in out and "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE" in out, out
    assert "named MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: the server sent alert unknown_ca (48)" in out, out
    assert "Verification: OK" not in server.output
