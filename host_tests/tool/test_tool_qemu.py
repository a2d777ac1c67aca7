"""p11board against the qemu board (Cortex-M3, littlefs on a flash image)."""

from __future__ import annotations

import json
import os
import tempfile
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.p11board import P11Board

pytestmark = pytest.mark.qemu


def _spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _objects(tool) -> set[tuple[str, str]]:
    return {(o["class"], o["label"]) for o in json.loads(tool("list", "--json").stdout)["objects"]}


def _verify_csr(path) -> None:
    r = subprocess.run(["openssl", "req", "-in", str(path), "-verify", "-noout"], capture_output=True, text=True)
    assert r.returncode == 0 and "verify OK" in r.stdout + r.stderr, r.stderr


def test_seed_provisioning_on_qemu_and_objects_survive_restarts(tool_qemu, seed_files, tmp_path):
    """Every p11board call boots qemu afresh on the same flash image."""
    tool_qemu("import-key", str(seed_files.key))
    tool_qemu("import-cert", str(seed_files.cert))
    tool_qemu("import-ca", str(seed_files.ca))
    assert (tmp_path / "qemu" / "flash.img").stat().st_size > 0          # the persistent image
    assert _objects(tool_qemu) == {("private-key", "Device Priv TLS Key"), ("public-key", "Device Pub TLS Key"),
                                   ("certificate", "Device Cert"), ("certificate", "Root Cert")}

    info = json.loads(tool_qemu("info", "--json").stdout)
    assert info["platform"] == "qemu" and info["mem_free"] > 50_000

    shown = json.loads(tool_qemu("show", "Device Cert", "--json").stdout)
    assert shown[0]["certificate"]["subject"] == "CN=dcgecc"
    assert shown[0]["certificate"]["issuer"] == "CN=Test Root CA"

    csr_file = tmp_path / "seed.csr"
    tool_qemu("csr", "--subject", "CN=dcgecc", "--out", str(csr_file))
    _verify_csr(csr_file)
    key = serialization.load_pem_private_key(seed_files.key.read_bytes(), None)
    assert _spki(x509.load_pem_x509_csr(csr_file.read_bytes()).public_key()) == _spki(key.public_key())

    r = tool_qemu("generate-key", "--label", "Board Key")
    generated = serialization.load_pem_public_key(r.stdout.encode())
    csr_file = tmp_path / "board.csr"
    tool_qemu("csr", "--label", "Board Key", "--subject", "CN=board-thing", "--out", str(csr_file))
    _verify_csr(csr_file)
    shown = json.loads(tool_qemu("show", "Board Key", "--class", "public-key", "--json").stdout)
    token_pub = serialization.load_pem_public_key(shown[0]["public_key"]["pem"].encode())
    assert _spki(x509.load_pem_x509_csr(csr_file.read_bytes()).public_key()) == _spki(token_pub) == _spki(generated)

    tool_qemu("destroy", "Board Key", "--yes")
    tool_qemu("config", "--endpoint", "abc-ats.iot.us-east-1.amazonaws.com", "--thing-name", "dcgecc")

    # a fresh boot on the same image: everything is still there
    assert _objects(tool_qemu) == {("private-key", "Device Priv TLS Key"), ("public-key", "Device Pub TLS Key"),
                                   ("certificate", "Device Cert"), ("certificate", "Root Cert")}
    assert json.loads(tool_qemu("config", "--json").stdout)["thing_name"] == "dcgecc"
    csr_file = tmp_path / "again.csr"
    tool_qemu("csr", "--subject", "CN=dcgecc", "--out", str(csr_file))
    assert _spki(x509.load_pem_x509_csr(csr_file.read_bytes()).public_key()) == _spki(key.public_key())


def test_tool_on_a_running_board_by_its_pty_across_a_qemu_restart(qemu_board, seed_files, tmp_path):
    """--device with the board's pty, as with a real board; the harness restarts qemu."""
    tool = P11Board(["--device", str(qemu_board.pty)], tmp_path)
    tool("import-key", str(seed_files.key), "--label", "Pty Key")
    tool("set-pin", "--old-pin", "", "--new-pin", "2468")
    assert _objects(tool) == {("public-key", "Pty Key")}               # private one hidden without PIN
    qemu_board.restart()
    tool = P11Board(["--device", str(qemu_board.pty)], tmp_path)
    r = tool("list", "--json", "--pin", "2468")
    assert {(o["class"], o["label"]) for o in json.loads(r.stdout)["objects"]} == {
        ("private-key", "Pty Key"), ("public-key", "Pty Key")}
    r = tool("csr", "--label", "Pty Key", "--subject", "CN=pty", "--pin", "2468")
    csr = x509.load_pem_x509_csr(r.stdout.encode())
    key = serialization.load_pem_private_key(seed_files.key.read_bytes(), None)
    assert csr.is_signature_valid and _spki(csr.public_key()) == _spki(key.public_key())
    tool("--pin", "1111", "list", expect=1)


def test_installed_copy_drives_qemu_from_outside_the_repository(tmp_path):
    """What `pip install .` installs (the packages named in pyproject.toml, copied out of
    the checkout) runs `--qemu` from another folder: p11lab, not host_tests, starts the
    board, and the build is found through BUILD; without BUILD the error says so."""
    import os
    import shutil
    import sys
    import tomllib

    from harness.paths import BUILD, ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(packages) == ["p11board", "p11bridge", "p11lab"]
    assert project["project"]["scripts"] == {"p11board": "p11board.cli:main", "p11bridge": "p11bridge.cli:main"}
    site = tmp_path / "site-packages"
    for name in packages:
        shutil.copytree(ROOT / "tools" / name, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("BUILD", "P11BOARD_PIN")}
    env["PYTHONPATH"] = str(site)

    def run(*args: str, build: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=elsewhere, capture_output=True, text=True,
                              timeout=300, env=dict(env, BUILD=str(BUILD)) if build else env)

    where = run("-c", "import p11board.cli, p11lab.paths as p; print(p.__file__, p.SOURCE_ROOT)")
    assert where.stdout.split() == [str(site / "p11lab" / "paths.py"), "None"], where.stderr
    r = run("-m", "p11board.cli", "--qemu", "--flash", str(tmp_path / "flash.img"), "--create", "--json", "info")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["board"].startswith("qemu board") and info["platform"] == "qemu"
    r = run("-m", "p11board.cli", "--qemu", "info", build=False)
    assert r.returncode == 3 and "set BUILD" in r.stderr, r.stderr




# The user's board: an application in main.py that never returns, and a boot.py
# that takes a while (waiting for a network, say), with or without Ctrl-C.
ENDLESS_APP = "import time\nn = 0\nwhile True:\n    n += 1\n    print('APP-BEAT', n)\n    time.sleep(0.2)\n"
SLOW_BOOT = "import time\nprint('BOOT-START')\ntime.sleep(3)\nprint('BOOT-END')\n"
BUSY_BOOT = ("import micropython, time\nmicropython.kbd_intr(-1)\nprint('BOOT-START')\n"
             "time.sleep(2)\nprint('BOOT-END')\n")


def _board_with_files(tmp_path, files: dict[str, str]):
    """A flash image with a key and `files`, and a (stopped) QemuBoard on it."""
    from harness.paths import QEMU_ELF
    from harness.qemu import QemuBoard

    flash = tmp_path / "qemu" / "flash.img"
    P11Board(["--qemu", "--flash", str(flash), "--create"], tmp_path)("generate-key")
    board = QemuBoard(tmp_path / "board", elf=QEMU_ELF, flash=flash)
    with board:
        for name, text in files.items():
            board.exec("f = open(%r, 'w'); f.write(%r); f.close()" % (name, text))
    return board


def test_connects_to_a_board_whose_boot_swallows_the_first_interrupt(tmp_path):
    """The tool starts the board and interrupts it at once, while it boots. Boot
    code that must not be interrupted (the firmware's own _boot.py, which mounts
    the token; here a boot.py that turns Ctrl-C off while it waits) takes that
    Ctrl-C as plain input, and main.py then runs for ever. The tool must
    interrupt again until the board answers, instead of failing with "no raw
    REPL" (seen on a loaded machine with `p11board --qemu lock`)."""
    board = _board_with_files(tmp_path, {"boot.py": BUSY_BOOT, "main.py": ENDLESS_APP})
    r = P11Board(["--qemu", "--flash", str(tmp_path / "qemu" / "flash.img")], tmp_path)(
        "list", "--json", timeout=120)
    assert {(o["class"], o["label"]) for o in json.loads(r.stdout)["objects"]} == {
        ("private-key", "Device Priv TLS Key"), ("public-key", "Device Pub TLS Key")}


def test_interrupts_only_the_running_program_not_the_soft_resets_boot_py(tmp_path):
    """Once the raw REPL answers, the tool soft-resets the board, which runs the
    user's boot.py again (3 s here); the tool waits for it instead of
    interrupting it."""
    board = _board_with_files(tmp_path, {"boot.py": SLOW_BOOT, "main.py": ENDLESS_APP})
    with board:
        board.wait_for_log("APP-BEAT 1")
        start = len(board.uart_log)
        assert _objects(P11Board(["--device", str(board.pty)], tmp_path)) == {
            ("private-key", "Device Priv TLS Key"), ("public-key", "Device Pub TLS Key")}
        log = board.uart_log[start:]
    assert "KeyboardInterrupt" in log                    # main.py was interrupted
    after_reset = log[log.index("soft reboot"):]
    assert "BOOT-START" in after_reset and "BOOT-END" in after_reset, after_reset
