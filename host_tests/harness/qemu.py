"""The qemu board fixture (the launcher lives in p11lab.qemu)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from p11lab.qemu import QemuBoard, QemuError, SerialPty  # noqa: F401

from .paths import QEMU_ELF


@pytest.fixture
def qemu_board(tmp_path: Path) -> Iterator[QemuBoard]:
    """A running board with a fresh flash image in tmp_path/board."""
    if not QEMU_ELF.exists():
        pytest.fail(f"{QEMU_ELF} is missing: run `make qemu` first")
    board = QemuBoard(tmp_path / "board", elf=QEMU_ELF)
    board.start()
    try:
        yield board
    finally:
        board.stop()
