"""Fixtures for the unix firmware (the launchers live in p11lab.unix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from p11lab.unix import FirmwareError, UnixFirmware, UnixPtyBoard, firmware_env  # noqa: F401

from .paths import UNIX_BIN


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
    """One fresh token directory per test; `run` executes a script on the firmware."""
    token, work = _fresh_token_and_work_dirs(tmp_path, "work")
    return UnixFirmware(token_dir=token, work_dir=work, binary=UNIX_BIN)


@pytest.fixture
def unix_pty(tmp_path: Path):
    """A unix firmware REPL on a pty with a fresh token directory; stopped by PID."""
    board = UnixPtyBoard(*_fresh_token_and_work_dirs(tmp_path, "ptywork"), binary=UNIX_BIN)
    try:
        yield board
    finally:
        board.stop()
