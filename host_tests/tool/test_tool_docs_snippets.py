"""Every code snippet of the README and docs that is meant to run, runs as written:
the ```python blocks on the unix firmware (a token with a device key), and the
walkthrough's `$P ...` provisioning lines (the ones that need no AWS account)
through p11board --unix, with a local CA standing in for AWS IoT. Blocks that need
a broker or AWS (fleet provisioning) are fenced ```py and run by their own tests
(host_tests/fleet/)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness.paths import BUILD, ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "demo" / "README.md"]


def _blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"^( *)```" + lang + r"\n(.*?)^\1```", text, re.S | re.M):
            body = "\n".join(line[len(m.group(1)):] for line in m.group(2).splitlines())
            out.append((f"{doc.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}", body))
    return out


PYTHON = _blocks("python")


def test_there_are_python_snippets():
    assert len(PYTHON) >= 2, PYTHON


@pytest.mark.parametrize("where,code", PYTHON, ids=[w for w, _ in PYTHON])
def test_python_snippet_runs_verbatim(unix_fw, where, code):
    unix_fw.run("import pkcs11\nwith pkcs11.open_session() as s:\n    s.generate_keypair()\n")
    unix_fw.run(code)        # raises with the snippet's stdout and stderr when it fails


def _p_lines(doc: Path) -> list[str]:
    """The walkthrough's `$P ...` command lines (continuations joined), in order."""
    text = doc.read_text()
    # way A, then the PIN section: way B would import the same labels again
    text = text[:text.index("## B.")] + text[text.index("## Protecting the token"):]
    text = text.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(r"^\s*(\$P .*)$", text, re.M)]


def test_walkthrough_p11board_lines_run_verbatim(tmp_path):
    """$P lines that need AWS ($(aws ...)) get the local stand-in's answer instead."""
    from p11lab.localca import LocalCA

    lines = _p_lines(ROOT / "docs" / "aws-iot-walkthrough.md")
    assert any("generate-key" in l for l in lines) and any("init-pin" in l for l in lines), lines
    home = tmp_path / "home"
    home.mkdir()
    ca = LocalCA(tmp_path / "ca", name="Walkthrough CA")
    env = dict(os.environ, HOME=str(home), BUILD=str(BUILD), PYTHONPATH=str(ROOT / "tools"))
    env.pop("P11BOARD_PIN", None)
    env["P"] = f"{BUILD}/venv/bin/p11board --unix --token-dir {home}/.micropython/pkcs11-token --create"
    (tmp_path / "AmazonRootCA1.pem").write_bytes(ca.root_pem)
    ran = []
    for line in lines:
        line = re.sub(r'"\$\(aws iot describe-endpoint[^)]*\)"', "abc-ats.iot.eu-west-1.amazonaws.com", line)
        line = line.split("  #")[0].strip()
        if "$(" in line or "<" in line:
            continue
        if "import-cert dcgecc.crt" in line and not (tmp_path / "dcgecc.crt").exists():
            if not (tmp_path / "dcgecc.req").exists():
                continue
            cert = ca.sign_csr((tmp_path / "dcgecc.req").read_bytes())
            (tmp_path / "dcgecc.crt").write_bytes(cert.cert_pem)
        if "import-key dcgecc.key" in line:
            continue                      # way B: the key from openssl (way A already made one)
        r = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        ran.append(line)
    assert any("csr" in l for l in ran) and any("import-cert" in l for l in ran), ran
