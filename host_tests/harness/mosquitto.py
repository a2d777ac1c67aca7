"""MQTT brokers for tests: Debian's mosquitto, and a scriptable fake broker.

Both listen on 127.0.0.1 only, on a free port, and are stopped at teardown
(mosquitto by its PID). Typical use:

    def test_x(mosquitto):                      # plain TCP broker, anonymous allowed
        mosquitto.port; mosquitto.log_text(); mosquitto.restart()

    def test_y(mosquitto_factory, tmp_path):    # TLS listener with client certificates
        broker = mosquitto_factory(tls=TLSListener(cafile=..., certfile=..., keyfile=...))
        broker.tls_port; broker.wait_for_log("as thing-1")

    def test_z(fake_broker):                    # raw bytes, scripted replies
        fake_broker.on_connect = lambda conn, pkt: conn.send(b"\\x20\\x02\\x00\\x00")
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
from typing import Callable, Iterator

import pytest

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
        assert self.tls is not None and self.tls.port is not None
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
        assert self.proc is None, "already running"
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
                raise RuntimeError(f"mosquitto exited at start: {err}\n{self.log_text()[offset:]}")
            text = self.log_text()[offset:]
            if " running" in text and all(f"on port {p}" in text for p in ports):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start in {timeout} s:\n{self.log_text()[offset:]}")

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
                raise AssertionError(f"log never matched {pattern!r} x{count}:\n{self.log_text()}")
            time.sleep(0.05)


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Factory: mosquitto_factory(**Mosquitto kwargs) -> a started broker; all stopped at teardown."""
    if not MOSQUITTO.exists():
        pytest.fail(f"{MOSQUITTO} is missing: run `make deps` (Debian package mosquitto)")
    started: list[Mosquitto] = []

    def make(**kwargs: object) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(broker)
        return broker.start()

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A plain-TCP mosquitto on 127.0.0.1 that allows anonymous clients."""
    return mosquitto_factory()


# ---------------------------------------------------------------- fake broker


@dataclass
class Packet:
    """One MQTT control packet as received by the fake broker."""

    first: int
    body: bytes
    at: float

    @property
    def type(self) -> int:
        return self.first >> 4

    @property
    def flags(self) -> int:
        return self.first & 0x0F

    def publish_fields(self) -> tuple[bytes, int | None, bytes]:
        """(topic, packet id or None, payload) of a PUBLISH."""
        tl = int.from_bytes(self.body[:2], "big")
        topic = self.body[2:2 + tl]
        rest = self.body[2 + tl:]
        if (self.first >> 1) & 3:
            return topic, int.from_bytes(rest[:2], "big"), rest[2:]
        return topic, None, rest


def encode_remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        d, n = n & 0x7F, n >> 7
        out.append(d | 0x80 if n else d)
        if not n:
            return bytes(out)


class FakeConnection:
    def __init__(self, sock: socket.socket, broker: "FakeBroker") -> None:
        self.sock = sock
        self.broker = broker
        self.packets: list[Packet] = []
        self.raw = bytearray()
        self.closed_by_peer = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        self.raw += buf
        return bytes(buf)

    def read_packet(self) -> Packet:
        first = self._recv_exact(1)[0]
        n, shift = 0, 0
        for _ in range(4):
            b = self._recv_exact(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        else:
            raise ValueError("malformed remaining length")
        return Packet(first, self._recv_exact(n), time.monotonic())


Handler = Callable[[FakeConnection, Packet], None]


def connack(session_present: bool = False, rc: int = 0) -> bytes:
    return bytes([0x20, 2, 1 if session_present else 0, rc])


def default_handler(conn: FakeConnection, pkt: Packet) -> None:
    """A minimal well-behaved broker: CONNACK, PUBACK, SUBACK (grant), UNSUBACK, PINGRESP."""
    t = pkt.type
    if t == 1:
        conn.send(connack())
    elif t == 3 and pkt.flags & 6:
        conn.send(b"\x40\x02" + pkt_publish_pid(pkt))
    elif t == 8:
        pid, codes = pkt.body[:2], subscribe_qos(pkt)
        conn.send(bytes([0x90]) + encode_remaining(2 + len(codes)) + pid + bytes(codes))
    elif t == 10:
        conn.send(b"\xb0\x02" + pkt.body[:2])
    elif t == 12:
        conn.send(b"\xd0\x00")


def pkt_publish_pid(pkt: Packet) -> bytes:
    tl = int.from_bytes(pkt.body[:2], "big")
    return pkt.body[2 + tl:4 + tl]


def subscribe_qos(pkt: Packet) -> list[int]:
    """Requested QoS of each filter in a SUBSCRIBE."""
    body, i, out = pkt.body, 2, []
    while i < len(body):
        tl = int.from_bytes(body[i:i + 2], "big")
        i += 2 + tl
        out.append(body[i])
        i += 1
    return out


class FakeBroker:
    """A TCP server in a thread that records every packet and answers through
    `handler(conn, packet)` (default: `default_handler`). Each accepted
    connection is kept in `connections`, in order."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or default_handler
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port: int = self.server.getsockname()[1]
        self.connections: list[FakeConnection] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                sock, _ = self.server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            conn = FakeConnection(sock, self)
            self.connections.append(conn)
            th = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            th.start()
            self._threads.append(th)

    def _serve(self, conn: FakeConnection) -> None:
        try:
            while True:
                pkt = conn.read_packet()
                conn.packets.append(pkt)
                self.handler(conn, pkt)
        except (EOFError, ConnectionError, OSError):
            conn.closed_by_peer = True
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.errors.append(e)
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass

    def wait_idle(self, timeout: float = 10) -> None:
        """Wait until every connection's reader has finished (the client
        closed it, e.g. because the firmware process ended)."""
        deadline = time.monotonic() + timeout
        for th in list(self._threads):
            th.join(timeout=max(0.0, deadline - time.monotonic()))

    def packets(self) -> list[Packet]:
        return [p for c in self.connections for p in c.packets]

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        for c in self.connections:
            c.close()
        self._accept.join(timeout=2)
        for th in self._threads:
            th.join(timeout=2)


def mp_prelude(port: int) -> str:
    """MicroPython lines that import mqtt and define tcp(): a connect callable
    opening a plain TCP socket to 127.0.0.1:port."""
    return (
        "import socket, time, mqtt\n"
        f"PORT = {port}\n"
        "def tcp():\n"
        "    s = socket.socket()\n"
        "    s.connect(socket.getaddrinfo('127.0.0.1', PORT)[0][-1])\n"
        "    return s\n"
    )


@pytest.fixture
def fake_broker() -> Iterator[FakeBroker]:
    broker = FakeBroker()
    yield broker
    broker.close()
    assert not broker.errors, broker.errors
