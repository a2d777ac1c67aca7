"""`install-module` (p11bridge and p11board): the p11-kit module file that makes
p11-kit-proxy.so run `serve` for the board."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.paths import BUILD

BIN = BUILD / "venv" / "bin"


def test_install_module_writes_the_remote_line(tmp_path: Path) -> None:
    for tool in ("p11bridge", "p11board"):
        folder = tmp_path / tool
        proc = subprocess.run([str(BIN / tool), "install-module", "--device", "/dev/ttyUSB7",
                               "--name", "board", "--config-dir", str(folder)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        text = (folder / "board.module").read_text()
        remote = [line for line in text.splitlines() if line.startswith("remote:")]
        assert remote == [f"remote: |{BIN / tool} serve --device /dev/ttyUSB7"]
        # an existing file is kept unless --force
        again = subprocess.run([str(BIN / tool), "install-module", "--device", "/dev/ttyUSB8",
                                "--name", "board", "--config-dir", str(folder)],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "exists" in again.stderr
        assert "/dev/ttyUSB7" in (folder / "board.module").read_text()


def test_serve_without_a_board_answers_and_exits(tmp_path: Path) -> None:
    """p11-kit's version byte is answered before the board is touched; a client
    that hangs up ends the server."""
    proc = subprocess.run([str(BIN / "p11bridge"), "serve", "--device", str(tmp_path / "none")],
                          input=b"\x01", capture_output=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout == b"\x01"
