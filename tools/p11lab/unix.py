"""This repository's unix firmware, as a process or as a board on a pty.

    fw = UnixFirmware(token_dir, work_dir)        # one process per script
    fw.run("import pkcs11; print(1)")             # -> what it printed
    fw.run_file(path, "arg")                      # -> CompletedProcess

    board = UnixPtyBoard(token_dir, work_dir)     # its REPL on a pty, like a board
    board.pty                                      # for mpremote / a serial tool
    board.exec("print(1)"); board.stop()

The token lives in `token_dir` (PKCS11_TOKEN_DIR); None keeps the firmware's own
default (~/.micropython/pkcs11-token). Only frozen modules are importable, plus the
work folder for `UnixFirmware`: never the source tree.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .errors import FirmwareError, ToolMissing


def firmware_env(token_dir: Path | str | None, micropypath: str) -> dict[str, str]:
    """The environment for a unix firmware process with its own token directory
    (None: the firmware's default one)."""
    env = dict(os.environ)
    if token_dir is not None:
        env["PKCS11_TOKEN_DIR"] = str(token_dir)
    else:
        env.pop("PKCS11_TOKEN_DIR", None)
    env["MICROPYPATH"] = micropypath
    return env


def _default_binary() -> Path:
    return paths.default_build() / "unix" / "micropython"


@dataclass
class UnixFirmware:
    """The firmware run once per script; `run` executes a snippet, `run_file` a file."""

    token_dir: Path | None
    work_dir: Path
    binary: Path = field(default_factory=_default_binary)

    def run(self, code: str, *, check: bool = True, timeout: float = 300,
            env: dict[str, str] | None = None, heap: str = "8M") -> str:
        script = self.work_dir / "snippet.py"
        script.write_text(textwrap.dedent(code))
        proc = self.run_file(script, check=check, timeout=timeout, env=env, heap=heap)
        return proc.stdout

    def run_file(self, script: Path, *args: str, check: bool = True, timeout: float = 300,
                 env: dict[str, str] | None = None, heap: str | None = "8M",
                 micropypath: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `script` with `args` (heap None: the firmware's default heap; micropypath
        None: frozen modules and the work folder); FirmwareError when it exits non-zero
        and `check`."""
        paths.require(self.binary, "unix")
        full_env = firmware_env(self.token_dir, micropypath or f".frozen:{self.work_dir}")
        if env:
            full_env.update(env)
        heap_args = ["-X", f"heapsize={heap}"] if heap else []
        proc = subprocess.run(
            [str(self.binary), *heap_args, str(script), *args],
            capture_output=True, text=True, timeout=timeout, env=full_env, cwd=self.work_dir,
        )
        if check and proc.returncode != 0:
            raise FirmwareError(
                f"{Path(script).name} exited {proc.returncode}\n--- stdout ---\n{proc.stdout}"
                f"\n--- stderr ---\n{proc.stderr}"
            )
        return proc


PROMPT = b">>> "


class UnixPtyBoard:
    """The unix firmware's REPL on a pty (socat), driven like a board by mpremote.

    Started when made; ready when the constructor returns: the firmware flushes input
    that arrives before its REPL has put the terminal in raw mode (TCSAFLUSH), so the
    launcher waits for the REPL prompt, which is printed after that switch. When the
    banner went by before the pty was opened, a carriage return (dropped by the flush
    if early, answered by a fresh prompt if not) brings the prompt back.
    """

    def __init__(self, token_dir: Path | str | None, work_dir: Path | str,
                 binary: Path | str | None = None, *, heap: str = "8M",
                 timeout: float = 20) -> None:
        self.token_dir = Path(token_dir) if token_dir is not None else None
        self.work_dir = Path(work_dir)
        self.binary = Path(binary) if binary is not None else _default_binary()
        self.pty = str(self.work_dir / "ttyMP")
        paths.require(self.binary, "unix")
        socat = shutil.which("socat")
        if socat is None:
            raise ToolMissing("the unix firmware on a pty needs socat (Debian: apt install socat)")
        binary_path = str(self.binary.resolve())
        if any(c in binary_path for c in " ,:!'\"\\"):
            raise FirmwareError(f"the firmware path {binary_path} has characters socat cannot pass")
        env = firmware_env(self.token_dir, ".frozen")
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [socat, f"PTY,link={self.pty},raw,echo=0",
             f"EXEC:{binary_path} -X heapsize={heap},pty,raw,echo=0,setsid,ctty"],
            env=env, cwd=self.work_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + timeout
            while not os.path.exists(self.pty):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise FirmwareError(f"socat did not create {self.pty}{self._stderr()}")
                time.sleep(0.02)
            self._wait_for_prompt(deadline)
        except BaseException:
            self.stop()
            raise

    def _stderr(self) -> str:
        p = self._proc
        if p is None or p.poll() is None or p.stderr is None:
            return ""
        text = p.stderr.read().decode(errors="replace").strip()
        return f": {text}" if text else ""

    def _wait_for_prompt(self, deadline: float) -> None:
        proc = self._proc
        fd = os.open(self.pty, os.O_RDWR | os.O_NOCTTY)
        seen = b""
        try:
            while not seen.endswith(PROMPT):
                left = deadline - time.monotonic()
                if left <= 0 or proc is None or proc.poll() is not None:
                    raise FirmwareError(f"no REPL prompt on {self.pty}: {seen[-200:]!r}{self._stderr()}")
                if select.select([fd], [], [], min(left, 0.5))[0]:
                    seen += os.read(fd, 256)
                else:
                    os.write(fd, b"\r")
        finally:
            os.close(fd)

    @property
    def pid(self) -> int | None:
        """socat's PID (the firmware is its child)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def mpremote(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*paths.mpremote_cmd(), "connect", self.pty, *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise FirmwareError(f"mpremote {' '.join(args)[:200]} exited {proc.returncode}\n"
                                f"{proc.stdout}\n{proc.stderr}")
        return proc

    def exec(self, code: str, **kw: object) -> str:
        return self.mpremote("exec", textwrap.dedent(code), **kw).stdout  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop socat by its PID (the firmware ends when its pty closes)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> "UnixPtyBoard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
