"""A short libFuzzer run of the C parsers (make fuzz with a 30 s budget): the
private key, public key and certificate parsers of _pkcs11 and the PEM armour,
natively with ASan and UBSan. Any sanitizer report or crash fails the test."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from harness.paths import BUILD, ROOT

pytestmark = pytest.mark.slow

SECONDS = int(os.environ.get("FUZZ_SECONDS", "30"))


def test_parsers_survive_a_short_fuzz_run():
    env = dict(os.environ, BUILD=str(BUILD), FUZZ_SECONDS=str(SECONDS))
    env.setdefault("JOBS", "2")
    proc = subprocess.run(["bash", str(ROOT / "firmware" / "fuzz" / "fuzz.sh")], capture_output=True,
                          text=True, env=env, timeout=3600)
    print(proc.stdout[-2000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    m = re.search(r"executions: (\d+) in \d+ s, findings: (\d+)", proc.stdout)
    assert m, proc.stdout
    assert int(m.group(2)) == 0
    assert int(m.group(1)) > 100, "the fuzzer barely ran"
