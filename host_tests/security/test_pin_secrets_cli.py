"""Finding 9 (issue 10): p11board warns about PINs given as arguments, reads a
PIN from a file descriptor, and scrubs the board's free heap after import-key
(the key bytes left in freed memory are gone)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from harness.paths import ROOT, UNIX_BIN
from harness.unix import firmware_env

sys.path.insert(0, str(ROOT / "tools"))

from p11board import cli, device  # noqa: E402


def _args(*argv: str) -> argparse.Namespace:
    args = cli.build_parser().parse_args([*argv, "list"])
    cli._fill_defaults(args)
    return args


def test_pin_in_the_arguments_warns(capsys, monkeypatch) -> None:
    monkeypatch.delenv(cli.PIN_ENV, raising=False)
    args = _args("--unix", "--pin", "1234")
    assert args.pin == "1234"
    err = capsys.readouterr().err
    assert "--pin" in err and "ps" in err and "1234" not in err


def test_pin_from_env_does_not_warn(capsys, monkeypatch) -> None:
    monkeypatch.setenv(cli.PIN_ENV, "4321")
    args = _args("--unix")
    assert args.pin == "4321"
    assert capsys.readouterr().err == ""


def test_pin_from_a_file_descriptor(capsys, monkeypatch) -> None:
    monkeypatch.delenv(cli.PIN_ENV, raising=False)
    r, w = os.pipe()
    os.write(w, b"fd-pin-77\nrest\n")
    os.close(w)
    args = _args("--unix", "--pin-fd", str(r))
    assert args.pin == "fd-pin-77"
    assert capsys.readouterr().err == ""


def _heap_contains(pid: int, needle: bytes) -> bool:
    found = False
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if "rw" not in parts[1] or (len(parts) > 5 and parts[5].startswith("[v")):
                continue
            a, b = (int(x, 16) for x in parts[0].split("-"))
            try:
                mem.seek(a)
                if needle in mem.read(b - a):
                    found = True
            except (OSError, ValueError, OverflowError):
                continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/mem")
def test_import_key_scrub_clears_freed_copies(tmp_path) -> None:
    """Copies of a key in freed heap blocks are overwritten by WIPE_KEY (the
    unix firmware's heap is read through /proc while the process waits)."""
    code = """
import gc, sys, _pkcs11
secret = _pkcs11.random_bytes(32)
sys.stdout.buffer.write(secret.hex().encode() + b"\\n")
copy = bytes(bytearray(secret))   # a second heap copy, as parsing leaves them
_K = bytearray(secret)
secret = copy = None
gc.collect()
""" + device.WIPE_KEY + """
sys.stdout.buffer.write(b"scrubbed\\n")
sys.stdin.readline()
"""
    (tmp_path / "tok").mkdir()
    proc = subprocess.Popen([str(UNIX_BIN), "-X", "heapsize=2M", "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=firmware_env(tmp_path / "tok", ".frozen"))
    try:
        secret = bytes.fromhex(proc.stdout.readline().decode().strip())
        assert proc.stdout.readline().strip() == b"scrubbed"
        assert len(secret) == 32
        assert not _heap_contains(proc.pid, secret)
    finally:
        proc.kill()
        proc.wait()
