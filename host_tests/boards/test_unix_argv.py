"""The unix firmware takes command-line arguments, MICROPYPATH entries and script
folders of any length: 256 bytes or more used to end it with "FATAL: uncaught NLR"
before the script ran (a qstr holds at most 255 bytes; firmware/patches/unix-long-argv.patch)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from harness.paths import UNIX_BIN
from harness.unix import firmware_env

SCRIPT = """
import sys, hashlib, binascii
for a in sys.argv[1:]:
    print(len(a), binascii.hexlify(hashlib.sha256(a.encode()).digest()).decode(), type(a).__name__)
print("PATH", [len(p) for p in sys.path])
"""


def _expected(args: list[str]) -> list[str]:
    return [f"{len(a)} {hashlib.sha256(a.encode()).hexdigest()} str" for a in args]


def _run(unix_fw, argv: list[str], env: dict[str, str] | None = None,
         cwd=None) -> subprocess.CompletedProcess[str]:
    full = firmware_env(unix_fw.token_dir, f".frozen:{unix_fw.work_dir}")
    full.update(env or {})
    return subprocess.run([str(UNIX_BIN), *argv], capture_output=True, text=True, timeout=60,
                          env=full, cwd=cwd or unix_fw.work_dir)


@pytest.mark.parametrize("n", [255, 256, 1000, 100_000])
def test_long_argument_reaches_sys_argv(unix_fw, n: int) -> None:
    script = unix_fw.work_dir / "g.py"
    script.write_text(SCRIPT)
    args = ["x" * n, "short", "é" * (n // 2)]
    proc = _run(unix_fw, [str(script), *args])
    assert "FATAL" not in proc.stderr + proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:3] == _expected(args)


def test_long_argument_after_dash_c(unix_fw) -> None:
    args = ["y" * 300]
    proc = _run(unix_fw, ["-c", SCRIPT, *args])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:1] == _expected(args)


def test_long_micropypath_entry_and_script_directory(unix_fw) -> None:
    # A script named by a short relative path in a deep folder: sys.path[0] is the
    # folder's real path. (A module's own file path must stay under 256 bytes: the
    # compiler interns it, and says "RuntimeError: name too long" otherwise.)
    deep = unix_fw.work_dir
    for i in range(6):
        deep = deep / (f"d{i}" + "z" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep)) >= 256
    (deep / "g.py").write_text(SCRIPT)
    proc = _run(unix_fw, ["g.py", "a"], env={"MICROPYPATH": f".frozen:{deep}"}, cwd=deep)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == _expected(["a"])[0]
    # the script's folder first, then the MICROPYPATH entries
    assert lines[1] == f"PATH {[len(str(deep)), len('.frozen'), len(str(deep))]}"
