"""Concurrent p11board commands on one token: each either succeeds with its object
stored, or fails at once with the busy exit code (3) and changes nothing.

Two writers on one qemu flash image used to lose objects while both reported
success (10 imports with rc=0, 2 objects missing afterwards)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time

import pytest

from harness.p11board import P11Board
from harness.paths import BUILD, ROOT


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["BUILD"] = str(BUILD)
    env["PYTHONPATH"] = str(ROOT / "tools")
    env.pop("P11BOARD_PIN", None)
    return env


def _labels(tool: P11Board) -> list[str]:
    return [o["label"] for o in json.loads(tool("list", "--json").stdout)["objects"]]


def _concurrent_imports(tool: P11Board, cert, n: int, tag: str) -> None:
    labels = [f"{tag} CA {i}" for i in range(n)]
    procs = [subprocess.Popen([sys.executable, "-m", "p11board.cli", *tool.board_args, "import-ca",
                               str(cert), "--label", label],
                              cwd=tool.cwd, env=_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for label in labels]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        results.append((p.returncode, out, err))
    present = _labels(tool)
    for label, (rc, _out, err) in zip(labels, results):
        assert rc in (0, 3), (label, rc, err)
        if rc == 0:
            assert present.count(label) == 1, (label, present, err)
        else:
            assert "busy" in err and "nothing was changed" in err, err
            assert label not in present, (label, present)
    assert any(rc == 0 for rc, _o, _e in results), results


def _hold_lock(path) -> int:
    fd = os.open(str(path), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_unix_token_dir_two_then_four_writers(tool_unix, seed_files):
    tool_unix("list")                                   # the token directory exists now
    _concurrent_imports(tool_unix, seed_files.ca, 2, "two")
    _concurrent_imports(tool_unix, seed_files.ca, 4, "four")


def test_unix_token_dir_busy_while_another_holds_it(tool_unix, seed_files, tmp_path):
    tool_unix("list")
    fd = _hold_lock(tmp_path / "token")
    try:
        started = time.monotonic()
        r = tool_unix("import-ca", str(seed_files.ca), expect=3)
        assert time.monotonic() - started < 30          # at once, not after a timeout
        assert "token directory" in r.stderr and "busy" in r.stderr, r.stderr
    finally:
        os.close(fd)
    assert "Root Cert" not in _labels(tool_unix)
    tool_unix("import-ca", str(seed_files.ca))          # free again
    assert "Root Cert" in _labels(tool_unix)


@pytest.mark.qemu
def test_qemu_flash_image_two_then_four_writers(tool_qemu, seed_files):
    tool_qemu("list")
    _concurrent_imports(tool_qemu, seed_files.ca, 2, "two")
    _concurrent_imports(tool_qemu, seed_files.ca, 4, "four")


@pytest.mark.qemu
def test_qemu_flash_image_busy_while_another_holds_it(tool_qemu, seed_files, tmp_path):
    tool_qemu("list")
    fd = _hold_lock(tmp_path / "qemu" / "flash.img")
    try:
        r = tool_qemu("import-ca", str(seed_files.ca), expect=3)
        assert "flash image" in r.stderr and "busy" in r.stderr, r.stderr
    finally:
        os.close(fd)
    assert "Root Cert" not in _labels(tool_qemu)


def test_serial_port_busy_while_another_holds_it(tmp_path):
    """A serial port held by another program (pyserial's exclusive lock is a flock
    too) is refused with exit 3 before anything is sent to it."""
    import pty
    master, slave = pty.openpty()
    port = os.ttyname(slave)
    fd = _hold_lock(port)
    try:
        r = subprocess.run([sys.executable, "-m", "p11board.cli", "-d", str(port), "list"],
                           env=_env(), capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
    finally:
        for f in (fd, master, slave):
            os.close(f)
    assert r.returncode == 3 and "serial port" in r.stderr and "busy" in r.stderr, r.stderr
