"""`make bench`, bridge part: what one PKCS#11 call costs through p11bridge on the
qemu board's serial line (UART -> socket -> socat pty), in wall time.

Per sample: the host's round trip of one call through tools/p11bridge's Link,
and the board's own clock around the same call (the bridge's time op), so the
difference is what the bridge and the serial line add. Rows: C_Sign (EC P-256,
raw ECDSA on 32 bytes) and C_GetSessionInfo (a call that does almost nothing).

    python bench/bridge_bench.py [--samples N] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from p11bridge.link import Link
from p11lab import LabError
from p11lab.qemu import QemuBoard

P256 = bytes.fromhex("06082a8648ce3d030107")


def measure(pty: str, samples: int) -> dict[str, dict[str, float]]:
    link = Link(pty, timeout=60, lock_wait=0)
    link.open()
    rows: dict[str, dict[str, list[float]]] = {
        "C_Sign": {"trip": [], "board": []}, "C_GetSessionInfo": {"trip": [], "board": []}}
    try:
        link.call("C_Initialize")
        h = link.call("C_OpenSession", 0, 6)[1]
        _, keys = link.call("C_GenerateKeyPair", h, 0x1040, [(0x180, P256)], [(3, b"bench")])
        for _ in range(samples + 1):        # the first is a warm-up
            link.call("C_SignInit", h, 0x1041, keys[1])     # type: ignore[index]
            for name, args in (("C_Sign", (h, b"x" * 32)), ("C_GetSessionInfo", (h,))):
                t = time.perf_counter()
                rv, _ = link.call(name, *args)
                trip = time.perf_counter() - t
                assert rv == 0, (name, rv)
                rows[name]["trip"].append(trip)
                rows[name]["board"].append(link.board_time())
        link.call("C_Finalize")
    finally:
        link.close()
    out = {}
    for name, r in rows.items():
        trip, board = r["trip"][1:], r["board"][1:]
        out[name] = {"board_ms": statistics.median(board) * 1e3,
                     "trip_ms": statistics.median(trip) * 1e3,
                     "added_ms": statistics.median(t - b for t, b in zip(trip, board)) * 1e3,
                     "n": len(trip)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=21)
    ap.add_argument("--out", type=Path, default=None, help="also write bridge.md here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as d:
        board = QemuBoard(Path(d) / "board")
        pty = board.start()
        try:
            board.wait_for_log(">>> ")
            res = measure(str(pty), args.samples)
        finally:
            board.stop()
    lines = ["| call over the qemu UART (wall time, median) | on the board | round trip | added by bridge + serial | n |",
             "|---|---:|---:|---:|---:|"]
    for name, r in res.items():
        lines.append(f"| {name} | {r['board_ms']:.2f} ms | {r['trip_ms']:.2f} ms | "
                     f"{r['added_ms']:.2f} ms | {r['n']} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bridge.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as e:  # the board could not start: the message says what to run
        sys.exit(f"bridge bench: {e}")
