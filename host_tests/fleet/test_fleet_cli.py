"""`p11board load-claim` (tools/p11board/fleet.py) on the unix firmware through its
REPL (mpremote over a pty): the batch file, separate files, a claim key generated in
the token; then fleetprov provisions the board from what the tool stored."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from harness.fleet_lab import CLAIM_CN, TEMPLATE, Board, FleetLab, fleet  # noqa: F401
from harness.p11board import P11Board, ToolResult


def p11board(board: Board, *args: str, expect: int = 0) -> ToolResult:
    return P11Board(["--unix", "--token-dir", str(board.token_dir)], board.work_dir)(*args, expect=expect)


def batch_file(fleet: FleetLab, path: Path, serial: str) -> Path:
    path.write_text(json.dumps({
        "template": TEMPLATE, "endpoint": "127.0.0.1", "server_name": "localhost",
        "port": fleet.broker.port, "parameters": {"SerialNumber": serial},
        "claim_certificate": fleet.claim.cert_pem.decode(),
        "claim_private_key": fleet.claim.key_pem.decode(),
        "root_ca": fleet.ca.root_pem.decode()}))
    return path


def test_load_claim_from_batch_file_then_provision(fleet: FleetLab) -> None:
    board = fleet.board(load=False)
    batch = batch_file(fleet, board.work_dir / "batch.json", "CLI0001")
    p = p11board(board, "load-claim", str(batch))
    assert "claim identity stored" in p.stderr
    key_pem = fleet.claim.key_pem.decode()
    assert key_pem not in p.stdout + p.stderr
    view = board.inspect()
    assert view["objects"] == [["Certificate", "Claim Cert"], ["Certificate", "Root Cert"],
                               ["PrivateKey", "Claim Key"]]
    settings = json.loads((board.token_dir / "fleet_claim.json").read_text())
    assert settings == {"template": TEMPLATE, "endpoint": "127.0.0.1", "server_name": "localhost",
                        "port": fleet.broker.port, "parameters": {"SerialNumber": "CLI0001"}}
    # the claim key is stored once: a second load needs --replace
    p = p11board(board, "load-claim", str(batch), expect=5)
    assert "--replace" in p.stderr
    p11board(board, "load-claim", str(batch), "--replace", "--param", "SerialNumber=CLI0002")
    r = board.provision().result
    assert r["state"] == "provisioned" and r["thing"] == "mpy-CLI0002"


def test_load_claim_refuses_a_certificate_for_another_key(fleet: FleetLab) -> None:
    board = fleet.board(load=False)
    other = fleet.ca.issue_client("other-claim")
    batch = json.loads(batch_file(fleet, board.work_dir / "b.json", "X").read_text())
    batch["claim_certificate"] = other.cert_pem.decode()
    (board.work_dir / "b.json").write_text(json.dumps(batch))
    p = p11board(board, "load-claim", str(board.work_dir / "b.json"), expect=7)
    assert "not for the claim key" in p.stderr


def test_load_claim_usage_errors(fleet: FleetLab) -> None:
    board = fleet.board(load=False)
    cert = board.work_dir / "claim.pem"
    cert.write_bytes(fleet.claim.cert_pem)
    p = p11board(board, "load-claim", "--cert", str(cert), "--endpoint", "x.example", expect=2)
    assert "--template" in p.stderr
    p = p11board(board, "load-claim", "--cert", str(cert), "--template", "a/b", "--endpoint", "x", expect=2)
    assert "--template" in p.stderr


def test_claim_key_generated_in_the_token(fleet: FleetLab) -> None:
    # the claim key born in the token: CSR out, the CA signs it, the certificate in
    board = fleet.board(load=False)
    csr_path = board.work_dir / "claim.csr"
    p11board(board, "load-claim", "--generate-key", "--subject", f"CN={CLAIM_CN}", "--out", str(csr_path))
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    issued = fleet.ca.sign_csr(csr_path.read_bytes())
    (board.work_dir / "claim.pem").write_bytes(issued.cert_pem)
    (board.work_dir / "root.pem").write_bytes(fleet.ca.root_pem)
    p11board(board, "load-claim", "--cert", "claim.pem", "--ca", "root.pem", "--template", TEMPLATE,
            "--endpoint", "127.0.0.1", "--server-name", "localhost", "--port", str(fleet.broker.port),
            "--param", "SerialNumber=GEN0001")
    labels = board.labels()
    assert ["PrivateKey", "Claim Key"] in labels and ["Certificate", "Claim Cert"] in labels
    r = board.provision().result
    assert r["thing"] == "mpy-GEN0001"
