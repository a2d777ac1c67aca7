"""Fixtures for the CLI (p11board) tests: run the CLI (from tools/, as a subprocess)
against this repository's unix or qemu firmware, and make the seed's files
with the seed's openssl commands."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .paths import BUILD, QEMU_ELF, ROOT
from .unix import require_unix_firmware


@dataclass
class ToolResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class P11Board:
    """`tool("list", "--json")` runs `p11board <board args> list --json`."""

    def __init__(self, board_args: list[str], cwd: Path) -> None:
        self.board_args = board_args
        self.cwd = cwd
        self.history: list[ToolResult] = []

    def __call__(self, *args: str, expect: int | None = 0, timeout: float = 300,
                 input: str | None = None, env: dict[str, str] | None = None) -> ToolResult:
        full_env = dict(os.environ)
        full_env["BUILD"] = str(BUILD)
        full_env["PYTHONPATH"] = str(ROOT / "tools")
        full_env.pop("P11BOARD_PIN", None)
        if env:
            full_env.update(env)
        proc = subprocess.run([sys.executable, "-m", "p11board.cli", *self.board_args, *args],
                              cwd=self.cwd, env=full_env, capture_output=True, text=True,
                              timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)
        res = ToolResult(proc.returncode, proc.stdout, proc.stderr)
        self.history.append(res)
        if expect is not None and proc.returncode != expect:
            raise AssertionError(f"p11board {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
                                 f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
        return res


@pytest.fixture
def tool_unix(tmp_path: Path) -> P11Board:
    """p11board --unix with a fresh token directory (tmp_path/token)."""
    require_unix_firmware()
    work = tmp_path / "toolwork"
    work.mkdir()
    return P11Board(["--unix", "--token-dir", str(tmp_path / "token"), "--create"], work)


@pytest.fixture
def tool_qemu(tmp_path: Path) -> P11Board:
    """p11board --qemu with a fresh flash image (tmp_path/qemu/flash.img); every
    call boots qemu anew on that image."""
    if not QEMU_ELF.exists():
        pytest.fail(f"{QEMU_ELF} is missing: run `make qemu` first")
    work = tmp_path / "toolwork"
    work.mkdir()
    return P11Board(["--qemu", "--flash", str(tmp_path / "qemu" / "flash.img"), "--create"], work)


def run_openssl(*args: str, cwd: Path) -> str:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


@dataclass
class SeedFiles:
    dir: Path
    key: Path        # the seed's step 2: openssl genpkey ... P-256 (PKCS#8 PEM)
    csr: Path        # the seed's step 3: openssl req -new -nodes -key ...
    cert: Path       # what create-certificate-from-csr returns: signed here by a local CA
    ca: Path         # the local CA (stand-in for Amazon's root)


@pytest.fixture
def seed_files(tmp_path: Path) -> SeedFiles:
    """The seed's key and certificate, made with the seed's openssl commands
    (the certificate is signed by a local CA instead of AWS IoT)."""
    d = tmp_path / "seed"
    d.mkdir()
    run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-pkeyopt", "ec_param_enc:named_curve", "-outform", "PEM", "-out", "dcgecc.key", cwd=d)
    run_openssl("req", "-new", "-nodes", "-key", "dcgecc.key", "-out", "dcgecc.req",
            "-subj", "/CN=dcgecc", cwd=d)
    run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=Test Root CA", cwd=d)
    run_openssl("x509", "-req", "-in", "dcgecc.req", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "dcgecc.crt", "-days", "30", cwd=d)
    return SeedFiles(d, d / "dcgecc.key", d / "dcgecc.req", d / "dcgecc.crt", d / "ca.pem")
