"""`make bench`, part 2: the token against what a user would pick instead, each row with
its baseline measured in the same run (bench/README.md, rows 1-8 of issue 15).

  1 mbedtls   p256-m / our RSA against mbedTLS's own ECDSA/RSA (firmware's config), M3
  2 rv32      the same primitives on qemu's VIRT_RV32 (RISC-V, the ESP32-C3's ISA) vs the M3
  3 host      unix C_Sign rate vs `openssl speed` and SoftHSM2 through PyKCS11
  4 tls       TLS connect, key in the token vs the same key in SSLContext (unix)
  5 serial    bytes per CLI command over the qemu board's serial line, time at 115200 baud
  6 scale     C_Initialize, FindObjects, CreateObject with 1/8/32/64 objects; flash bytes
  7 size      firmware text/data/bss with and without our modules; frozen bytecode
  8 boot      boot to first PUBACK on unix against a local mosquitto, as a breakdown

Each row function returns a list of Row; the device side is bench/device_compare.py.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import tty
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parents[1]
DEVICE = Path(__file__).with_name("device_compare.py")
ICOUNT_SHIFT = 7
ICOUNT_ARGS = ("-icount", f"shift={ICOUNT_SHIFT},align=off,sleep=off")
BAUD = 115200
CLI = "p11board"         # the provisioning CLI's console script in the venv


@dataclass
class Row:
    group: str                 # "1 mbedTLS" ...
    what: str                  # the measurement
    ours: float | None         # value (unit below)
    base: float | None         # the baseline's value, same unit
    unit: str                  # "instr", "ns", "B", "s", "/s"
    base_name: str = ""        # what the baseline is
    ratio: float | None = None # ours / base unless given
    target: str = ""           # the target, in words
    ok: bool | None = None     # target met?
    note: str = ""
    samples: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.base:
            self.ratio = self.ours / self.base


def _med(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _instr(ns: list[float]) -> list[float]:
    return [x / 2 ** ICOUNT_SHIFT for x in ns]


def _parse(out: str, where: str) -> dict[str, dict[str, Any]]:
    lines = out.replace("\r", "").splitlines()
    if "@C done" not in lines:
        raise RuntimeError(f"{where}: the device script did not finish; output:\n{out[-3000:]}")
    res = {}
    for line in lines:
        if line.startswith("@C {"):
            d = json.loads(line[3:])
            res[d.pop("op")] = d
    return res


def device_code(phase: str, clock: str, runs: int, files: dict[str, bytes] | None = None,
                **params: Any) -> str:
    head = (f"PHASE = {phase!r}\nCLOCK = {clock!r}\nRUNS = {runs!r}\nFILES = {files!r}\n"
            f"PORT = {params.get('port')!r}\nCOUNT = {params.get('count')!r}\n"
            f"THING = {params.get('thing')!r}\n")
    return head + DEVICE.read_text()


def der_key(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, None)
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def key_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The inputs device_compare's mbedtls phase reads (keys as PEM and PKCS#8 DER)."""
    return {"bench_ec.pem": files["bench_ec.pem"], "bench_rsa.pem": files["bench_rsa.pem"],
            "bench_rsa.key.der": der_key(files["bench_rsa.pem"])}


# -- a bare qemu board over its UART socket (VIRT_RV32: no mpremote, no filesystem) -------

class RawBoard:
    """qemu with its UART on a unix socket, driven through the raw REPL. Started and
    stopped by PID."""

    def __init__(self, cmd: list[str], workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._tmp = tempfile.mkdtemp(prefix="qemu-bench-")
        self.sock_path = Path(self._tmp) / "uart.sock"
        self.cmd = cmd + ["-nographic", "-monitor", "null", "-chardev",
                          f"socket,id=s0,path={self.sock_path},server=on,wait=on",
                          "-serial", "chardev:s0"]
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.buf = b""

    def start(self, timeout: float = 30) -> "RawBoard":
        out = open(self.workdir / "qemu.out", "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qemu exited: {(self.workdir / 'qemu.out').read_text()[-2000:]}")
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(self.sock_path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise RuntimeError("qemu's UART socket did not appear")
                time.sleep(0.05)
        self.read_until(b">>> ", timeout)
        return self

    def read_until(self, marker: bytes, timeout: float) -> bytes:
        assert self.sock is not None
        end = time.monotonic() + timeout
        while marker not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or (self.proc and self.proc.poll() is not None):
                raise RuntimeError(f"{marker!r} not received; got {self.buf[-2000:]!r}")
            r, _, _ = select.select([self.sock], [], [], min(left, 1))
            if r:
                data = self.sock.recv(65536)
                if not data:
                    raise RuntimeError(f"UART closed; got {self.buf[-2000:]!r}")
                self.buf += data
        head, _, self.buf = self.buf.partition(marker)
        return head

    def exec(self, code: str, timeout: float = 600) -> str:
        assert self.sock is not None
        self.sock.sendall(b"\r\x03\x03\x01")
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", 10)
        data = code.encode()
        for i in range(0, len(data), 256):
            self.sock.sendall(data[i:i + 256])
        self.sock.sendall(b"\x04")
        self.read_until(b"OK", 30)
        out = self.read_until(b"\x04", timeout)
        err = self.read_until(b"\x04", 10)
        self.read_until(b">", 10)
        if err.strip():
            raise RuntimeError(f"device error:\n{err.decode(errors='replace')}\n"
                               f"output:\n{out.decode(errors='replace')[-2000:]}")
        return out.decode(errors="replace")

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self._tmp, ignore_errors=True)


def rv32_cmd(elf: Path) -> list[str]:
    return ["qemu-system-riscv32", "-machine", "virt", "-bios", "none", "-semihosting",
            "-kernel", str(elf), *ICOUNT_ARGS]


# -- rows 1 and 2 -----------------------------------------------------------------------

MBEDTLS_OPS = [  # (label, ours, mbedTLS's)
    ("P-256 keygen", "p256m_keygen", "mbed_ec_keygen"),
    ("P-256 ECDSA sign", "p256m_sign", "mbed_ec_sign"),
    ("P-256 ECDSA verify", "p256m_verify", "mbed_ec_verify"),
    ("RSA-2048 PKCS#1 v1.5 sign", "ours_rsa_sign", "mbed_rsa_sign"),
    ("RSA-2048 PKCS#1 v1.5 verify", "ours_rsa_verify", "mbed_rsa_verify"),
]


def mbedtls_rows(res: dict[str, dict], cpu: str) -> list[Row]:
    rows = []
    for label, ours, base in MBEDTLS_OPS:
        a, b = _instr(res[ours]["ns"]), _instr(res[base]["ns"])
        ec = label.startswith("P-256")
        r = Row("1 vs mbedTLS", f"{label}, {cpu}", _med(a), _med(b), "instr",
                "mbedTLS ecp.c/ecdsa.c" if ec else "mbedTLS mbedtls_pk_sign/verify (key parsed once)",
                target="≤ 0.5" if ec and "verify" not in label else "",
                samples={"ours": a, "base": b})
        if r.target:
            r.ok = r.ratio is not None and r.ratio <= 0.5
        rows.append(r)
    rows.append(Row("1 vs mbedTLS", f"RSA-2048 keygen, {cpu}", None, None, "instr",
                    "mbedtls_rsa_gen_key",
                    note="not measurable: MicroPython's mbedTLS config has no MBEDTLS_GENPRIME "
                         "and the token does not generate RSA keys"))
    return rows


def run_mbedtls_mps2(elf: Path, out: Path, files: dict[str, bytes], runs: int, log,
                     machine: str = "mps2-an385", cpu: str = "M3") -> dict:
    from p11lab.qemu import QemuBoard

    board = QemuBoard(out / f"bench-qemu-board-{cpu}", elf=elf, extra_args=ICOUNT_ARGS,
                      machine=machine)
    board.start()
    try:
        t0 = time.monotonic()
        text = board.exec(device_code("mbedtls", "time_ns", runs, key_files(files)), timeout=600)
        log(f"row 1: {cpu} p256-m/RSA vs mbedTLS: {time.monotonic() - t0:.0f} s")
    finally:
        board.stop()
    return _parse(text, f"qemu {cpu} mbedtls")


def m4_rows(m4: dict[str, dict], m3: dict[str, dict]) -> list[Row]:
    """Our side of row 1 on the Cortex-M4 against the same code on the M3: what
    p256-m's UMAAL path (Armv7E-M) saves."""
    rows = []
    for label, ours, _ in MBEDTLS_OPS:
        a, b = _instr(m4[ours]["ns"]), _instr(m3[ours]["ns"])
        rows.append(Row("1 vs mbedTLS", f"{label}: ours on M4 vs ours on M3", _med(a), _med(b),
                        "instr", "the same code on the Cortex-M3", samples={"m4": a, "m3": b}))
    return rows


def run_rv32(elf: Path, out: Path, files: dict[str, bytes], runs: int, prims_code: str | None,
             log) -> tuple[dict, list[dict]]:
    """Row 1's comparison (prims_code None) or the token's primitives on VIRT_RV32."""
    res: dict = {}
    prims: list[dict] = []
    for phase in ("mbedtls",) if prims_code is None else ("prims",):
        board = RawBoard(rv32_cmd(elf), out / "bench-rv32-board")
        board.start()
        try:
            t0 = time.monotonic()
            if phase == "mbedtls":
                res = _parse(board.exec(device_code("mbedtls", "benchclk", runs, key_files(files))),
                             "rv32 mbedtls")
            else:
                text = board.exec(prims_code)
                lines = text.replace("\r", "").splitlines()
                if "@B done" not in lines:
                    raise RuntimeError(f"rv32 prims did not finish:\n{text[-2000:]}")
                prims = [json.loads(x[3:]) for x in lines if x.startswith("@B {")]
            log(f"row 2: VIRT_RV32 {phase}: {time.monotonic() - t0:.0f} s")
        finally:
            board.stop()
    return res, prims


def rv32_rows(rv: list[dict], m3: dict[str, dict[str, dict]], labels: dict[str, str]) -> list[Row]:
    """rv: device_bench items from VIRT_RV32; m3: bench.collect() results (op -> target ->
    backend -> cell) of the same run."""
    rows = []
    for it in rv:
        if "ns" not in it:
            continue
        m3cell = m3.get(it["op"], {}).get("qemu", {}).get(it["backend"])
        a = _instr(it["ns"])
        base = m3cell["median_instructions"] if m3cell else None
        name = "C" if it["backend"] == "c" else "pure"
        rows.append(Row("2 RV32 vs M3", f"{labels.get(it['op'], it['op'])} ({name}), RV32",
                        _med(a), base, "instr", "the same on the Cortex-M3 (MPS2-AN385)",
                        samples={"ours": a}))
    return rows


# -- row 3: host context ------------------------------------------------------------------

def openssl_speed(seconds: int, log) -> dict[str, float]:
    """Signs per second from `openssl speed` (one process, one core)."""
    rates: dict[str, float] = {}
    for alg, key in (("ecdsap256", "ec"), ("rsa2048", "rsa")):
        proc = subprocess.run(["openssl", "speed", "-seconds", str(seconds), alg],
                              capture_output=True, text=True, timeout=120)
        text = proc.stdout
        if key == "ec":
            m = re.search(r"256 bits ecdsa \(nistp256\)\s+([0-9.]+)s\s+([0-9.]+)s\s+([0-9.]+)", text)
        else:
            m = re.search(r"rsa\s+2048 bits\s+([0-9.]+)s\s+([0-9.]+)s\s+([0-9.]+)", text)
        if m:
            rates[key] = float(m.group(3))
    log(f"row 3: openssl speed: {rates}")
    return rates


def softhsm_speed(work: Path, runs: int, log) -> dict[str, float] | str:
    """Signs per second through PyKCS11 on a fresh SoftHSM2 token; or why not."""
    lib = next((p for p in ("/usr/lib/softhsm/libsofthsm2.so",
                            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so") if Path(p).exists()),
               None)
    if lib is None or shutil.which("softhsm2-util") is None:
        return "softhsm2 not installed (make bench installs it)"
    try:
        import PyKCS11  # type: ignore
        from PyKCS11 import LowLevel  # type: ignore  # noqa: F401
    except ImportError:
        return "PyKCS11 not installed (make bench installs it)"
    shutil.rmtree(work, ignore_errors=True)
    (work / "tokens").mkdir(parents=True)
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench",
                    "--so-pin", "123456", "--pin", "1234"], check=True, capture_output=True)
    p = PyKCS11.PyKCS11Lib()
    p.load(lib)
    slot = next(s for s in p.getSlotList(tokenPresent=True)
                if p.getTokenInfo(s).label.strip() == "bench")
    s = p.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    s.login("1234")
    C = PyKCS11
    ec_params = bytes.fromhex("06082a8648ce3d030107")
    _, ec_priv = s.generateKeyPair(
        [(C.CKA_CLASS, C.CKO_PUBLIC_KEY), (C.CKA_KEY_TYPE, C.CKK_EC), (C.CKA_EC_PARAMS, ec_params),
         (C.CKA_TOKEN, False), (C.CKA_VERIFY, True)],
        [(C.CKA_CLASS, C.CKO_PRIVATE_KEY), (C.CKA_KEY_TYPE, C.CKK_EC), (C.CKA_TOKEN, False),
         (C.CKA_SIGN, True), (C.CKA_PRIVATE, True)],
        mecha=C.Mechanism(C.CKM_EC_KEY_PAIR_GEN))
    _, rsa_priv = s.generateKeyPair(
        [(C.CKA_CLASS, C.CKO_PUBLIC_KEY), (C.CKA_KEY_TYPE, C.CKK_RSA), (C.CKA_MODULUS_BITS, 2048),
         (C.CKA_PUBLIC_EXPONENT, (1, 0, 1)), (C.CKA_TOKEN, False), (C.CKA_VERIFY, True)],
        [(C.CKA_CLASS, C.CKO_PRIVATE_KEY), (C.CKA_KEY_TYPE, C.CKK_RSA), (C.CKA_TOKEN, False),
         (C.CKA_SIGN, True), (C.CKA_PRIVATE, True)],
        mecha=C.Mechanism(C.CKM_RSA_PKCS_KEY_PAIR_GEN))
    digest = bytes(range(32))
    di = bytes.fromhex("3031300d060960864801650304020105000420") + digest
    rates = {}
    for key, priv, mech, data in (("ec", ec_priv, C.CKM_ECDSA, digest),
                                  ("rsa", rsa_priv, C.CKM_RSA_PKCS, di)):
        m = C.Mechanism(mech)
        s.sign(priv, data, m)
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            s.sign(priv, data, m)   # C_SignInit + C_Sign, as the token rows
            ts.append(time.perf_counter() - t0)
        rates[key] = 1 / _med(ts)
    s.logout()
    s.closeSession()
    log(f"row 3: SoftHSM2 via PyKCS11: {rates}")
    return rates


def host_rows(token_ns: dict[str, float | None], ossl: dict[str, float],
              hsm: dict[str, float] | str) -> list[Row]:
    rows = []
    for key, name in (("ec", "P-256 ECDSA"), ("rsa", "RSA-2048 PKCS#1 v1.5")):
        ns = token_ns.get(key)
        ours = 1e9 / ns if ns else None
        rows.append(Row("3 host", f"{name} signs/s, unix C_SignInit+C_Sign vs openssl", ours,
                        ossl.get(key), "/s", "openssl speed (1 core)"))
        if isinstance(hsm, str):
            rows.append(Row("3 host", f"{name} signs/s, unix C_SignInit+C_Sign vs SoftHSM2", ours, None, "/s",
                            "SoftHSM2 via PyKCS11", note=hsm))
        else:
            rows.append(Row("3 host", f"{name} signs/s, unix C_SignInit+C_Sign vs SoftHSM2", ours,
                            hsm.get(key), "/s", "SoftHSM2 2.6 via PyKCS11"))
    return rows


# -- unix firmware runs (rows 4 and 8) ------------------------------------------------------

def unix_run(unix_bin: Path, work: Path, token: Path, code: str, name: str, log,
             timeout: float = 600) -> tuple[str, float | None]:
    """Run code on the unix firmware; returns its output and the wall time from spawn to
    the first line ("firmware start")."""
    script = work / f"{name}.py"
    script.write_text(code)
    env = dict(os.environ, MICROPYPATH=".frozen", PKCS11_TOKEN_DIR=str(token))
    t0 = time.monotonic()
    proc = subprocess.Popen([str(unix_bin), "-X", "heapsize=8M", str(script)], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = None
    chunks = []
    for line in proc.stdout:
        if first is None:
            first = time.monotonic() - t0
        chunks.append(line)
    err = proc.stderr.read() if proc.stderr else b""
    rc = proc.wait(timeout)
    text = b"".join(chunks).decode(errors="replace")
    log(f"unix {name}: {time.monotonic() - t0:.1f} s")
    if rc != 0:
        raise RuntimeError(f"unix {name} exited {rc}:\n{text[-2000:]}\n{err.decode()[-2000:]}")
    return text, first


def tls_rows(res: dict) -> list[Row]:
    a, b = res["tls_token"]["ns"], res["tls_ram"]["ns"]
    r = Row("4 TLS", "TLS 1.3 connect on unix (EC P-256, mutual, TCP_NODELAY), key in the token",
            _med(a) / 1e9, _med(b) / 1e9, "s", "same key in SSLContext.load_cert_chain",
            target="≤ 1.05", samples={"ours": a, "base": b})
    r.ok = r.ratio is not None and r.ratio <= 1.05
    return [r]


BOOT_STEPS = ("firmware start", "import pkcs11, p11tls, mqtt", "token open (C_Initialize, session)",
              "TLS connect (handshake via C_Sign)", "MQTT CONNECT..CONNACK", "first PUBLISH..PUBACK")


def boot_rows(first_line_s: float, res: dict) -> list[Row]:
    steps = [first_line_s] + [x / 1e9 for x in res["boot"]["ns"]]
    total = sum(steps)
    rows = [Row("8 boot", f"{name}", s, total, "s", "share of boot to first PUBACK")
            for name, s in zip(BOOT_STEPS, steps)]
    rows.append(Row("8 boot", "total: start to first PUBACK", total, None, "s", ""))
    return rows


# -- row 5: serial bytes per CLI command -------------------------------------------------

class CountingProxy:
    """A pty for the CLI, forwarding to the board's pty and counting bytes each way."""

    def __init__(self, board_pty: Path) -> None:
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.board = os.open(board_pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.board)
        self.sent = 0       # host -> board
        self.received = 0   # board -> host
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop:
            r, _, _ = select.select([self.master, self.board], [], [], 0.1)
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if fd == self.master:
                    self.sent += len(data)
                    os.write(self.board, data)
                else:
                    self.received += len(data)
                    try:
                        os.write(self.master, data)
                    except OSError:
                        pass

    def reset(self) -> None:
        self.sent = self.received = 0

    def close(self) -> None:
        self._stop = True
        self._t.join(2)
        for fd in (self.master, self._slave, self.board):
            os.close(fd)


def serial_rows(out: Path, qemu_elf: Path, venv_bin: Path, ca, log) -> list[Row]:
    from p11lab.qemu import QemuBoard

    cli = venv_bin / CLI
    if not cli.exists():
        return [Row("5 serial", "CLI commands", None, None, "B", note=f"{cli} missing")]
    work = out / "serial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    from p11lab.localca import new_key
    key = new_key("ec")
    issued = ca.certify(key, "bench-serial")
    if issued.key_path is not None:
        issued.key_path.unlink()
    key_pem = work / "import.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    cert_pem = work / "cert.pem"
    cert_pem.write_bytes(issued.cert_pem)
    commands = [
        ("info", ["info"]),
        ("import-key", ["import-key", str(key_pem), "--label", "Serial Key"]),
        ("import-cert", ["import-cert", str(cert_pem), "--label", "Serial Cert"]),
        ("generate-key", ["generate-key", "--label", "Serial Gen Key"]),
        ("csr", ["csr", "--subject", "CN=bench-serial", "--label", "Serial Gen Key",
                 "--out", str(work / "x.csr")]),
        ("list", ["list"]),
    ]
    rows = []
    board = QemuBoard(work / "board", elf=qemu_elf)
    board.start()
    proxy = CountingProxy(board.pty)
    try:
        for name, args in commands:
            proxy.reset()
            t0 = time.monotonic()
            proc = subprocess.run([str(cli), "-d", proxy.path, "-q", *args], capture_output=True,
                                  text=True, timeout=300, cwd=work)
            wall = time.monotonic() - t0
            time.sleep(0.2)   # let the proxy drain the last bytes (counting only)
            if proc.returncode != 0:
                rows.append(Row("5 serial", f"{CLI} {name}", None, None, "s",
                                note=f"failed ({proc.returncode}): {proc.stderr.strip()[-200:]}"))
                continue
            total = proxy.sent + proxy.received
            at_baud = total * 10 / BAUD   # 8N1: 10 bits a byte; request and reply take turns
            r = Row("5 serial", f"{CLI} {name}: {proxy.sent:,} B sent, {proxy.received:,} B "
                    f"received", at_baud, 2.0, "s", "target 2 s at 115200 baud",
                    target="≤ 2 s", ok=at_baud <= 2.0,
                    note=f"emulated run {wall:.1f} s",
                    samples={"sent": proxy.sent, "received": proxy.received, "wall_s": wall})
            rows.append(r)
            log(f"row 5: {name}: {proxy.sent} B sent, {proxy.received} B received, {wall:.1f} s")
        key_pem.unlink(missing_ok=True)
        rows += bridge_rows(proxy, log)
    finally:
        proxy.close()
        board.stop()
        key_pem.unlink(missing_ok=True)
    return rows


P256_OID = bytes.fromhex("06082a8648ce3d030107")


def bridge_rows(proxy: CountingProxy, log, samples: int = 9) -> list[Row]:
    """One PKCS#11 call through p11bridge (tools/p11bridge's Link, the frames
    `p11bridge serve` sends): bytes each way, the time at 115200 baud, and the wall
    time against the board's own clock around the same call."""
    from p11bridge.link import Link

    link = Link(proxy.path, timeout=120, lock_wait=0)
    link.open()
    rows = []
    try:
        link.call("C_Initialize")
        h = link.call("C_OpenSession", 0, 6)[1]
        _, keys = link.call("C_GenerateKeyPair", h, 0x1040, [(0x180, P256_OID)], [(3, b"bench")])
        calls = (("C_Sign", "EC P-256 C_Sign of 32 bytes", (h, b"x" * 32)),
                 ("C_GetSessionInfo", "C_GetSessionInfo", (h,)))
        for name, what, args in calls:
            trips, boards, sizes = [], [], set()
            for _ in range(samples + 1):            # the first is a warm-up
                if name == "C_Sign":
                    link.call("C_SignInit", h, 0x1041, keys[1])
                proxy.reset()
                t0 = time.perf_counter()
                rv, _ = link.call(name, *args)
                trips.append(time.perf_counter() - t0)
                sizes.add((proxy.sent, proxy.received))  # counted before forwarding: complete
                boards.append(link.board_time())
                if rv != 0:
                    raise RuntimeError(f"{name} through the bridge: CKR 0x{rv:x}")
            trip, board = _med(trips[1:]), _med(boards[1:])
            sent, received = max(sizes)
            at_baud = (sent + received) * 10 / BAUD
            rows.append(Row("5 serial", f"bridge {what}: {sent} B sent, {received} B received",
                            at_baud, 2.0, "s", "target 2 s at 115200 baud", target="≤ 2 s",
                            ok=at_baud <= 2.0,
                            note=f"emulated: {trip * 1e3:.1f} ms round trip, "
                                 f"{board * 1e3:.2f} ms of it on the board (medians of {samples})",
                            samples={"sent": sent, "received": received, "trip_s": trips[1:],
                                     "board_s": boards[1:]}))
            log(f"row 5: bridge {name}: {sent} B sent, {received} B received, "
                f"{trip * 1e3:.1f} ms round trip, {board * 1e3:.1f} ms on the board")
        link.call("C_Finalize")
    finally:
        link.close()
    return rows


# -- row 6: scaling ---------------------------------------------------------------------

SCALE_COUNTS = (1, 8, 32, 64)


def scale_rows(out: Path, qemu_elf: Path, files: dict[str, bytes], runs: int, log,
               counts=SCALE_COUNTS) -> list[Row]:
    from p11lab.qemu import QemuBoard

    work = out / "scale"
    shutil.rmtree(work, ignore_errors=True)
    board = QemuBoard(work / "board", elf=qemu_elf, extra_args=ICOUNT_ARGS)
    board.start()
    data: dict[int, dict] = {}
    try:
        board.mpremote("fs", "cp", str(_staged(work, "bench_ec.der", files)), ":bench_ec.der")
        for n in counts:
            t0 = time.monotonic()
            board.restart()
            _parse(board.exec(device_code("fill", "time_ns", runs, count=n), timeout=600), "fill")
            board.restart()
            data[n] = _parse(board.exec(device_code("scale", "time_ns", runs, count=n),
                                        timeout=600), "scale")
            log(f"row 6: {n} objects: {time.monotonic() - t0:.0f} s")
    finally:
        board.stop()
    rows = []
    n0 = counts[0]
    for op, name, target in (("scale_init", "C_GetFunctionList+C_Initialize (first, fresh boot)",
                              "64 objects < 10 M"),
                             ("scale_find", "C_FindObjects by label (FindObjectsInit..Final)",
                              "at most linear"),
                             ("scale_create", "C_CreateObject cert (flash)", "")):
        base = _med(_instr(data[n0][op]["ns"]))
        for n in counts:
            v = _med(_instr(data[n][op]["ns"]))
            r = Row("6 scale", f"{name}, {n} objects", v, base, "instr",
                    f"the same with {n0} object", samples={"ours": _instr(data[n][op]["ns"])})
            if op == "scale_init" and n == 64:
                r.target, r.ok = "< 10 M instr", v < 10e6
            if op == "scale_find" and n > n0:
                # linear would be base * n / n0; allow what a constant part adds
                r.target, r.ok = "≤ linear", v <= base * n / n0
            rows.append(r)
    for n in counts:
        w = data[n].get("scale_wear")
        if w:
            rows.append(Row("6 scale", f"flash bytes written per C_CreateObject, {n} objects",
                            _med(w["bytes"]), 375, "B", "the certificate's 375 B of DER",
                            note=f"block erases per create: {_med(w['erases']):g}",
                            samples={"ours": w["bytes"], "erases": w["erases"]}))
    return rows


def _staged(work: Path, name: str, files: dict[str, bytes]) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    p = work / name
    p.write_bytes(files[name])
    return p


# -- row 7: footprint -------------------------------------------------------------------

def _size(tool: str, elf: Path) -> dict[str, int] | None:
    if not elf.exists() or shutil.which(tool) is None:
        return None
    out = subprocess.run([tool, str(elf)], capture_output=True, text=True).stdout.splitlines()
    t, d, b = (int(x) for x in out[1].split()[:3])
    return {"text": t, "data": d, "bss": b}


def frozen_sizes(build_dir: Path) -> dict[str, int]:
    """Bytes of .mpy per frozen package/module (the bytecode frozen into flash)."""
    sizes: dict[str, int] = {}
    base = build_dir / "frozen_mpy"
    for p in sorted(base.rglob("*.mpy")):
        rel = p.relative_to(base)
        top = rel.parts[0].removesuffix(".mpy")
        sizes[top] = sizes.get(top, 0) + p.stat().st_size
    return sizes


def _obj_sizes(tool: str, build_dir: Path, sub: str) -> int:
    objs = [str(p) for p in (build_dir / sub).glob("*.o")]
    if not objs:
        return 0
    out = subprocess.run([tool, *objs], capture_output=True, text=True).stdout.splitlines()[1:]
    return sum(int(line.split()[0]) + int(line.split()[1]) for line in out if line.strip())


def size_rows(build: Path) -> list[Row]:
    rows = []
    for port, tool, full, bare in (
            ("qemu M3", "arm-none-eabi-size", build / "qemu" / "firmware.elf",
             build / "bench-qemu-bare" / "firmware.elf"),
            ("unix x86-64", "size", build / "unix" / "micropython",
             build / "bench-unix-bare" / "micropython")):
        a, b = _size(tool, full), _size(tool, bare)
        if a is None or b is None:
            rows.append(Row("7 size", f"{port}: firmware", None, None, "B",
                            note="build missing (make bench-builds)"))
            continue
        for seg in ("text", "data", "bss"):
            r = Row("7 size", f"{port}: {seg} with our modules", a[seg], b[seg], "B",
                    "the same firmware without them")
            rows.append(r)
        flash = (a["text"] + a["data"]) - (b["text"] + b["data"])
        r = Row("7 size", f"{port}: our code in flash (text+data difference)", flash, 60 * 1024,
                "B", "target 60 KB", target="≤ 60 KB")
        if port.startswith("qemu"):
            r.ok = flash <= 60 * 1024
        rows.append(r)
        bdir = full.parent
        c_mod = _obj_sizes(tool, bdir, "pkcs11")
        if c_mod:
            rows.append(Row("7 size", f"{port}: C module objects (text+data, before --gc-sections)",
                            c_mod, None, "B"))
        for name, n in frozen_sizes(bdir).items():
            rows.append(Row("7 size", f"{port}: frozen bytecode {name}", n, None, "B",
                            note=".mpy bytes"))
    return rows


# -- table ------------------------------------------------------------------------------

def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "instr":
        for div, u in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
            if v >= div:
                return f"{v / div:.3g}{u}"
        return f"{v:.0f}"
    if unit == "s":
        if v >= 1:
            return f"{v:.2f} s"
        if v >= 1e-3:
            return f"{v * 1e3:.3g} ms"
        return f"{v * 1e6:.3g} µs"
    if unit == "/s":
        return f"{v:,.0f}/s"
    if unit == "B":
        return f"{v:,.0f} B"
    return f"{v:g} {unit}"


def table(rows: list[Row]) -> list[list[str]]:
    out = [["row", "measurement", "ours", "baseline", "ratio", "baseline is", "target", "note"]]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.3g}"
        tgt = r.target
        if r.ok is not None:
            tgt = f"{tgt} {'met' if r.ok else '**missed**'}"
        out.append([r.group, r.what, _fmt(r.ours, r.unit), _fmt(r.base, r.unit) if r.base is not None
                    else "", ratio, r.base_name, tgt, r.note])
    return out


def chart(rows: list[Row], path: Path) -> str | None:
    """A PNG of every row with a ratio, one panel per group (log scale)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (make bench installs it)"
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.ratio is not None:
            groups.setdefault(r.group, []).append(r)
    if not groups:
        return "no ratios to draw"
    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 1.2 + sum(0.32 * len(v) + 0.8
                                                                    for v in groups.values())),
                             gridspec_kw={"height_ratios": [len(v) + 1 for v in groups.values()]})
    if len(groups) == 1:
        axes = [axes]
    for ax, (g, rs) in zip(axes, groups.items()):
        labels = [r.what[:70] for r in rs]
        vals = [r.ratio for r in rs]
        colors = ["tab:red" if r.ok is False else "tab:green" if r.ok else "tab:blue" for r in rs]
        ax.barh(range(len(rs)), vals, color=colors)
        ax.set_yticks(range(len(rs)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(f"row {g}: ours / baseline (red: target missed)", fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def save(rows: list[Row], out: Path) -> None:
    (out / "compare.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
