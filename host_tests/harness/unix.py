"""Run MicroPython code on the unix firmware built from this repository."""

from __future__ import annotations

import os
import select
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .paths import MPREMOTE, UNIX_BIN


class FirmwareError(AssertionError):
    """The firmware exited non-zero; the message carries its output."""


def firmware_env(token_dir: Path, micropypath: str) -> dict[str, str]:
    """The environment for a unix firmware process with its own token directory."""
    env = dict(os.environ)
    env["PKCS11_TOKEN_DIR"] = str(token_dir)
    env["MICROPYPATH"] = micropypath
    return env


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
        # Only frozen modules and the test's own folder: never the source tree.
        full_env = firmware_env(self.token_dir, f".frozen:{self.work_dir}")
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


def require_unix_firmware() -> None:
    if not UNIX_BIN.exists():
        pytest.fail(f"{UNIX_BIN} is missing: run `make unix` first")


def _fresh_token_and_work_dirs(tmp_path: Path, work_name: str) -> tuple[Path, Path]:
    require_unix_firmware()
    token = tmp_path / "token"
    token.mkdir()
    work = tmp_path / work_name
    work.mkdir()
    return token, work


@pytest.fixture
def unix_fw(tmp_path: Path) -> UnixFirmware:
    token, work = _fresh_token_and_work_dirs(tmp_path, "work")
    return UnixFirmware(token_dir=token, work_dir=work)


class UnixPtyBoard:
    """The unix firmware's REPL on a pty (through socat), driven like a board by mpremote."""

    def __init__(self, token_dir: Path, work_dir: Path, binary: Path = UNIX_BIN) -> None:
        self.token_dir = token_dir
        self.work_dir = work_dir
        self.pty = str(work_dir / "ttyMP")
        env = firmware_env(token_dir, ".frozen")
        self._proc = subprocess.Popen(
            ["socat", f"PTY,link={self.pty},raw,echo=0",
             f"EXEC:{binary} -X heapsize=8M,pty,raw,echo=0,setsid,ctty"],
            env=env, cwd=work_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(self.pty):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise FirmwareError(f"socat did not create {self.pty}")
            time.sleep(0.02)
        self._wait_for_prompt(deadline)

    def _wait_for_prompt(self, deadline: float) -> None:
        # The firmware flushes input that arrives before its REPL switched the
        # terminal to raw mode (TCSAFLUSH): wait for the prompt, which is
        # printed after the switch, so mpremote's first bytes are not lost.
        fd = os.open(self.pty, os.O_RDWR | os.O_NOCTTY)
        seen = b""
        try:
            while not seen.endswith(b">>> "):
                left = deadline - time.monotonic()
                if left <= 0 or self._proc.poll() is not None:
                    self.stop()
                    raise FirmwareError(f"no REPL prompt on {self.pty}: {seen[-200:]!r}")
                if select.select([fd], [], [], min(left, 0.5))[0]:
                    seen += os.read(fd, 256)
        finally:
            os.close(fd)

    def mpremote(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(MPREMOTE), "connect", self.pty, *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise FirmwareError(f"mpremote {' '.join(args)} exited {proc.returncode}\n"
                                f"{proc.stdout}\n{proc.stderr}")
        return proc

    def exec(self, code: str, **kw: object) -> str:
        return self.mpremote("exec", textwrap.dedent(code), **kw).stdout  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@pytest.fixture
def unix_pty(tmp_path: Path):
    """A unix firmware REPL on a pty with a fresh token directory; stopped by PID."""
    board = UnixPtyBoard(*_fresh_token_and_work_dirs(tmp_path, "ptywork"))
    try:
        yield board
    finally:
        board.stop()
