"""Run MicroPython code on the unix firmware built from this repository."""

from __future__ import annotations

import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from .paths import UNIX_BIN


class FirmwareError(AssertionError):
    """The firmware exited non-zero; the message carries its output."""


@dataclass
class UnixFirmware:
    """One fresh token directory per test; `run` executes a script on the firmware."""

    token_dir: Path
    work_dir: Path
    binary: Path = UNIX_BIN

    def run(self, code: str, *, check: bool = True, timeout: float = 300,
            env: dict[str, str] | None = None, heap: str = "8M") -> str:
        script = self.work_dir / "snippet.py"
        script.write_text(textwrap.dedent(code))
        proc = self.run_file(script, check=check, timeout=timeout, env=env, heap=heap)
        return proc.stdout

    def run_file(self, script: Path, *args: str, check: bool = True, timeout: float = 300,
                 env: dict[str, str] | None = None, heap: str = "8M") -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env["PKCS11_TOKEN_DIR"] = str(self.token_dir)
        # Only frozen modules and the test's own folder: never the source tree.
        full_env["MICROPYPATH"] = f".frozen:{self.work_dir}"
        if env:
            full_env.update(env)
        proc = subprocess.run(
            [str(self.binary), "-X", f"heapsize={heap}", str(script), *args],
            capture_output=True, text=True, timeout=timeout, env=full_env, cwd=self.work_dir,
        )
        if check and proc.returncode != 0:
            raise FirmwareError(
                f"{script.name} exited {proc.returncode}\n--- stdout ---\n{proc.stdout}"
                f"\n--- stderr ---\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def unix_fw(tmp_path: Path) -> UnixFirmware:
    if not UNIX_BIN.exists():
        pytest.fail(f"{UNIX_BIN} is missing: run `make unix` first")
    token = tmp_path / "token"
    token.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    return UnixFirmware(token_dir=token, work_dir=work)
