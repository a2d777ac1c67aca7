"""An ESP32's flash for the unix firmware: a 4 MiB image file plus a stand-in
`esp32` module (harness/mpy_esp32/esp32.py, MicroPython) that serves
`esp32.Partition` from it, with the partition table of boards/ESP32_PKCS11."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .paths import ROOT

ESP32_STANDIN = Path(__file__).parent / "mpy_esp32" / "esp32.py"
ESP32_PARTITIONS = ROOT / "boards" / "ESP32_PKCS11" / "partitions.csv"
ESP32_FLASH_SIZE = 4 * 1024 * 1024


def esp32_partition(name: str, csv: Path = ESP32_PARTITIONS) -> tuple[int, int]:
    """(offset, size) of a partition in an ESP-IDF partition CSV."""
    for line in csv.read_text().splitlines():
        cols = [c.strip() for c in line.split("#", 1)[0].split(",")]
        if len(cols) >= 5 and cols[0] == name:
            return int(cols[3], 0), int(cols[4], 0)
    raise KeyError(name)


@dataclass
class Esp32Flash:
    image: Path
    partitions: Path
    env: dict[str, str] = field(default_factory=dict)

    def read(self, name: str) -> bytes:
        off, size = esp32_partition(name, self.partitions)
        with open(self.image, "rb") as f:
            f.seek(off)
            return f.read(size)

    def write(self, name: str, data: bytes, at: int = 0) -> None:
        off, size = esp32_partition(name, self.partitions)
        assert at + len(data) <= size
        with open(self.image, "r+b") as f:
            f.seek(off + at)
            f.write(data)


@pytest.fixture
def esp32_flash(unix_fw, tmp_path: Path) -> Esp32Flash:
    """An erased 4 MiB flash with the board's partition table; the stand-in
    `esp32` module is importable by unix_fw scripts (pass `env=esp32_flash.env`)."""
    image = tmp_path / "esp32-flash.img"
    image.write_bytes(b"\xff" * ESP32_FLASH_SIZE)
    shutil.copy(ESP32_STANDIN, unix_fw.work_dir / "esp32.py")
    env = {"ESP32_FLASH": str(image), "ESP32_PARTITIONS": str(ESP32_PARTITIONS),
           # empty: pkcs11.config falls through to /token, as on the board (and,
           # when /token is not mounted, to $HOME/..., kept inside the test)
           "PKCS11_TOKEN_DIR": "", "HOME": str(tmp_path / "home")}
    return Esp32Flash(image, ESP32_PARTITIONS, env)
