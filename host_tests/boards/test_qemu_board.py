"""The emulated MPS2-AN385 board: firmware contents, mpremote, flash, time, UART."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.qemu import QemuBoard

pytestmark = pytest.mark.qemu


def test_frozen_package_and_c_module(qemu_board: QemuBoard) -> None:
    out = qemu_board.exec(
        "import os, sys, pkcs11, _pkcs11\n"
        "print(pkcs11.__file__, 'pkcs11' in os.listdir('/'))\n"
        "print('API', _pkcs11.API_VERSION)\n"
        "print(sys.platform, sys.implementation._machine)\n"
    )
    lines = out.replace("\r", "").split("\n")
    # Imported from the firmware: the board's filesystem is empty.
    assert lines[0] == "pkcs11/__init__.py False", out
    api = lines[1].split()
    assert api[0] == "API" and int(api[1]) >= 1, out
    assert lines[2].startswith("qemu ") and "Cortex-M3" in lines[2], out


def test_mbedtls_with_host_entropy(qemu_board: QemuBoard) -> None:
    # hashlib is mbedTLS here; creating a TLS context seeds mbedTLS's CTR-DRBG
    # from mbedtls_hardware_poll (the host's /dev/urandom through semihosting).
    out = qemu_board.exec(
        "import hashlib, binascii, tls\n"
        "print(binascii.hexlify(hashlib.sha256(b'abc').digest()).decode())\n"
        "ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)\n"
        "print('ctx', type(ctx).__name__)\n"
    )
    lines = out.split()
    assert lines[0] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", out
    assert lines[1:] == ["ctx", "SSLContext"], out


def test_exec_and_run(qemu_board: QemuBoard, tmp_path: Path) -> None:
    assert qemu_board.exec("print(6 * 7)").strip() == "42"
    script = tmp_path / "script.py"
    script.write_text("import sys\nfor i in range(3):\n    print('line', i)\nprint(sys.platform)\n")
    out = qemu_board.run_file(script)
    assert out.replace("\r", "").split("\n")[:4] == ["line 0", "line 1", "line 2", "qemu"], out


def test_exception_is_reported(qemu_board: QemuBoard) -> None:
    proc = qemu_board.mpremote("exec", "raise ValueError('boom')", check=False)
    assert proc.returncode != 0
    assert "ValueError: boom" in proc.stdout + proc.stderr


def test_mpremote_mount(qemu_board: QemuBoard, tmp_path: Path) -> None:
    # `mpremote mount` needs select.poll and sys.stdin.buffer on the board.
    share = tmp_path / "share"
    share.mkdir()
    (share / "hostmod.py").write_text("VALUE = 'from the host folder'\n")
    out = qemu_board.mpremote("mount", str(share), "exec",
                              "import hostmod, os\nprint(hostmod.VALUE, os.getcwd())").stdout
    assert "from the host folder /remote" in out, out


def test_exec_resume_keeps_state(qemu_board: QemuBoard) -> None:
    qemu_board.exec("x = 41")
    assert qemu_board.exec("print(x + 1)", resume=True).strip() == "42"


@pytest.mark.slow
def test_fs_cp_round_trip_100k(qemu_board: QemuBoard, tmp_path: Path) -> None:
    data = os.urandom(100 * 1024)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    t0 = time.monotonic()
    qemu_board.cp_to(src, "blob.bin")
    t1 = time.monotonic()
    back = tmp_path / "back.bin"
    qemu_board.cp_from("blob.bin", back)
    t2 = time.monotonic()
    print(f"fs cp 100 KB: to board {t1 - t0:.1f} s, from board {t2 - t1:.1f} s")
    assert back.read_bytes() == data
    size = qemu_board.exec("import os\nprint(os.stat('/blob.bin')[6])")
    assert int(size) == len(data)


def test_flash_survives_restart(qemu_board: QemuBoard) -> None:
    qemu_board.exec(
        "import os\n"
        "os.mkdir('/keep')\n"
        "with open('/keep/data.txt', 'w') as f:\n"
        "    f.write('persisted ' + str(12345))\n"
    )
    first_pid = qemu_board.pid
    qemu_board.restart()
    assert qemu_board.pid != first_pid
    out = qemu_board.exec("print(open('/keep/data.txt').read())")
    assert out.strip() == "persisted 12345"


def test_fresh_flash_per_test(qemu_board: QemuBoard) -> None:
    # Each test starts with a new, empty filesystem.
    assert qemu_board.exec("import os\nprint(sorted(os.listdir('/')))").strip() == "[]"
    assert qemu_board.flash.exists()


def test_randomness_differs_across_boots(qemu_board: QemuBoard) -> None:
    # os.urandom, random's seed and mbedTLS's entropy (which seeds the C module's
    # CTR-DRBG) all come from the host: none may repeat after a restart.
    code = ("import os, random, _pkcs11\n"
            "print(os.urandom(16).hex(), random.getrandbits(30), _pkcs11.random_bytes(16).hex())")
    first = qemu_board.exec(code).split()
    qemu_board.restart()
    second = qemu_board.exec(code).split()
    assert len(bytes.fromhex(first[0])) == 16 and len(bytes.fromhex(first[2])) == 16, first
    assert first[0] != second[0]
    # (a collision of two 30-bit values is about one in a billion)
    assert first[1] != second[1]
    assert first[2] != second[2]
    assert first[0] != first[2]


def test_time_advances(qemu_board: QemuBoard) -> None:
    out = qemu_board.exec(
        "import time\n"
        "t0 = time.ticks_ms(); u0 = time.ticks_us(); w0 = time.time()\n"
        "time.sleep_ms(300)\n"
        "print(time.ticks_diff(time.ticks_ms(), t0), time.ticks_diff(time.ticks_us(), u0))\n"
        "print(w0, time.localtime()[0])\n"
    )
    ms, us, wall, year = (int(x) for x in out.split())
    assert 300 <= ms < 5000, out
    assert 300_000 <= us < 5_000_000, out
    # Wall clock comes from the host (epoch 1970).
    assert abs(wall - time.time()) < 60, out
    assert year == time.gmtime().tm_year, out


def test_ctrl_c_interrupts_running_code(qemu_board: QemuBoard) -> None:
    with qemu_board.open_serial() as ser:
        # Friendly REPL, in a known state ('A' + '1' so the echo does not match).
        ser.write(b"\x03\x02")
        ser.write(b"n = 0; print('A' + '1')\r")
        ser.read_until(b"A1\r\n>>> ")
        ser.write(b"while True: n += 1\r\r")
        time.sleep(1.0)
        ser.write(b"\x03")
        out = ser.read_until(b">>> ", timeout=10)
        assert b"KeyboardInterrupt" in out, out
        # The loop really ran, and the REPL works after the interrupt.
        ser.write(b"print('B' + '2', n > 1000)\r")
        ser.read_until(b"B2 True\r\n>>> ", timeout=10)


def test_ctrl_c_interrupts_sleep(qemu_board: QemuBoard) -> None:
    # time.sleep sleeps in WFI; the UART interrupt still gets Ctrl-C through.
    with qemu_board.open_serial() as ser:
        ser.write(b"\x03\x02")
        ser.write(b"import time; print('C' + '3')\r")
        ser.read_until(b"C3\r\n>>> ")
        ser.write(b"t0 = time.ticks_ms(); time.sleep(60)\r")
        time.sleep(1.0)
        ser.write(b"\x03")
        out = ser.read_until(b">>> ", timeout=10)
        assert b"KeyboardInterrupt" in out, out
        ser.write(b"print('D' + '4', time.ticks_diff(time.ticks_ms(), t0) < 30000)\r")
        ser.read_until(b"D4 True\r\n>>> ", timeout=10)


def test_boot_and_main_run_at_boot(qemu_board: QemuBoard, tmp_path: Path) -> None:
    (tmp_path / "boot.py").write_text("print('boot.py ran')\n")
    (tmp_path / "main.py").write_text(
        "import time\nprint('main.py ran at', time.ticks_ms())\n"
        "while True:\n    time.sleep_ms(100)\n"
    )
    qemu_board.cp_to(tmp_path / "boot.py", "boot.py")
    qemu_board.cp_to(tmp_path / "main.py", "main.py")
    start = len(qemu_board.uart_log)
    qemu_board.restart()
    log = qemu_board.wait_for_log("main.py ran at", start=start)
    boot_at = log.index("boot.py ran", start)
    assert boot_at < log.index("main.py ran at", start)
    # main.py loops forever; mpremote still gets in with Ctrl-C and the board works.
    assert qemu_board.exec("print('after main')").strip() == "after main"


def test_idle_cpu_is_low(qemu_board: QemuBoard) -> None:
    qemu_board.exec("print('ready')")
    time.sleep(0.5)
    c0, t0 = qemu_board.cpu_seconds(), time.monotonic()
    time.sleep(2.0)
    c1, t1 = qemu_board.cpu_seconds(), time.monotonic()
    share = (c1 - c0) / (t1 - t0)
    print(f"idle qemu CPU: {share * 100:.1f} % of one core")
    # A busy-polling idle loop uses a whole core (~100 %); the sleeping one ~0 %.
    assert share < 0.5, f"idle qemu used {share * 100:.0f} % of a core"


def test_damaged_image_is_not_formatted(tmp_path: Path) -> None:
    image = tmp_path / "flash.img"
    with QemuBoard(tmp_path / "a", flash=image) as board:
        board.exec("with open('/keep.txt', 'w') as f:\n    f.write('x' * 100)")
    # Damage both superblock copies (metadata pair in blocks 0 and 1), keep the magic.
    raw = bytearray(image.read_bytes())
    for block in (0, 1):
        raw[block * 4096 + 16:block * 4096 + 64] = bytes(48)
    image.write_bytes(raw)
    with QemuBoard(tmp_path / "b", flash=image) as board:
        # Used storage that does not mount keeps the REPL closed (docs/security.md).
        board.wait_for_log("locked: token storage does not mount")
        assert "not formatting it" in board.uart_log
    # Still the damaged image, not a fresh filesystem.
    assert image.read_bytes()[16:64] == bytes(48)


def test_launcher_uses_given_flash_image(tmp_path: Path) -> None:
    image = tmp_path / "my.img"
    with QemuBoard(tmp_path / "a", flash=image) as board:
        board.exec("with open('/hello.txt', 'w') as f:\n    f.write('from a')")
    assert image.stat().st_size > 0
    with QemuBoard(tmp_path / "b", flash=image) as board:
        assert board.exec("print(open('/hello.txt').read())").strip() == "from a"
        assert board.pty.exists()
    assert not board.running
