"""`openssl s_server` on 127.0.0.1 requiring a client certificate (TLS tests, `make bench`).

The server runs in `-rev` mode (each line received is sent back reversed), so a test
proves that data flows both ways after the handshake. It listens on a free port chosen
by the kernel and is stopped by its PID. Its output (client certificate subject,
verification errors) is collected for assertions.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from .errors import ServerError, ToolMissing


class OpenSSLServer:
    """One `openssl s_server -Verify 1 -verify_return_error` process."""

    def __init__(self, cert: Path, key: Path, ca: Path, *, cipher: str | None = None,
                 sigalgs: str | None = None, extra: tuple[str, ...] = ()) -> None:
        self.cmd = ["openssl", "s_server", "-accept", "127.0.0.1:0",
                    "-cert", str(cert), "-key", str(key), "-CAfile", str(ca),
                    "-Verify", "1", "-verify_return_error", "-rev", "-ign_eof"]
        if cipher:
            self.cmd += ["-cipher", cipher]
        if sigalgs:
            self.cmd += ["-client_sigalgs", sigalgs]
        self.cmd += list(extra)
        self.port = 0
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 10) -> "OpenSSLServer":
        if shutil.which("openssl") is None:
            raise ToolMissing("openssl s_server needs openssl (Debian: apt install openssl)")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self.port:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerError("openssl s_server did not start:\n" + self.output)
            time.sleep(0.02)
        return self

    def _read(self) -> None:
        if self.proc is None or self.proc.stdout is None:
            return
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ACCEPT ") and not self.port:
                self.port = int(line.rsplit(":", 1)[1])

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 10) -> bool:
        """True once `text` appears in the server's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            time.sleep(0.05)
        return text in self.output

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
