"""Debian's mosquitto as a local MQTT broker (tests, `make demo`).

It listens on 127.0.0.1 only, on free ports, with a generated configuration in its
own folder, and is stopped by its PID:

    broker = Mosquitto(workdir).start()               # plain TCP, anonymous allowed
    broker.port; broker.log_text(); broker.restart()
    broker = Mosquitto(workdir, plain=False, allow_anonymous=False,
                       tls=TLSListener(cafile=..., certfile=..., keyfile=...)).start()
    broker.tls_port; broker.wait_for_log("as thing-1"); broker.stop()
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BrokerError, ToolMissing

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TLSListener:
    """A mosquitto TLS listener. Paths are PEM files; extra lines go verbatim
    into the listener block (e.g. "ciphers ECDHE-ECDSA-AES128-GCM-SHA256",
    "tls_version tlsv1.2")."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = True
    use_identity_as_username: bool = True
    port: int | None = None
    extra: list[str] = field(default_factory=list)


class Mosquitto:
    """One mosquitto process with a generated config in `workdir`."""

    def __init__(self, workdir: Path, *, plain: bool = True, allow_anonymous: bool = True,
                 tls: TLSListener | None = None, passwords: dict[str, str] | None = None,
                 extra: list[str] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.port: int | None = free_port() if plain else None
        self.tls = tls
        if tls is not None and tls.port is None:
            tls.port = free_port()
        self.allow_anonymous = allow_anonymous
        self.passwords = passwords
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tls_port(self) -> int:
        if self.tls is None or self.tls.port is None:
            raise BrokerError("this broker has no TLS listener")
        return self.tls.port

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _config(self) -> str:
        lines = [
            # As root, mosquitto would switch to its own user, which cannot
            # write into the test's private tmp dir: stay the current user.
            f"user {getpass.getuser()}",
            "per_listener_settings false",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
            "log_timestamp true",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
        ]
        if self.passwords is not None:
            pwfile = self.workdir / "passwords"
            pwfile.write_text("")
            for user, password in self.passwords.items():
                subprocess.run([str(MOSQUITTO_PASSWD), "-b", str(pwfile), user, password],
                               check=True, capture_output=True)
            lines.append(f"password_file {pwfile}")
        lines += self.extra
        if self.port is not None:
            lines.append(f"listener {self.port} 127.0.0.1")
        if self.tls is not None:
            t = self.tls
            lines += [
                f"listener {t.port} 127.0.0.1",
                f"cafile {t.cafile}",
                f"certfile {t.certfile}",
                f"keyfile {t.keyfile}",
                f"require_certificate {'true' if t.require_certificate else 'false'}",
                f"use_identity_as_username {'true' if t.use_identity_as_username else 'false'}",
                *t.extra,
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10) -> "Mosquitto":
        """Start and wait until every listener accepts connections."""
        if self.proc is not None:
            raise BrokerError("mosquitto is running already")
        if not MOSQUITTO.exists():
            raise ToolMissing(f"{MOSQUITTO} is missing: run `make deps` (Debian package mosquitto)")
        self.conf_path.write_text(self._config())
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf_path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ports = [p for p in (self.port, self.tls.port if self.tls else None) if p]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.proc = None
                raise BrokerError(f"mosquitto exited at start: {err}\n{self.log_text()[offset:]}")
            text = self.log_text()[offset:]
            if " running" in text and all(f"on port {p}" in text for p in ports):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not start in {timeout} s:\n{self.log_text()[offset:]}")

    def stop(self) -> None:
        """SIGTERM by PID (mosquitto closes its clients' connections), then SIGKILL if needed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down for `down_for` seconds, start again on the same ports."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 10, count: int = 1) -> list[str]:
        """Wait until the regex `pattern` matches at least `count` log lines; return them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            hits = [line for line in self.log_text().splitlines() if rx.search(line)]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline:
                raise BrokerError(f"log never matched {pattern!r} x{count}:\n{self.log_text()}")
            time.sleep(0.05)
