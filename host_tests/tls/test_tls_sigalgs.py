"""CertificateVerify hash chosen from the server's signature_algorithms (issue 11 item 5).

A TLS 1.2 server lists in its CertificateRequest the signature and hash pairs it accepts
for the client's CertificateVerify. mbedTLS used to sign with the cipher suite's hash
(SHA-384 for the AES-256-GCM suites) whatever the list said, so a server that allows only
ECDSA+SHA256 (or RSA+SHA512...) refused us. firmware/patches/tls-cv-hash.patch keeps the
SHA-256, SHA-384 and SHA-512 transcript hashes running and signs with the first of them,
in that order, that the server allows with the key's algorithm; the hook signs the hash it
is handed, through the token (C_Sign).

Each case runs `openssl s_server -client_sigalgs <list>` on 127.0.0.1 with both an
AES-128-GCM-SHA256 and an AES-256-GCM-SHA384 suite (a hash different from the suite's
is the case that failed), and checks the server's own report of the hash and signature
it verified.
"""

from __future__ import annotations

import pytest

from harness.tls_device import TokenPKI

SUITES = {
    "sha256": "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
    "sha384": "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
}

CONNECT = """
import p11tls
try:
    s = p11tls.connect("127.0.0.1", {port}, server_hostname="localhost", ciphers={ciphers!r})
    s.write(b"hello token\\n")
    print("reply", s.read(12))
    s.close()
except Exception as e:
    print("error", type(e).__name__, str(e))
"""


def connect(pki: TokenPKI, port: int, suite: str) -> str:
    return pki.fw.run(CONNECT.format(port=port, ciphers=[SUITES[suite]]))


@pytest.fixture
def server_cert(local_ca):
    return local_ca.issue_server()


@pytest.mark.parametrize("suite", ["sha256", "sha384"])
@pytest.mark.parametrize("key_type,sigalgs,hash_name", [
    ("ec", "ECDSA+SHA256", "SHA256"),
    ("ec", "ECDSA+SHA384", "SHA384"),
    ("ec", "ECDSA+SHA512", "SHA512"),
    ("rsa", "RSA+SHA256", "SHA256"),
    ("rsa", "RSA+SHA384", "SHA384"),
    ("rsa", "RSA+SHA512", "SHA512"),
    # SHA-256 first whatever the server's order; pairs for the other key type ignored.
    ("ec", "ECDSA+SHA512:ECDSA+SHA384:ECDSA+SHA256", "SHA256"),
    ("ec", "RSA+SHA256:ECDSA+SHA512", "SHA512"),
    ("rsa", "ECDSA+SHA256:RSA+SHA512:RSA+SHA384", "SHA384"),
])
def test_certificate_verify_uses_a_hash_the_server_allows(
        token_pki, openssl_server, local_ca, server_cert, key_type, sigalgs, hash_name, suite):
    token_pki.add_identity(f"device-{key_type}", key_type)
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path,
                            sigalgs=sigalgs)
    out = connect(token_pki, server.port, suite)
    assert "reply b'nekot olleh\\n'" in out, out + "\n" + server.output
    assert server.wait_for("Verification: OK")
    assert f"Peer certificate: CN = device-{key_type}" in server.output
    assert f"Hash used: {hash_name}" in server.output, server.output
    assert f"Signature type: {'ECDSA' if key_type == 'ec' else 'RSA'}" in server.output
    token_pki.assert_no_secrets(out, server.output)


@pytest.mark.parametrize("key_type,sigalgs", [("ec", "RSA+SHA256"), ("rsa", "ECDSA+SHA256")])
def test_server_allowing_no_pair_for_the_key_refuses_the_handshake(
        token_pki, openssl_server, local_ca, server_cert, key_type, sigalgs):
    # Nothing to choose: the client signs as before (the suite's hash) and the server
    # refuses; the user gets a TLSError, never a hang or a crash.
    token_pki.add_identity(f"device-{key_type}", key_type)
    token_pki.add_root()
    server = openssl_server(server_cert.cert_path, server_cert.key_path, local_ca.root_path,
                            sigalgs=sigalgs)
    out = connect(token_pki, server.port, "sha256")
    assert "error TLSError" in out, out
    assert "Verification: OK" not in server.output or "reply" not in out
    token_pki.assert_no_secrets(out, server.output)
