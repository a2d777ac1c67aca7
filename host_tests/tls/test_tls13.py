"""TLS 1.3 client authentication through the token (issue 11 item 9, stretch).

The product's firmware speaks TLS 1.2 only. `make unix-tls13` (a dependency of `make
test`) builds boards/unix_tls13, the unix firmware with mbedTLS's TLS 1.3
($BUILD/unix-tls13/micropython); these tests run it
against `openssl s_server -tls1_3` and check that the CertificateVerify signature is
made by the token: ECDSA through mbedtls_pk_sign_ext -> the hook's TLS 1.2 path, RSA as
RSASSA-PSS through CKM_RSA_PKCS_PSS (salt = hash length).
"""

from __future__ import annotations

import pytest

from harness.paths import BUILD
from harness.tls_device import TokenPKI
from harness.unix import UnixFirmware

TLS13_BIN = BUILD / "unix-tls13" / "micropython"

CONNECT = """
import p11tls, pkcs11.pythonic as P
calls = []
_sign = P.PrivateKey.sign
def sign(self, data, mech=None, param=None):
    calls.append((len(data), mech))
    return _sign(self, data, mech, param)
P.PrivateKey.sign = sign
try:
    s = p11tls.connect("127.0.0.1", {port}, server_hostname="localhost")
    s.write(b"hello token\\n")
    print("reply", s.read(12))
    s.close()
except Exception as e:
    print("error", type(e).__name__, str(e))
print("calls", calls)
"""


@pytest.fixture
def tls13_pki(tmp_path, local_ca) -> TokenPKI:
    if not TLS13_BIN.exists():
        pytest.fail(f"{TLS13_BIN} is missing: run `make unix-tls13`")
    token = tmp_path / "token"
    work = tmp_path / "work"
    token.mkdir()
    work.mkdir()
    return TokenPKI(UnixFirmware(token_dir=token, work_dir=work, binary=TLS13_BIN), local_ca)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_tls13_certificate_verify_through_the_token(tls13_pki, openssl_server, local_ca, key_type):
    tls13_pki.add_identity(f"device13-{key_type}", key_type)
    tls13_pki.add_root()
    cert = local_ca.issue_server()
    server = openssl_server(cert.cert_path, cert.key_path, local_ca.root_path, extra=("-tls1_3",))
    out = tls13_pki.fw.run(CONNECT.format(port=server.port))
    assert "reply b'nekot olleh\\n'" in out, out + server.output
    assert server.wait_for("Verification: OK")
    assert f"Peer certificate: CN = device13-{key_type}" in server.output
    assert "Protocol version: TLSv1.3" in server.output or "TLSv1.3" in server.output, server.output
    if key_type == "ec":
        assert "calls [(32, 4161)]" in out, out          # CKM_ECDSA over a SHA-256 hash
        assert "Signature type: ECDSA" in server.output
    else:
        assert "calls [(" in out and ", (13, (" in out, out  # CKM_RSA_PKCS_PSS
        assert "Signature type: RSA-PSS" in server.output, server.output
    tls13_pki.assert_no_secrets(out, server.output)
