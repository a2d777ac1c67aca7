"""`make bench` must not rot: its script runs in a tiny mode (one sample per cell, unix
firmware only) and prints a table with every operation, each with a number for the C
module and for the pure-Python baseline. Speed itself is never asserted here."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from harness.paths import BUILD, ROOT

BENCH = ROOT / "bench" / "bench.py"


def _rows() -> list[tuple[str, str, str]]:
    spec = importlib.util.spec_from_file_location("bench_script", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ROWS


def _number(cell: str) -> float:
    m = re.match(r"^([0-9][0-9,]*(?:\.[0-9]+)?)\s*(µs|ms|s|B)$", cell.strip())
    assert m, f"not a measurement: {cell!r}"
    return float(m.group(1).replace(",", ""))


def test_bench_tiny_run_prints_every_row_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, str(BENCH), "--targets", "unix", "--tiny", "--quiet",
                           "--rows", "4,7,8", "--out", str(out)], capture_output=True, text=True,
                          timeout=180,
                          env=dict(os.environ, BUILD=str(BUILD)), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines()
             if line.startswith("| ")}
    header = [c.strip() for c in lines["operation"].split("|")[1:-1]]
    assert header[:3] == ["operation", "unix C", "unix pure"]
    rows = _rows()
    assert len(rows) >= 20
    for key, label, kind in rows:
        assert label in lines, f"row {label!r} missing from the table:\n{proc.stdout}"
        cells = [c.strip() for c in lines[label].split("|")[1:-1]]
        c, pure = _number(cells[1]), _number(cells[2])
        if kind == "heap" and "retained" in label:
            # memory kept after a first call may legitimately be nothing
            assert c >= 0 and pure >= 0, lines[label]
        else:
            assert c > 0 and pure > 0, lines[label]
        if kind == "time":
            assert re.match(r"^[0-9.]+×$", cells[3]), lines[label]
    data = json.loads((out / "results.json").read_text())
    assert {r["op"] for r in data["rows"]} == {k for k, _, _ in rows}
    assert (out / "results.md").read_text().startswith("| operation")
    # the bench's private keys do not stay in files outside the token (the server's may)
    assert not list((out / "pki").rglob("*client*.key"))
    assert not list(out.rglob("bench_*.pem"))

    # the comparison rows that need only what `make test` installs: each with its
    # baseline and a ratio (TLS with the key in RAM; boot to first PUBACK as shares)
    cmp = json.loads((out / "compare.json").read_text())
    by_group: dict[str, list[dict]] = {}
    for r in cmp:
        by_group.setdefault(r["group"], []).append(r)
    assert set(by_group) >= {"4 TLS", "7 size", "8 boot"}, sorted(by_group)
    tls = by_group["4 TLS"][0]
    assert tls["ours"] > 0 and tls["base"] > 0 and tls["ratio"] > 0, tls
    steps = [r for r in by_group["8 boot"] if r["ratio"] is not None]
    assert len(steps) == 6 and abs(sum(r["ratio"] for r in steps) - 1) < 1e-6, steps
    assert "## Against what a user would pick instead" in (out / "results.md").read_text()


def test_bench_bridge_rows_count_each_call(qemu_board) -> None:
    """Row 5's bridge part on the qemu board, one sample: both calls go through the
    counting proxy, each way, and come out as rows with their time at 115200 baud."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import compare
    finally:
        sys.path.remove(str(ROOT / "bench"))
    qemu_board.wait_for_log(">>> ")
    proxy = compare.CountingProxy(qemu_board.pty)
    try:
        rows = compare.bridge_rows(proxy, lambda msg: None, samples=1)
    finally:
        proxy.close()
    assert [r.what.split(":")[0] for r in rows] == [
        "bridge EC P-256 C_Sign of 32 bytes", "bridge C_GetSessionInfo"]
    for r in rows:
        sent, received = r.samples["sent"], r.samples["received"]
        # a request frame carries at least the call's arguments; a reply at least its rv
        assert sent >= 8 and received >= 8, r
        assert r.ours == (sent + received) * 10 / compare.BAUD and r.ok is True, r
    sign, info = rows
    assert sign.samples["sent"] > info.samples["sent"]          # the 32 bytes to sign
    assert sign.samples["received"] >= 64                       # the signature
