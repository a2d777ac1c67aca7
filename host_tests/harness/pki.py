"""The local certificate authority (p11lab.localca) as pytest fixtures."""

from __future__ import annotations

import pytest

from p11lab.localca import Issued, LocalCA, new_key  # noqa: F401


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """The trusted root for the TLS tests (shared by the session: it never changes)."""
    return LocalCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """A second, untrusted root: what it issues must be refused."""
    return LocalCA(tmp_path_factory.mktemp("rogue-pki"), name="Untrusted Root CA")
