"""Certificate chains (issue 11 item 6): a device certificate issued by an intermediate CA,
against `openssl s_server` that trusts only the root.

The token holds one object per certificate: the device certificate ("Device Cert") and
its intermediates labelled "Device Cert CA 1" (its issuer), "Device Cert CA 2"...;
p11tls sends them after the device certificate (the firmware's load_cert_chain takes a
list: firmware/patches/tls-own-chain.patch). `p11board import-cert` of a PEM bundle
(device certificate first, then its issuers) stores them that way.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from harness.tls_device import TokenPKI
from p11lab.localca import Issued, LocalCA

CONNECT = """
import p11tls
try:
    s = p11tls.connect("127.0.0.1", {port}, server_hostname="localhost")
    s.write(b"hello token\\n")
    print("reply", s.read(12))
    s.close()
except Exception as e:
    print("error", type(e).__name__, str(e), p11tls.tls_error(e))
"""


def intermediate(parent: LocalCA, directory: Path, name: str) -> LocalCA:
    """A CA whose certificate `parent` signs (LocalCA makes a self-signed one: replaced)."""
    ca = LocalCA(directory, name)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(ca.cert.subject).issuer_name(parent.cert.subject)
            .public_key(ca.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                parent.key.public_key()), critical=False)
            .sign(parent.key, hashes.SHA256()))
    ca.cert = cert
    path = directory / "intermediate.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.root = Issued(cert, path)
    return ca


@pytest.fixture
def chain(tmp_path: Path, local_ca: LocalCA) -> list[LocalCA]:
    """[intermediate 1 (issued by the root), intermediate 2 (issued by 1)]."""
    one = intermediate(local_ca, tmp_path / "int1", "Test Intermediate CA 1")
    two = intermediate(one, tmp_path / "int2", "Test Intermediate CA 2")
    return [one, two]


@pytest.fixture
def server(openssl_server, local_ca: LocalCA):
    # Trusts only the root; -Verify 3 allows two intermediates below it.
    cert = local_ca.issue_server()
    return openssl_server(cert.cert_path, cert.key_path, local_ca.root_path,
                          extra=("-Verify", "3"))


def provision(pki: TokenPKI, issuer: LocalCA, cn: str, key_type: str,
              intermediates: list[LocalCA]) -> Issued:
    root = pki.ca
    pki.ca = issuer
    try:
        issued = pki.add_identity(cn, key_type)
    finally:
        pki.ca = root
    pki.add_root()
    for i, ca in enumerate(intermediates, 1):
        pki.add_root(ca, label=f"Device Cert CA {i}")
    return issued


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_device_certificate_from_an_intermediate(token_pki, chain, server, key_type):
    provision(token_pki, chain[0], f"chained-{key_type}", key_type, chain[:1])
    out = token_pki.fw.run(CONNECT.format(port=server.port))
    assert "reply b'nekot olleh\\n'" in out, out + server.output
    assert server.wait_for("Verification: OK")
    assert f"Peer certificate: CN = chained-{key_type}" in server.output
    token_pki.assert_no_secrets(out, server.output)


def test_two_intermediates_in_order(token_pki, chain, server):
    provision(token_pki, chain[1], "chained-2", "ec", [chain[1], chain[0]])
    out = token_pki.fw.run(CONNECT.format(port=server.port))
    assert "reply b'nekot olleh\\n'" in out, out + server.output
    assert server.wait_for("Verification: OK")


def test_without_the_intermediate_the_server_refuses(token_pki, chain, server):
    # What every device got before: the server cannot link the certificate to its root.
    provision(token_pki, chain[0], "unchained", "ec", [])
    out = token_pki.fw.run(CONNECT.format(port=server.port))
    # TLS 1.3: the server's verdict comes after the client's Finished, so on the first read.
    assert "error OSError" in out and "alert unknown_ca (48)" in out, out
    assert server.wait_for("unable to get local issuer certificate")
    assert "Verification: OK" not in server.output


def test_chain_label(unix_fw):
    out = unix_fw.run("import p11tls\nprint(p11tls.chain_label(b'Device Cert', 1), "
                      "p11tls.chain_label('Claim Cert', 2))")
    assert "b'Device Cert CA 1' b'Claim Cert CA 2'" in out


def test_p11board_imports_a_bundle_as_a_chain(tool_unix, unix_fw, local_ca, chain, server,
                                              tmp_path):
    # Key made on the host, the bundle device + intermediate, as AWS IoT's JITP/multi-account
    # registration hands it out; p11board imports the key, then the bundle.
    from p11lab.localca import new_key
    key = new_key("ec")
    issued = chain[0].certify(key, "bundled")
    key_path = tmp_path / "device.key"
    key_path.write_bytes(issued.key_pem)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(issued.cert_pem + chain[0].root.cert_pem)
    tool_unix("import-key", str(key_path))
    r = tool_unix("import-cert", str(bundle))
    assert "1 intermediate CA" in r.output, r.output
    tool_unix("import-ca", str(local_ca.root_path))
    out = unix_fw.run(CONNECT.format(port=server.port))
    assert "reply b'nekot olleh\\n'" in out, out + server.output
    assert server.wait_for("Verification: OK")
    # A new single certificate replaces the chain: the old intermediate goes.
    single = tmp_path / "single.pem"
    single.write_bytes(local_ca.certify(key, "direct").cert_pem)
    r = tool_unix("import-cert", "--replace", str(single))
    assert "removed 1 old one" in r.output, r.output
