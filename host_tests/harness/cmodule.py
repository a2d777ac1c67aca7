"""Call the `_pkcs11` C module on the unix firmware and get Python values back.

A test writes MicroPython code that sets `out`; `cmodule.run(code)` runs it
after a small prelude and returns `out` decoded from JSON on the host. Byte
strings travel as {"hex": ...} and come back as `bytes`; `call(f, *args)` on
the device turns an exception into {"error": name, "msg": text}.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .unix import UnixFirmware

_PRELUDE = """
import _pkcs11 as P
import json

def x(s):
    return bytes.fromhex(s)

def rd(name):
    with open(name, 'rb') as f:
        return f.read()

def enc(v):
    if isinstance(v, (bytes, bytearray)):
        return {'hex': bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [enc(i) for i in v]
    if isinstance(v, dict):
        return {k: enc(w) for k, w in v.items()}
    return v

def call(f, *args):
    try:
        return enc(f(*args))
    except Exception as e:
        return {'error': type(e).__name__, 'msg': str(e)}

out = None
"""

_EPILOGUE = """
print('@@OUT@@' + json.dumps(enc(out)))
"""


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"hex"}:
            return bytes.fromhex(v["hex"])
        return {k: _decode(w) for k, w in v.items()}
    if isinstance(v, list):
        return [_decode(i) for i in v]
    return v


class CModule:
    """The unix firmware seen as a remote `_pkcs11`; files go to `work_dir`."""

    def __init__(self, fw: UnixFirmware) -> None:
        self.fw = fw
        self.work_dir: Path = fw.work_dir

    @staticmethod
    def script(code: str) -> str:
        return _PRELUDE + textwrap.dedent(code) + _EPILOGUE

    @staticmethod
    def result(stdout: str) -> Any:
        for line in stdout.splitlines():
            if line.startswith("@@OUT@@"):
                return _decode(json.loads(line[len("@@OUT@@"):]))
        raise AssertionError(f"no result line in firmware output:\n{stdout}")

    def run(self, code: str) -> Any:
        """Run code on the unix firmware (cwd = work_dir)."""
        return self.result(self.fw.run(self.script(code)))

    def run_on_board(self, board: Any, code: str, files: tuple[str, ...] = (), timeout: float = 600) -> Any:
        """Run code on a QemuBoard, after copying `files` from work_dir to its flash."""
        for name in files:
            board.cp_to(self.work_dir / name, name)
        path = self.work_dir / "board_snippet.py"
        path.write_text(self.script(code))
        return self.result(board.run_file(path, timeout=timeout))

    def openssl(self, *args: str, input: bytes | None = None) -> bytes:
        """Run openssl in work_dir; return stdout."""
        proc = subprocess.run(["openssl", *args], cwd=self.work_dir, input=input,
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} failed:\n{proc.stderr.decode()}")
        return proc.stdout


def is_error(result: Any, name: str = "ValueError") -> bool:
    return isinstance(result, dict) and result.get("error") == name and bool(result.get("msg"))


@pytest.fixture
def cmodule(unix_fw: UnixFirmware) -> CModule:
    return CModule(unix_fw)
