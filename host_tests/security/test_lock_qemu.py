"""Locked production mode on the emulated board (issue 10, finding 1).

After `p11board lock` the board runs its application from boot and its REPL
takes no input: no mpremote command reaches Python, Ctrl-C does not stop the
application, and only erasing the token storage (the qemu flash image, keys
included) unlocks it. Flash that holds data but does not mount stays locked.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from harness.p11board import P11Board
from harness.paths import QEMU_ELF
from harness.qemu import QemuBoard

pytestmark = pytest.mark.qemu

# The application: signs through the token (what its TLS handshake does), then
# keeps running with a heartbeat. No network on the emulated board.
APP = """
import time, pkcs11
from pkcs11 import labels
s = pkcs11.open_session()
k = s.get_object(object_class=3, label=labels.LABEL_DEVICE_PRIVATE_KEY)
print("APP-SIG", k.sign(b"locked board").hex())
s.close()
n = 0
while True:
    n += 1
    print("APP-BEAT", n)
    time.sleep(0.2)
"""

PUBKEY = """
import pkcs11
from pkcs11 import labels
s = pkcs11.open_session()
print("PUB", s.get_object(object_class=2, label=labels.LABEL_DEVICE_PUBLIC_KEY).get(0x181)[0].hex())
s.close()
"""


def _beats(log: str) -> int:
    found = re.findall(r"APP-BEAT (\d+)", log)
    return int(found[-1]) if found else 0


def _wait_beats_after(board: QemuBoard, n: int, timeout: float = 60) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        b = _beats(board.uart_log)
        if b > n:
            return b
        time.sleep(0.1)
    raise AssertionError(f"the application stopped (last beat {n}):\n{board.uart_log[-1500:]}")


@pytest.fixture
def board_dir(tmp_path: Path) -> Path:
    if not QEMU_ELF.exists():
        pytest.fail(f"{QEMU_ELF} is missing: run `make qemu` first")
    return tmp_path


def test_lock_runs_app_and_closes_repl_until_erase(board_dir: Path) -> None:
    flash = board_dir / "qemu" / "flash.img"
    tool = P11Board(["--qemu", "--flash", str(flash), "--create"], board_dir)
    tool("generate-key")
    board = QemuBoard(board_dir / "board", elf=QEMU_ELF, flash=flash)
    with board:
        pub_hex = re.search(r"PUB ([0-9a-f]+)", board.exec(PUBKEY)).group(1)
        board.exec("f = open('main.py', 'w'); f.write(%r); f.close()" % APP)
    # No lock marker yet: the REPL answers (main.py runs first and loops, so
    # only the tool's lock check is made here, without booting main.py).
    r = tool("lock", "--yes")
    assert "locked" in r.output

    start = len(board.uart_log)
    with board:
        board.wait_for_log("locked: running main.py", start=start, timeout=60)
        log = board.wait_for_log("APP-BEAT 1", start=start, timeout=60)
        sig = bytes.fromhex(re.search(r"APP-SIG ([0-9a-f]+)", log[start:]).group(1))
        # The application signed with the token's key.
        point = bytes.fromhex(pub_hex)
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[-65:])
        der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        pub.verify(der, b"locked board", ec.ECDSA(hashes.SHA256()))

        # mpremote cannot get a raw REPL: nothing reaches Python.
        marker = "REACHED" + "PYTHON"
        proc = board.mpremote("exec", "print('REACHED' + 'PYTHON')", timeout=120, check=False)
        assert proc.returncode != 0, proc.stdout + proc.stderr
        assert marker not in proc.stdout
        proc = board.mpremote("fs", "ls", ":", timeout=120, check=False)
        assert proc.returncode != 0
        # Ctrl-C, Ctrl-D, Ctrl-B and typed code on the UART change nothing.
        beat = _beats(board.uart_log)
        fd = os.open(board.pty, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"\x03\x03\x04\x02\r\nprint('REACHED' + 'PYTHON')\r\n\x01print(1)\x04")
        finally:
            os.close(fd)
        beat = _wait_beats_after(board, beat + 5)
        log = board.uart_log[start:]
        assert marker not in log
        assert "KeyboardInterrupt" not in log
        assert "raw REPL" not in log
        assert ">>>" not in log

    # Erasing the token storage (the whole flash image on qemu) unlocks: the
    # REPL works again and the key is gone with the marker.
    size = flash.stat().st_size
    flash.write_bytes(b"\xff" * size)
    with board:
        out = board.exec("import _pkcs11, pkcs11\n"
                         "s = pkcs11.open_session()\n"
                         "print('KEYS', len(s.find_objects(object_class=3)), 'LOCKED', _pkcs11.locked())\n"
                         "s.close()")
        assert "KEYS 0 LOCKED False" in out


def test_unmountable_used_flash_stays_locked(board_dir: Path) -> None:
    """Token storage that holds data but does not mount (a damaged or tampered
    filesystem, which may still hold keys and the marker) keeps the REPL closed."""
    flash = board_dir / "board" / "flash.img"
    board = QemuBoard(board_dir / "board", elf=QEMU_ELF)
    with board:
        board.exec("print(1)")
    data = bytearray(flash.read_bytes())
    data[0:8192] = b"\x5a" * 8192          # both littlefs superblocks garbled
    flash.write_bytes(bytes(data))
    start = len(board.uart_log)
    with board:
        board.wait_for_log("locked: token storage does not mount", start=start, timeout=60)
        proc = board.mpremote("exec", "print('REACHED' + 'PYTHON')", timeout=120, check=False)
        assert proc.returncode != 0
        assert "REACHEDPYTHON" not in proc.stdout


def test_lock_refuses_without_key(tool_qemu: P11Board) -> None:
    r = tool_qemu("lock", "--yes", "--app", "frozen:app", expect=None)
    assert r.returncode != 0
    assert "no private key" in r.output


def test_lock_refuses_without_app(tool_qemu: P11Board) -> None:
    tool_qemu("generate-key")
    r = tool_qemu("lock", "--yes", "--force", "--app", "nothere.py", expect=None)
    assert r.returncode != 0
    assert "no application nothere.py" in r.output


def test_unix_firmware_has_no_locked_mode(tool_unix: P11Board) -> None:
    r = tool_unix("lock", "--yes", "--force", "--app", "frozen:app", expect=None)
    assert r.returncode != 0
    assert "no locked mode" in r.output
