"""A user's real mistakes with p11board: path typos, a certificate for another key,
a replaced key that leaves its old certificate, objects only a handle tells apart."""

from __future__ import annotations

import json
import subprocess

from harness.p11board import P11Board


def _objects(tool) -> list[dict]:
    return json.loads(tool("list", "--json").stdout)["objects"]


def test_a_typo_in_token_dir_or_flash_is_refused_unless_create(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    typo = tmp_path / "pkcs11-tokn"
    r = P11Board(["--unix", "--token-dir", str(typo)], work)("list", expect=2)
    assert str(typo) in r.stderr and "--create" in r.stderr and not typo.exists(), r.stderr
    r = P11Board(["--qemu", "--flash", str(tmp_path / "typo.img")], work)("list", expect=2)
    assert "typo.img does not exist" in r.stderr and "--create" in r.stderr, r.stderr
    assert not (tmp_path / "typo.img").exists()

    r = P11Board(["--unix", "--token-dir", str(typo), "--create"], work)("list")
    assert f"new token: created the empty token directory {typo}" in r.stderr, r.stderr
    r = P11Board(["--unix", "--token-dir", str(typo)], work)("info")
    assert "new token" not in r.stderr and str(typo) in r.stdout      # the directory is named


def test_certificate_of_another_key_is_refused_unless_forced(tool_unix, seed_files, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(tmp_path / "other.key"), "-out", str(tmp_path / "other.crt"),
                    "-days", "3", "-subj", "/CN=other"], check=True, capture_output=True)
    tool_unix("import-key", str(seed_files.key))
    r = tool_unix("import-cert", str(tmp_path / "other.crt"), expect=5)
    assert "refused, nothing changed" in r.stderr and "--force" in r.stderr, r.stderr
    r = tool_unix("import-cert", str(tmp_path / "other.crt"), "-q", expect=5)
    assert "refused" in r.stderr                                          # -q does not hide it
    assert "Device Cert" not in [o["label"] for o in _objects(tool_unix)]
    tool_unix("import-cert", str(seed_files.cert))                        # the right one

    # a new key would leave the old certificate: refused, then forced
    r = tool_unix("import-key", str(tmp_path / "other.key"), "--replace", expect=5)
    assert "Device Cert" in r.stderr and "--force" in r.stderr, r.stderr
    r = tool_unix("generate-key", "--replace", expect=5)
    assert "Device Cert" in r.stderr
    tool_unix("import-key", str(tmp_path / "other.key"), "--replace", "--force")
    tool_unix("import-cert", str(tmp_path / "other.crt"), "--replace")    # matches the new key


def test_destroy_by_handle_and_by_id(tool_unix, seed_files):
    tool_unix("import-key", str(seed_files.key))
    tool_unix("import-ca", str(seed_files.ca))
    objs = _objects(tool_unix)
    ca = next(o for o in objs if o["label"] == "Root Cert")
    r = tool_unix("destroy", "--handle", str(ca["handle"]), "--yes")
    assert "Root Cert" in r.stderr
    assert "Root Cert" not in [o["label"] for o in _objects(tool_unix)]
    key_id = next(o for o in objs if o["label"] == "Device Priv TLS Key")["id"]
    tool_unix("destroy", "--id", key_id, "--class", "private-key", "--yes")
    assert [o["label"] for o in _objects(tool_unix)] == ["Device Pub TLS Key"]
    r = tool_unix("destroy", "--handle", "4242", "--yes", expect=5)
    assert "handle 4242" in r.stderr
    r = tool_unix("destroy", "--yes", expect=2)
    assert "exactly one of" in r.stderr
