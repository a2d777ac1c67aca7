"""Getting results back from code run on a board: the one helper every test uses.

A snippet prints its result as one JSON line (the last JSON object it prints, or the
line after MARK when the snippet's other output may look like JSON). Long snippets
and preludes live as .py files under host_tests/device/, where they can be linted
and searched."""

from __future__ import annotations

import json
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

DEVICE_DIR = Path(__file__).resolve().parents[1] / "device"
MARK = "@@OUT@@"


@cache
def snippet(name: str) -> str:
    """The device code in host_tests/device/<name>.py."""
    return (DEVICE_DIR / f"{name}.py").read_text()


def last_json(out: str) -> Any:
    """The result of a snippet's output: the line after MARK if there is one,
    otherwise the last line if it is JSON, otherwise the last JSON object or list."""
    lines = out.strip().splitlines()
    for line in lines:
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    if lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    for line in reversed(lines):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON result in the output:\n{out}")


def run_json(board: Any, code: str, prelude: str = "", **kw: Any) -> Any:
    """Run prelude + code on a board with a `run(source)` method (the unix firmware)
    and return its JSON result."""
    return last_json(board.run(prelude + textwrap.dedent(code), **kw))
