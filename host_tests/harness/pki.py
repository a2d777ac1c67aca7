"""The local certificate authority as pytest fixtures (the CA itself lives in demo/localca.py,
which `make demo` uses as its stand-in for AWS IoT's certificate authority)."""

from __future__ import annotations

import sys

import pytest

from .paths import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from demo.localca import Issued, LocalCA, new_key  # noqa: E402,F401


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """The trusted root for the TLS tests (shared by the session: it never changes)."""
    return LocalCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """A second, untrusted root: what it issues must be refused."""
    return LocalCA(tmp_path_factory.mktemp("rogue-pki"), name="Untrusted Root CA")
