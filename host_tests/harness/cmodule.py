"""Call the `_pkcs11` C module on the unix firmware and get Python values back.

A test writes MicroPython code that sets `out`; `cmodule.run(code)` runs it
after a small prelude and returns `out` decoded from JSON on the host. Byte
strings travel as {"hex": ...} and come back as `bytes`; `call(f, *args)` on
the device turns an exception into {"error": name, "msg": text}.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .device_json import MARK, last_json, snippet
from .unix import UnixFirmware

_PRELUDE = snippet("cmodule_prelude")

_EPILOGUE = f"""
print('{MARK}' + json.dumps(enc(out)))
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
        return _decode(last_json(stdout))

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
