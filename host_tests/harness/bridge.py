"""Host programs reaching a board's token through p11-kit-proxy.so and
`p11bridge serve` (tools/p11bridge), the way a user sets it up:
`p11bridge install-module` writes $HOME/.config/pkcs11/modules/<name>.module.

p11-kit ignores a user's module files in a program running as root, so as root
every client program runs in a user namespace where it is uid 1000 (`unshare
--user --map-user=1000`); its files and the board's pty stay reachable. Where
user namespaces are refused (a chroot, a locked-down container), clients run as
root the way `install-module` tells root to: p11-kit-client.so with the module
file's remote command in P11_KIT_SERVER_ADDRESS.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from p11bridge.cli import client_path, proxy_path, remote_address
from p11lab import paths

BUILD = paths.default_build()
P11BRIDGE = BUILD / "venv" / "bin" / "p11bridge"
VENV_PYTHON = BUILD / "venv" / "bin" / "python"
TOKEN_LABEL = "MicroPython PKCS#11 token"


def proxy_module() -> str:
    """Path of p11-kit-proxy.so (Debian: p11-kit-modules)."""
    path = proxy_path()
    if path is None:
        pytest.fail("p11-kit-proxy.so not found: install p11-kit-modules (firmware/install-deps.sh)")
    return path


@functools.lru_cache(maxsize=None)
def _user_namespace() -> tuple[str, ...] | None:
    """The prefix that runs a client as an ordinary user ((): we are one), or None
    when we are root and no user namespace can be made."""
    if os.getuid() != 0:
        return ()
    prefix = ("unshare", "--user", "--map-user=1000", "--map-group=1000")
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=60)
    return prefix if probe.returncode == 0 else None


class BridgeClient:
    """A user whose p11-kit sees one board: HOME with the module file, and
    helpers that run host programs (pkcs11-tool, openssl, python-pkcs11) as them."""

    def __init__(self, home: Path, device: str, *, name: str = "board",
                 wait: float = 10.0, call_timeout: float = 60.0) -> None:
        self.home = home
        self.device = device
        self.proxy = proxy_module()
        home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("XDG_", "P11_KIT", "OPENSSL_"))}
        self.env["HOME"] = str(home)
        if not P11BRIDGE.exists():
            pytest.fail(f"{P11BRIDGE} is missing: run `make deps`")
        subprocess.run([str(P11BRIDGE), "install-module", "--device", device, "--name", name,
                        "--wait", str(wait), "--call-timeout", str(call_timeout), "--force"],
                       env=self.env, check=True, capture_output=True, text=True)
        self.module_file = home / ".config" / "pkcs11" / "modules" / f"{name}.module"
        prefix = _user_namespace()
        self.prefix: list[str] = list(prefix or ())
        if prefix is None:
            client = client_path()
            if client is None:
                pytest.fail("p11-kit-client.so not found: install p11-kit-modules (firmware/install-deps.sh)")
            self.proxy = client
            self.env["P11_KIT_SERVER_ADDRESS"] = remote_address(self.module_file)
            self.env["PKCS11_MODULE_PATH"] = client      # OpenSSL's pkcs11 engine (libp11)

    def run(self, *cmd: str, timeout: float = 120, check: bool = True,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([*self.prefix, *cmd], env=self.env, cwd=self.home, input=input,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout ---\n"
                                 f"{proc.stdout.decode(errors='replace')}\n--- stderr ---\n"
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    def popen(self, *cmd: str) -> subprocess.Popen[bytes]:
        """A client program running alongside the test (the caller stops it)."""
        return subprocess.Popen([*self.prefix, *cmd], env=self.env, cwd=self.home,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def tool(self, *args: str, **kw: object) -> str:
        """pkcs11-tool through the proxy, on our token; returns stdout."""
        proc = self.run("pkcs11-tool", "--module", self.proxy, "--token-label", TOKEN_LABEL,
                        *args, **kw)  # type: ignore[arg-type]
        return proc.stdout.decode(errors="replace")

    def python(self, code: str, *, timeout: float = 120, check: bool = True) -> str:
        """A python-pkcs11 script (PROXY is the proxy's path, LABEL the token's)."""
        script = self.home / "client.py"
        script.write_text(f"PROXY = {self.proxy!r}\nLABEL = {TOKEN_LABEL!r}\n"
                          + textwrap.dedent(code))
        return self.run(str(VENV_PYTHON), str(script), timeout=timeout,
                        check=check).stdout.decode(errors="replace")

    def spawn_python(self, code: str) -> "Interactive":
        """A python-pkcs11 script that runs alongside the test (stdin/stdout lines)."""
        script = self.home / f"client-{time.monotonic_ns()}.py"
        script.write_text(f"PROXY = {self.proxy!r}\nLABEL = {TOKEN_LABEL!r}\n"
                          + textwrap.dedent(code))
        return Interactive([*self.prefix, str(VENV_PYTHON), str(script)], self.env, self.home)


class Interactive:
    """A client process driven line by line; stopped by PID."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def expect(self, prefix: str, timeout: float = 60) -> str:
        """The next stdout line; it must start with prefix (else the output so far)."""
        import select

        assert self.proc.stdout is not None
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self.stop()
                raise AssertionError(f"no {prefix!r} line within {timeout} s")
            if select.select([self.proc.stdout], [], [], left)[0]:
                line = self.proc.stdout.readline()
                if not line:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise AssertionError(f"client exited before {prefix!r}: {err}")
                if line.startswith(prefix):
                    return line.rstrip("\n")
                raise AssertionError(f"expected {prefix!r}, got {line!r}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def bridge_unix(unix_pty, tmp_path: Path) -> Iterator[BridgeClient]:
    """The unix firmware on a pty (fresh token) as a p11-kit token of a fresh HOME."""
    yield BridgeClient(tmp_path / "home", unix_pty.pty)


@pytest.fixture
def bridge_qemu(qemu_board, tmp_path: Path) -> Iterator[BridgeClient]:
    """The qemu board (fresh flash) as a p11-kit token of a fresh HOME."""
    qemu_board.wait_for_log(">>> ")
    yield BridgeClient(tmp_path / "home", str(qemu_board.pty))
