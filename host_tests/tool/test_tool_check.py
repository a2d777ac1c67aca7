"""`p11board check`: a provisioned token is checked without AWS: the stored endpoint
and thing, key and certificate, and a live MQTT connect/publish through the token
to a local mosquitto on 127.0.0.1 that trusts the CA that issued the certificate."""

from __future__ import annotations

from p11lab.localca import LocalCA


def test_check_a_locally_provisioned_token(tool_unix, tmp_path):
    r = tool_unix("check", expect=5)                                 # nothing provisioned yet
    assert "FAIL  configuration" in r.stdout and "FAIL  private key" in r.stdout, r.stdout

    ca = LocalCA(tmp_path / "ca", name="Check Local CA")
    tool_unix("generate-key")
    tool_unix("csr", "--subject", "CN=check-thing", "--out", str(tmp_path / "d.csr"))
    cert = ca.sign_csr((tmp_path / "d.csr").read_bytes())
    tool_unix("import-cert", str(cert.cert_path))
    tool_unix("import-ca", str(ca.root_path))
    tool_unix("config", "--endpoint", "abc123-ats.iot.eu-west-1.amazonaws.com", "--thing-name", "check-thing")

    r = tool_unix("check")                                           # static checks only
    assert "FAIL" not in r.stdout and "the certificate is the private key's" in r.stdout, r.stdout
    assert "--ca" in r.stderr

    r = tool_unix("check", "--ca", str(ca.root_path))
    assert "FAIL" not in r.stdout, r.output
    assert "ok    MQTT connect as 'check-thing'" in r.stdout and "ok    publish and receive" in r.stdout

    other = LocalCA(tmp_path / "other", name="Another CA")
    r = tool_unix("check", "--ca", str(other.root_path), expect=5)
    assert "FAIL  issued by --ca" in r.stdout, r.stdout


def test_check_live_needs_the_unix_board(tmp_path):
    from harness.p11board import P11Board
    (tmp_path / "ca.pem").write_text("x")
    r = P11Board(["--device", "/dev/ttyUSB9"], tmp_path)("check", "--ca", str(tmp_path / "ca.pem"), expect=2)
    assert "--unix" in r.stderr
