"""The openssl s_server fixture (the launcher lives in p11lab.tls_server).

The server runs in `-rev` mode (each line received is sent back reversed), so a test
proves that data flows both ways after the handshake; its output (client certificate
subject, verification errors) is collected for assertions."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from p11lab.tls_server import OpenSSLServer


@pytest.fixture
def openssl_server() -> Iterator:
    """Factory: `openssl_server(cert, key, ca, cipher=..., sigalgs=...)` -> started server.
    Every server started by a test is stopped (by PID) when the test ends."""
    servers: list[OpenSSLServer] = []

    def start(cert: Path, key: Path, ca: Path, **kw) -> OpenSSLServer:
        server = OpenSSLServer(cert, key, ca, **kw)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
