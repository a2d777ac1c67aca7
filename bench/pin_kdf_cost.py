"""PBKDF2-HMAC-SHA256 cost of the PIN hash on the qemu board (issue 10, finding 4).

Runs pkcs11.crypto.pbkdf2_sha256 on the qemu MPS2-AN385 firmware twice:
  * as qemu runs it (wall clock of an emulated Cortex-M3: says little), and
  * under `-icount shift=0`, where the guest clock advances 1 ns per guest
    instruction: the guest's ticks_us then count instructions, which gives
    instructions per PBKDF2 iteration independent of the host's load.
The ESP32 estimate divides an assumed instruction rate (240 MHz Xtensa LX6,
MicroPython interpreter code running from flash cache: ~0.6 instructions per
clock, so ~150 M instructions/s; the C module's SHA-256 runs in C) into that
count, and picks the iteration count for about 0.5 s.

    build/venv/bin/python bench/pin_kdf_cost.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from p11lab.qemu import QemuBoard  # noqa: E402

ESP32_INSTR_PER_S = 150e6
TARGET_S = 0.5

CODE = """
import time, json
from pkcs11 import crypto
crypto.pbkdf2_sha256(b"1234", b"s" * 16, 2)
n = N
t0 = time.ticks_us()
crypto.pbkdf2_sha256(b"123456", b"0123456789abcdef", n)
dt = time.ticks_diff(time.ticks_us(), t0)
print(json.dumps({"n": n, "us": dt, "backend": crypto.which("hash_new")}))
"""


def run(extra: tuple[str, ...], n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="kdf-") as d:
        board = QemuBoard(d, extra_args=extra)
        board.start()
        try:
            board.wait_for_log(">>>", timeout=60)
            out = board.exec(CODE.replace("N", str(n)), timeout=600)
        finally:
            board.stop()
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    wall = run((), n)
    counted = run(("-icount", "shift=0"), n)
    per_iter_wall = wall["us"] / n
    instr_per_iter = counted["us"] * 1000 / n          # 1 ns of guest time = 1 instruction
    esp32_iter_s = ESP32_INSTR_PER_S / instr_per_iter
    pick = int(esp32_iter_s * TARGET_S) // 100 * 100
    print(json.dumps({
        "iterations": n, "backend": wall["backend"],
        "qemu_wall_iterations_per_s": round(1e6 / per_iter_wall, 1),
        "guest_instructions_per_iteration": round(instr_per_iter),
        "esp32_estimated_iterations_per_s": round(esp32_iter_s, 1),
        "pin_iterations_for_0.5s_on_esp32": pick,
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
