"""`make bench`: speed and heap of the token's crypto, C module (_pkcs11) against the
pure-Python baseline (pkcs11.pure), measured in the same run on

  unix  the unix firmware: wall time, median of N samples (a shared host is noisy);
  qemu  the MPS2-AN385 (Cortex-M3) board under `qemu-system-arm -icount shift=7,align=off,
        sleep=off`: every guest instruction advances the emulated clock by 2**7 ns, so the
        board's TIMER0 (read through time.time_ns()) counts instructions exactly
        (instructions = ns / 128); shown with the time they would take at the AN385's
        25 MHz at one instruction per cycle (a lower bound for a real Cortex-M3).

The device side is bench/device_bench.py. Prints one table; writes results.json and
results.md to --out. See bench/README.md for how to read it.

    python bench/bench.py [--targets unix,qemu] [--tiny] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The lab from this checkout (it is pip-installed too, but the checkout's copy wins).
for p in (ROOT / "tools", ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from cryptography.hazmat.primitives import serialization  # noqa: E402

import compare  # noqa: E402  (bench/compare.py)
from p11lab import LabError, paths  # noqa: E402
from p11lab.localca import LocalCA, new_key  # noqa: E402

BUILD = paths.default_build()
UNIX_BIN = paths.unix_binary()
QEMU_ELF = paths.qemu_elf()

DEVICE_SCRIPT = Path(__file__).with_name("device_bench.py")
ICOUNT_SHIFT = 7
ICOUNT_ARGS = ("-icount", f"shift={ICOUNT_SHIFT},align=off,sleep=off")
AN385_HZ = 25_000_000
BACKENDS = ("c", "pure")
TARGETS = ("unix", "qemu")

# (key, label, kind): kind "time" (ns per call) or "heap" (bytes).
ROWS: list[tuple[str, str, str]] = [
    ("ec_keygen", "P-256 keygen", "time"),
    ("ec_sign", "P-256 ECDSA sign", "time"),
    ("ec_verify", "P-256 ECDSA verify", "time"),
    ("rsa_sign", "RSA-2048 PKCS#1 v1.5 sign", "time"),
    ("rsa_verify", "RSA-2048 PKCS#1 v1.5 verify", "time"),
    ("pss_sign", "RSA-2048 PSS sign (SHA-256)", "time"),
    ("sha256_1k", "SHA-256 of 1 KB", "time"),
    ("sha384_1k", "SHA-384 of 1 KB", "time"),
    ("tok_sign_ec", "token C_SignInit+C_Sign EC", "time"),
    ("tok_sign_rsa", "token C_SignInit+C_Sign RSA", "time"),
    ("tok_find", "token C_FindObjects by label", "time"),
    ("tok_create_cert", "token C_CreateObject cert (flash)", "time"),
    ("tls_ec", "TLS handshake via token, EC", "time"),
    ("tls_rsa", "TLS handshake via token, RSA", "time"),
    ("tls_ec_nodelay", "TLS handshake, EC, TCP_NODELAY", "time"),
    ("heap_import", "heap: import pkcs11", "heap"),
    ("heap_initialize", "heap: C_GetFunctionList+C_Initialize", "heap"),
    ("heap_session", "heap: C_OpenSession", "heap"),
    ("heap_first_sign_ec", "heap: first C_Sign EC, retained", "heap"),
    ("heap_first_sign_rsa", "heap: first C_Sign RSA, retained", "heap"),
    ("heap_alloc_sign_ec", "heap: one C_Sign EC, allocated", "heap"),
    ("heap_alloc_sign_rsa", "heap: one C_Sign RSA, allocated", "heap"),
]
UNIX_ONLY = {"tls_ec", "tls_rsa", "tls_ec_nodelay"}

# Samples per (target, backend) for each timed op; a warm-up call comes first.
# Instruction counts on qemu repeat exactly for the same firmware and input (p256-m
# is constant-time: its counts do not even change with the key or nonce); what
# varies is the pure P-256 with the nonce, RSA with its random blinding and the
# flash writes with littlefs's state, so a few samples do there.
_SLOW_PURE = {"ec_keygen", "ec_sign", "ec_verify", "rsa_sign", "pss_sign", "tok_sign_ec",
              "tok_sign_rsa", "tls_ec", "tls_rsa", "tls_ec_nodelay"}


def plan(target: str, tiny: bool) -> dict[str, dict[str, int]]:
    runs: dict[str, dict[str, int]] = {}
    for key, _, kind in ROWS:
        if kind != "time" or (target != "unix" and key in UNIX_ONLY):
            continue
        if tiny:
            runs[key] = {"c": 1, "pure": 1}
        elif target == "unix":
            runs[key] = {"c": 11 if key.startswith("tls") else 21,
                         "pure": 7 if key in _SLOW_PURE else 21}
        elif key == "tok_create_cert":
            # littlefs's metadata log makes this a sawtooth (compaction every ~15 writes)
            runs[key] = {"c": 15, "pure": 15}
        else:
            runs[key] = {"c": 5, "pure": 3}
    return runs


# -- inputs -------------------------------------------------------------------

def make_pki(directory: Path) -> tuple[LocalCA, dict[str, bytes]]:
    """Throwaway bench identities: key PEMs (handed to the device, which deletes them)
    and certificates. The CA's copies of client keys are removed at once."""
    shutil.rmtree(directory, ignore_errors=True)
    ca = LocalCA(directory / "ca", name="Bench Root CA")
    files: dict[str, bytes] = {"bench_root.der": ca.root_der}
    for kind in ("ec", "rsa"):
        key = new_key(kind)
        issued = ca.certify(key, f"bench-{kind}")
        if issued.key_path is not None:
            issued.key_path.unlink()
        files[f"bench_{kind}.pem"] = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        files[f"bench_{kind}.der"] = issued.cert_der
    return ca, files


def device_code(phase: str, backends: tuple[str, ...], runs: dict, qemu: bool,
                tls_port: int | None = None, files: dict[str, bytes] | None = None) -> str:
    head = (f"PHASE = {phase!r}\nBACKENDS = {backends!r}\nRUNS = {runs!r}\n"
            f"QEMU = {qemu!r}\nTLS_PORT = {tls_port!r}\nFILES = {files!r}\n")
    return head + DEVICE_SCRIPT.read_text()


def parse(out: str, where: str) -> list[dict[str, Any]]:
    lines = out.replace("\r", "").splitlines()
    if "@B done" not in lines:
        raise RuntimeError(f"{where}: the device script did not finish; output:\n{out[-3000:]}")
    return [json.loads(line[3:]) for line in lines if line.startswith("@B {")]


# -- targets ------------------------------------------------------------------

def run_unix(out: Path, files: dict[str, bytes], ca: LocalCA, tiny: bool,
             log) -> list[dict[str, Any]]:
    from p11lab.tls_server import OpenSSLServer
    from p11lab.unix import UnixFirmware

    unix_bin = paths.require(paths.unix_binary(), "unix")
    base = out / "unix"
    shutil.rmtree(base, ignore_errors=True)
    work, token = base / "work", base / "token"
    work.mkdir(parents=True)
    token.mkdir()
    for name, data in files.items():
        (work / name).write_bytes(data)
    fw = UnixFirmware(token, work, binary=unix_bin)
    runs = plan("unix", tiny)

    def run(name: str, code: str) -> list[dict[str, Any]]:
        script = work / f"{name}.py"
        script.write_text(code)
        t0 = time.monotonic()
        proc = fw.run_file(script, check=False, timeout=600, micropypath=".frozen")
        log(f"unix {name}: {time.monotonic() - t0:.1f} s")
        if proc.returncode != 0:
            raise RuntimeError(f"unix {name} exited {proc.returncode}:\n{proc.stdout[-2000:]}"
                               f"\n{proc.stderr[-2000:]}")
        return parse(proc.stdout, f"unix {name}")

    try:
        results = run("prims", device_code("prims", BACKENDS, runs, False))
    finally:
        for name in files:   # normally the device has removed the keys already
            if name.endswith(".pem"):
                (work / name).unlink(missing_ok=True)
    server_cert = ca.issue_server(("localhost", "127.0.0.1"))
    server = OpenSSLServer(server_cert.cert_path, server_cert.key_path, ca.root_path).start()
    try:
        for b in BACKENDS:
            results += run(f"token_{b}", device_code("token", (b,), runs, False, server.port))
    finally:
        server.stop()
    return results


def run_qemu(out: Path, files: dict[str, bytes], tiny: bool, log) -> list[dict[str, Any]]:
    from p11lab.qemu import QemuBoard

    elf = paths.require(paths.qemu_elf(), "qemu")
    base = out / "qemu"
    shutil.rmtree(base, ignore_errors=True)
    staging = base / "files"
    staging.mkdir(parents=True)
    for name, data in files.items():
        (staging / name).write_bytes(data)
    runs = plan("qemu", tiny)
    board = QemuBoard(base / "board", elf=elf, extra_args=ICOUNT_ARGS)
    board.start()
    try:
        t0 = time.monotonic()
        board.mpremote("fs", "cp", *[str(staging / n) for n in sorted(files)], ":")
        for name in files:
            if name.endswith(".pem"):
                (staging / name).unlink()
        log(f"qemu copy files: {time.monotonic() - t0:.1f} s")

        def run(name: str, code: str) -> list[dict[str, Any]]:
            # Each phase on a freshly booted board, not after a soft reset: _pkcs11
            # keeps its seeded entropy context (memory from the GC heap) across a
            # soft reset, and the next mbedTLS allocation then corrupts the new
            # heap (bench/README.md, "Known problem").
            board.restart()
            t0 = time.monotonic()
            text = board.exec(code, timeout=300)
            log(f"qemu {name}: {time.monotonic() - t0:.1f} s")
            return parse(text, f"qemu {name}")

        results = run("prims", device_code("prims", BACKENDS, runs, True))
        for b in BACKENDS:
            results += run(f"token_{b}", device_code("token", (b,), runs, True))
    finally:
        board.stop()
    return results


# -- comparison rows (bench/compare.py) ---------------------------------------

def run_compare(args, out: Path, files: dict[str, bytes], ca: LocalCA, res: dict,
                targets: list[str], log) -> list[compare.Row]:
    """Rows 1-8 of issue 15, each with its baseline measured here and now. Rows that need
    the qemu board run only with the qemu target; a missing bench build is a note."""
    want = {int(x) for x in args.rows.split(",") if x.strip()}
    rows: list[compare.Row] = []
    tiny = args.tiny
    n = 1 if tiny else 5
    labels = {k: label for k, label, _ in ROWS}
    qemu = "qemu" in targets
    bench_qemu = BUILD / "bench-qemu" / "firmware.elf"
    bench_m4 = BUILD / "bench-qemu-m4" / "firmware.elf"
    rv32_elf = BUILD / "bench-rv32" / "firmware.elf"

    def step(num: int, name: str, fn) -> None:
        if num not in want:
            return
        t0 = time.monotonic()
        log(f"row {num}: {name} ...")
        try:
            rows.extend(fn())
        except Exception as exc:  # one failed row must not lose the others
            log(f"row {num} failed: {type(exc).__name__}: {str(exc)[:2000]}")
            rows.append(compare.Row(f"{num}", name, None, None, "", note=f"failed: {type(exc).__name__}"))
        log(f"row {num}: {name} done ({time.monotonic() - t0:.0f} s)")

    def row1():
        if not bench_qemu.exists():
            return [compare.Row("1 vs mbedTLS", "all", None, None, "", note=f"{bench_qemu} missing")]
        m3 = compare.run_mbedtls_mps2(bench_qemu, out, files, n, log)
        r = compare.mbedtls_rows(m3, "M3")
        if bench_m4.exists():
            m4 = compare.run_mbedtls_mps2(bench_m4, out, files, n, log, "mps2-an386", "M4")
            r += compare.mbedtls_rows(m4, "M4") + compare.m4_rows(m4, m3)
        else:
            r.append(compare.Row("1 vs mbedTLS", "Cortex-M4", None, None, "",
                                 note=f"{bench_m4} missing (make bench-qemu-m4)"))
        if rv32_elf.exists():
            rv, _ = compare.run_rv32(rv32_elf, out, files, n, None, log)
            r += compare.mbedtls_rows(rv, "RV32")
        return r

    def rv32_prims() -> str:
        # the C backend only: the pure one needs os.urandom, which this board lacks
        runs = {k: {"c": 1 if tiny else 3} for k in plan("qemu", tiny) if not k.startswith("tok_")}
        # VIRT_RV32 has no time module: time.time_ns is its instret counter there
        shim = ("import sys, _benchclk\nclass _T:\n    time_ns = _benchclk.count\n"
                "sys.modules['time'] = _T\n")
        return shim + device_code("prims", ("c",), runs, True, files={
            k: files[k] for k in ("bench_ec.pem", "bench_rsa.pem")})

    def row2():
        if not rv32_elf.exists():
            return [compare.Row("2 RV32 vs M3", "all", None, None, "", note=f"{rv32_elf} missing")]
        _, prims = compare.run_rv32(rv32_elf, out, files, n, rv32_prims(), log)
        return compare.rv32_rows(prims, res, labels)

    def row3():
        tok = {k: res.get(f"tok_sign_{k}", {}).get("unix", {}).get("c", {}).get("median_ns")
               for k in ("ec", "rsa")}
        return compare.host_rows(tok, compare.openssl_speed(1 if tiny else 3, log),
                                 compare.softhsm_speed(out / "softhsm", 3 if tiny else 101, log))

    def unix_dirs() -> tuple[Path, Path]:
        base = out / "unix"
        return base / "work", base / "token"

    def row4():
        from p11lab.tls_server import OpenSSLServer
        work, token = unix_dirs()
        (work / "bench_ec.key.der").write_bytes(compare.der_key(files["bench_ec.pem"]))
        srv_cert = ca.issue_server(("localhost", "127.0.0.1"))
        server = OpenSSLServer(srv_cert.cert_path, srv_cert.key_path, ca.root_path).start()
        try:
            text, _ = compare.unix_run(UNIX_BIN, work, token, compare.device_code(
                "tls_ram", "ticks", 3 if tiny else 21, port=server.port), "tls_ram", log)
        finally:
            server.stop()
            (work / "bench_ec.key.der").unlink(missing_ok=True)
        return compare.tls_rows(compare._parse(text, "unix tls_ram"))

    def row5():
        if not qemu:
            return []
        return compare.serial_rows(out, QEMU_ELF, BUILD / "venv" / "bin", ca, log)

    def row6():
        if not qemu:
            return []
        return compare.scale_rows(out, QEMU_ELF, files, 3 if tiny else 5, log,
                                  counts=(1, 8) if tiny else compare.SCALE_COUNTS)

    def row7():
        return compare.size_rows(BUILD)

    def row8():
        from p11lab.mosquitto import Mosquitto, TLSListener
        work, token = unix_dirs()
        srv_cert = ca.issue_server(("localhost", "127.0.0.1"))
        broker = Mosquitto(out / "mosquitto", plain=False, tls=TLSListener(
            ca.root_path, srv_cert.cert_path, srv_cert.key_path)).start()
        try:
            text, first = compare.unix_run(UNIX_BIN, work, token, compare.device_code(
                "boot", "ticks", 1, port=broker.tls_port, thing="bench-ec"), "boot", log)
        finally:
            broker.stop()
        return compare.boot_rows(first or 0.0, compare._parse(text, "unix boot"))

    step(1, "P-256/RSA vs mbedTLS's own code (qemu)", row1)
    step(2, "VIRT_RV32 (RISC-V) vs Cortex-M3", row2)
    step(3, "unix C_Sign vs openssl speed and SoftHSM2", row3)
    step(4, "TLS connect, token vs key in RAM", row4)
    step(5, "CLI bytes over the qemu serial line", row5)
    step(6, "scaling with 1/8/32/64 objects (qemu)", row6)
    step(7, "footprint with and without our modules", row7)
    step(8, "boot to first PUBACK (unix, local mosquitto)", row8)
    return rows


# -- table --------------------------------------------------------------------

def collect(raw: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{op: {target: {backend: {"median": x, "samples": [...]} | {"bytes": n, "free": f}}}}"""
    res: dict[str, dict[str, dict[str, Any]]] = {}
    for target, items in raw.items():
        for it in items:
            cell: dict[str, Any]
            if "ns" in it:
                samples = it["ns"]
                cell = {"samples_ns": samples, "median_ns": statistics.median(samples)}
                if target == "qemu":
                    cell["instructions"] = [s / 2 ** ICOUNT_SHIFT for s in samples]
                    cell["median_instructions"] = cell["median_ns"] / 2 ** ICOUNT_SHIFT
            else:
                cell = {"bytes": it["bytes"]}
                if "free" in it:
                    cell["free"] = it["free"]
            res.setdefault(it["op"], {}).setdefault(target, {})[it["backend"]] = cell
    return res


def _si(x: float) -> str:
    for div, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.0f}"


def _dur(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def fmt_cell(target: str, kind: str, cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "n/a"
    if kind == "heap":
        if cell["bytes"] is None:
            return f"> {cell.get('free', 0):,} B (all free)"
        return f"{cell['bytes']:,} B"
    if target == "unix":
        return _dur(cell["median_ns"] / 1e9)
    instr = cell["median_instructions"]
    return f"{_si(instr)} ≈{_dur(instr / AN385_HZ)}"


def ratio(kind: str, cells: dict[str, Any]) -> str:
    c, p = cells.get("c"), cells.get("pure")
    if kind != "time" or not c or not p or not c["median_ns"]:
        return ""
    return f"{p['median_ns'] / c['median_ns']:.1f}×"


def table(res: dict, targets: list[str], runs: dict[str, dict]) -> list[list[str]]:
    head = ["operation"]
    for t in targets:
        head += [f"{t} C", f"{t} pure", "C gain"]
    head.append("n C/pure")
    rows = [head]
    for key, label, kind in ROWS:
        row = [label]
        n = []
        for t in targets:
            cells = res.get(key, {}).get(t, {})
            row += [fmt_cell(t, kind, cells.get("c")), fmt_cell(t, kind, cells.get("pure")),
                    ratio(kind, cells)]
            r = runs[t].get(key)
            n.append(f"{r['c']}/{r['pure']}" if r else ("1/1" if kind == "heap" else "-"))
        row.append(", ".join(n))
        rows.append(row)
    return rows


def markdown(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="unix,qemu", help="comma-separated: unix, qemu")
    ap.add_argument("--tiny", action="store_true", help="one sample per cell (smoke test)")
    ap.add_argument("--out", default=str(paths.default_build() / "bench"),
                    help="folder for results and scratch (default: $BUILD/bench)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--rows", default="1,2,3,4,5,6,7,8",
                    help="comparison rows to run (bench/compare.py), comma-separated; '' for none")
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[bench] {msg}", flush=True)

    started = time.monotonic()
    ca, files = make_pki(out / "pki")
    raw: dict[str, list[dict[str, Any]]] = {}
    try:
        if "unix" in targets:
            raw["unix"] = run_unix(out, files, ca, args.tiny, log)
        if "qemu" in targets:
            raw["qemu"] = run_qemu(out, files, args.tiny, log)
    except LabError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    res = collect(raw)
    runs = {t: plan(t, args.tiny) for t in targets}
    cmp_rows = run_compare(args, out, files, ca, res, targets, log)
    md = markdown(table(res, targets, runs))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    cmd = ("make bench" if "MAKELEVEL" in os.environ else
           "python bench/bench.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    legend = ["unix: wall time per call, median of n (a shared host: expect some noise)."]
    if "qemu" in targets:
        legend.append(f"qemu: guest instructions per call, median of n, counted exactly by "
                      f"-icount shift={ICOUNT_SHIFT}; ≈ its time at the AN385's 25 MHz, one "
                      "instruction per cycle (a real Cortex-M3 needs more cycles).")
    legend += ["C gain: pure-Python time / C time (same firmware, same run).",
               "heap: gc.mem_alloc() deltas; 'retained' after gc.collect(), 'allocated' with "
               "the collector off ('all free': more than the whole free heap).",
               f"n C/pure: samples per cell ({', '.join(targets)}); heap rows: one measurement."]
    notes = (f"{date} · commit {commit or '?'} · {platform.machine()}, {os.cpu_count()} CPUs · "
             f"`{cmd.strip()}`\n" + "\n".join("- " + x for x in legend))
    cmp_md = markdown(compare.table(cmp_rows)) if cmp_rows else ""
    print(md)
    print(notes)
    if cmp_md:
        print("\nAgainst what a user would pick instead (ratio = ours / baseline):\n")
        print(cmp_md)
        compare.save(cmp_rows, out)
        why = compare.chart(cmp_rows, out / "compare.png")
        log(f"chart: {why}" if why else f"wrote {out / 'compare.png'}")
    (out / "results.md").write_text(md + "\n\n" + notes + "\n"
                                    + ("\n## Against what a user would pick instead\n\n"
                                       + cmp_md + "\n" if cmp_md else ""))
    (out / "results.json").write_text(json.dumps(
        {"date": date, "commit": commit, "command": cmd, "icount_shift": ICOUNT_SHIFT,
         "runs": runs, "results": res,
         "rows": [{"op": k, "label": label, "kind": kind} for k, label, kind in ROWS]},
        indent=1))
    log(f"wrote {out / 'results.md'} and results.json ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
