"""`make demo`'s script (demo/run.py) end to end on the unix firmware, as `make demo` runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from harness.paths import ROOT, UNIX_BIN


def run_demo(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "demo" / "run.py"), "--firmware", str(UNIX_BIN),
                           "--workdir", str(tmp_path / "demo"), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_demo_runs_the_main_job(tmp_path):
    proc = run_demo(tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # Every step is printed with its time, in order.
    titles = re.findall(r"^\[\s*\d+\.\d\d s\] (\d)\. (.*)$", out, re.M)
    assert [n for n, _ in titles] == list("1234567")
    assert "key pair generated inside the token (C_GenerateKeyPair)" in out
    assert "built and signed by the token (C_Sign)" in out
    assert "received on demo/demo-thing/echo: b'hello from the token of demo-thing'" in out
    # a broker that offers TLS 1.2 and 1.3, as AWS IoT Core does: the device takes 1.3
    assert "TLSv1.3 handshake (TLS1-3-" in out and "signed in the token" in out
    assert "client 'demo-thing' authenticated as 'demo-thing'" in out
    # The broker was stopped by its PID.
    pid = int(re.search(r"pid (\d+), port", out).group(1))  # type: ignore[union-attr]
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
    log = (tmp_path / "demo" / "mosquitto.log").read_text()
    assert re.search(r"New client connected from 127\.0\.0\.1:\d+ as demo-thing .*u'demo-thing'", log)
    # The token holds the device's objects; the key never left it.
    assert (tmp_path / "demo" / "token").is_dir()
    assert "PRIVATE KEY" not in out


def test_endpoint_mode_needs_a_thing_name(tmp_path):
    proc = run_demo(tmp_path, "--endpoint", "example-ats.iot.eu-west-1.amazonaws.com")
    assert proc.returncode != 0
    assert "endpoint mode needs THING=<thing name>" in proc.stderr
