"""MQTT brokers for tests: fixtures around p11lab's mosquitto launcher, and a
scriptable fake broker (test-only).

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

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from p11lab.mosquitto import MOSQUITTO, Mosquitto, TLSListener, free_port  # noqa: F401


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
