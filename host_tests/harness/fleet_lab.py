"""Fleet provisioning tests' lab (the `fleet` fixture): local CA, mosquitto with the fleet ACLs, the
responder (tools/p11lab/fleet_responder.py) and boards running fleetprov on the unix
firmware, each with its own token directory.

A board run can be cut at any point: the device driver numbers every step boundary
of fleetprov (fleetprov.fault) and every record write of the token store (before
and after its rename, pkcs11.store.fault); with cut=N it stops at point N and the
test kills the firmware with SIGKILL, as a power cut would.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from p11lab.fleet_responder import FleetBroker, FleetResponder, load_template
from p11lab.localca import LocalCA
from p11lab.unix import firmware_env

from .paths import ROOT, UNIX_BIN

TEMPLATE_FILE = ROOT / "docs" / "fleet" / "template.json"
TEMPLATE = "mpy-fleet"
CLAIM_CN = "claim-batch-1"

DRIVER = r'''
import sys, json
import fleetprov
from pkcs11 import store
with open(sys.argv[1]) as f:
    ARGS = json.load(f)
CUT = ARGS.pop("cut", 0)
n = [0]
def point(label):
    n[0] += 1
    print("POINT %d %s" % (n[0], label))
    if n[0] == CUT:
        print("CUTNOW")
        sys.stdin.readline()    # the test kills the firmware here (SIGKILL)
        sys.exit(3)
fleetprov.fault = lambda step: point("step:" + step)
store.fault = lambda stage, name: point("store:%s:%s" % (stage, name))
def log(text):
    print("LOG " + text)
try:
    r = fleetprov.provision(log=log, **ARGS)
    print("RESULT " + json.dumps(r))
except fleetprov.Rejected as e:
    print("REJECTED " + json.dumps({"api": e.api, "statusCode": e.status_code,
                                    "errorCode": e.error_code, "errorMessage": e.error_message,
                                    "final": e.final}))
except fleetprov.FleetError as e:
    print("ERROR " + json.dumps({"type": type(e).__name__, "message": str(e)}))
'''

INSPECT = r'''
import json, pkcs11, fleetprov
with pkcs11.open_session(rw=False) as s:
    objs = sorted([type(o).__name__, bytes(o.label).decode()] for o in s.find_objects())
    ident = fleetprov.device_identity(s)
print("INSPECT " + json.dumps({"objects": objs, "identity": ident,
                               "state": fleetprov.read_json(fleetprov.STATE_FILE),
                               "config": fleetprov.read_json(fleetprov.CONFIG_FILE)}))
'''

LOAD_CLAIM = r'''
import sys, json, pkcs11, fleetprov
with open(sys.argv[1]) as f:
    a = json.load(f)
with pkcs11.open_session(rw=True) as s:
    s.import_key(a["key"].encode(), label="Claim Key")
    s.import_certificate(a["cert"].encode(), label="Claim Cert")
    s.import_certificate(a["ca"].encode(), label="Root Cert")
fleetprov.write_json(fleetprov.CLAIM_FILE, a["settings"])
print("LOADED")
'''

# What the device sees of the local stand-in.
def claim_settings(port: int, **extra: Any) -> dict[str, Any]:
    s = {"template": TEMPLATE, "endpoint": "127.0.0.1", "server_name": "localhost",
         "port": port, "parameters": {}}
    s.update(extra)
    return s


@dataclass
class Run:
    """One firmware run of the driver."""

    lines: list[str]
    returncode: int | None
    cut: bool

    def tagged(self, tag: str) -> Any:
        for line in self.lines:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        return None

    @property
    def result(self) -> Any:
        return self.tagged("RESULT")

    @property
    def rejected(self) -> Any:
        return self.tagged("REJECTED")

    @property
    def error(self) -> Any:
        return self.tagged("ERROR")

    @property
    def points(self) -> list[str]:
        return [line.split(" ", 2)[2] for line in self.lines if line.startswith("POINT ")]

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Board:
    """A unix firmware board with its own token directory."""

    token_dir: Path
    work_dir: Path
    heap: str = "8M"
    runs: list[Run] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        return firmware_env(self.token_dir, f".frozen:{self.work_dir}")

    def script(self, name: str, text: str) -> Path:
        path = self.work_dir / name
        if not path.exists():
            path.write_text(text)
        return path

    def arg_file(self, arg: Any) -> str:
        # arguments travel in a file: the unix firmware fails on very long argv strings
        path = self.work_dir / "args.json"
        path.write_text(json.dumps(arg))
        return str(path)

    def exec(self, name: str, text: str, arg: Any, timeout: float = 120) -> str:
        proc = subprocess.run([str(UNIX_BIN), "-X", f"heapsize={self.heap}", str(self.script(name, text)),
                               self.arg_file(arg)], capture_output=True, text=True, timeout=timeout,
                              env=self._env(), cwd=self.work_dir)
        if proc.returncode != 0:
            raise AssertionError(f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def load_claim(self, claim: Any, ca: LocalCA, settings: dict[str, Any]) -> None:
        out = self.exec("fleet_load_claim.py", LOAD_CLAIM, {
            "key": claim.key_pem.decode(), "cert": claim.cert_pem.decode(),
            "ca": ca.root_pem.decode(), "settings": settings})
        assert "LOADED" in out, out

    def provision(self, cut: int = 0, deadline: float = 120, **kw: Any) -> Run:
        """Run fleetprov.provision(**kw); with cut=N, SIGKILL the firmware at point N."""
        def on_line(line: str, proc: subprocess.Popen[bytes]) -> bool:
            if line == "CUTNOW":
                os.kill(proc.pid, signal.SIGKILL)   # the power cut
                return True
            return False
        return self.interact("fleet_driver.py", DRIVER, dict(kw, cut=cut), on_line, deadline)

    def interact(self, name: str, text: str, arg: Any,
                 on_line: Callable[[str, subprocess.Popen[bytes]], bool] | None = None,
                 timeout: float = 120) -> Run:
        """Run a device script, calling on_line(line, proc) for each line it prints
        (it returns True when it killed the process)."""
        proc = subprocess.Popen([str(UNIX_BIN), "-X", f"heapsize={self.heap}",
                                 str(self.script(name, text)), self.arg_file(arg)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=self._env(), cwd=self.work_dir)
        assert proc.stdout is not None
        lines: list[str] = []
        buf = b""
        deadline = time.monotonic() + timeout
        was_cut = False
        fd = proc.stdout.fileno()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s did not finish in %d s:\n%s" % (name, timeout, "\n".join(lines)))
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    lines.append(line.decode(errors="replace").rstrip("\r"))
                    if on_line is not None and on_line(lines[-1], proc):
                        was_cut = True
        finally:
            if proc.poll() is None and not was_cut:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)   # a hung run: stopped by its PID
            rc = proc.wait(timeout=10)
            proc.stdout.close()
            if proc.stdin:
                proc.stdin.close()
        run = Run(lines, rc, was_cut)
        self.runs.append(run)
        if not was_cut and rc != 0:
            raise AssertionError(f"{name} exited {rc}:\n{run.text()}")
        return run

    def inspect(self) -> dict[str, Any]:
        out = self.exec("fleet_inspect.py", INSPECT, None)
        for line in out.splitlines():
            if line.startswith("INSPECT "):
                return json.loads(line[8:])
        raise AssertionError(out)

    def labels(self) -> list[list[str]]:
        return self.inspect()["objects"]


class FleetLab:
    """CA, broker, responder; boards on demand."""

    def __init__(self, tmp: Path) -> None:
        if not UNIX_BIN.exists():
            pytest.fail(f"{UNIX_BIN} is missing: run `make unix` first")
        self.tmp = tmp
        self.ca = LocalCA(tmp / "ca", name="Fleet Test Root CA")
        server = self.ca.issue_server(("localhost", "127.0.0.1"))
        self.claim = self.ca.issue_client(CLAIM_CN)
        responder_id = self.ca.issue_client("fleet-responder")
        self.broker = FleetBroker(tmp / "broker", self.ca.root_path, server.cert_path,
                                  server.key_path, {CLAIM_CN: TEMPLATE})
        self.broker.start()
        self.log: list[str] = []
        self.responder = FleetResponder(
            "127.0.0.1", self.broker.port, self.ca, [load_template(TEMPLATE_FILE, TEMPLATE)],
            (self.ca.root_path, responder_id.cert_path, responder_id.key_path),
            on_register=self.broker.allow_thing, log=self.log.append)
        try:
            self.responder.start()
        except BaseException:
            self.broker.stop()
            raise
        self._boards = 0

    def board(self, serial: str | None = "SN0001", load: bool = True, heap: str = "8M",
              **settings: Any) -> Board:
        self._boards += 1
        base = self.tmp / f"board{self._boards}"
        token, work = base / "token", base / "work"
        token.mkdir(parents=True)
        work.mkdir()
        b = Board(token, work, heap)
        if load:
            s = claim_settings(self.broker.port, **settings)
            if serial is not None:
                s["parameters"] = dict(s["parameters"], SerialNumber=serial)
            b.load_claim(self.claim, self.ca, s)
        return b

    def close(self) -> None:
        try:
            self.responder.stop()
        finally:
            self.broker.stop()
        assert not self.responder.errors, self.responder.errors


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetLab]:
    lab = FleetLab(tmp_path)
    yield lab
    lab.close()


def device_identity_or_claim(view: dict[str, Any]) -> str:
    """The invariant after any cut: 'claim' (no device key) or 'device' (key and its
    certificate); raises when a device key is there without its certificate."""
    labels = [label for _cls, label in view["objects"]]
    if "Device Priv TLS Key" not in labels:
        assert "Claim Key" in labels and "Claim Cert" in labels, view
        return "claim"
    assert view["identity"], f"a device key without its certificate: {view}"
    return "device"
