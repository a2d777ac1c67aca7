"""p11board's connection layer: device auto-detection, timeouts, and how board
failures become exit codes."""

from __future__ import annotations

import sys

import pytest

from harness.paths import BUILD, ROOT

sys.path.insert(0, str(ROOT / "tools"))

from p11board import cli, device  # noqa: E402
from p11board.connection import Connection, DeviceFailure  # noqa: E402
from p11board.errors import Exit, ToolError  # noqa: E402


class _Port:
    """What serial.tools.list_ports.comports() yields (ordered by device, as pyserial's are)."""

    def __init__(self, device: str, vid: int | None, pid: int | None) -> None:
        self.device, self.vid, self.pid = device, vid, pid

    def __lt__(self, other: "_Port") -> bool:
        return self.device < other.device


def test_auto_picks_the_first_usb_serial_port_like_mpremote(monkeypatch):
    import serial.tools.list_ports as lp

    said: list[str] = []
    ports = [_Port("/dev/ttyS0", None, None), _Port("/dev/ttyUSB1", 0x10C4, 0xEA60),
             _Port("/dev/ttyUSB0", 0x1A86, 0x7523)]
    monkeypatch.setattr(lp, "comports", lambda: ports)
    c = Connection(device="auto", say=said.append)
    assert c._find_serial() == "/dev/ttyUSB0"
    assert "several serial devices" in said[0] and "/dev/ttyUSB1" in said[0]
    monkeypatch.setattr(lp, "comports", lambda: ports[:1])
    with pytest.raises(ToolError) as e:
        c._find_serial()
    assert e.value.code == Exit.CONNECTION and "no USB serial device found" in str(e.value)
    assert Connection(device="port:/dev/ttyACM3")._find_serial() == "/dev/ttyACM3"


def test_a_busy_board_times_out_with_exit_3(unix_fw, monkeypatch):
    monkeypatch.setenv("BUILD", str(BUILD))
    with Connection(unix=True, token_dir=str(unix_fw.token_dir), timeout=1.5) as board:
        with pytest.raises(ToolError) as e:
            board.run("import time\ntime.sleep(6)\n")
    assert e.value.code == Exit.CONNECTION and "no answer within 1.5 s" in str(e.value)


def test_board_failures_map_to_exit_codes(unix_fw, monkeypatch, capsys):
    monkeypatch.setenv("BUILD", str(BUILD))
    with Connection(unix=True, token_dir=str(unix_fw.token_dir), timeout=30) as board:
        with pytest.raises(DeviceFailure) as e:
            board.run(device.script("def _main():\n    import no_such_module_here\n"))
        assert cli._report_device_failure(e.value) == Exit.DEVICE
        assert "lacks a module" in capsys.readouterr().err
        with pytest.raises(DeviceFailure) as e:
            board.run(device.script("def _main():\n    import pkcs11\n    pkcs11.C_GetFunctionList().C_Finalize()\n"))
        assert e.value.rv == 0x190
        assert cli._report_device_failure(e.value) == Exit.TOKEN
        assert "CKR_CRYPTOKI_NOT_INITIALIZED" in capsys.readouterr().err
        # a script that does not compile: the board's traceback becomes exit 7
        with pytest.raises(ToolError) as t:
            board.run("def broken(:\n")
        assert t.value.code == Exit.DEVICE and "SyntaxError" in str(t.value)
        # anything else the board prints is not taken for an answer
        with pytest.raises(ToolError) as t:
            board.run("print('hello')\n")
        assert t.value.code == Exit.DEVICE and "no answer" in str(t.value)
        # and the connection still works afterwards
        assert board.run(device.script("def _main():\n    _o('R', 41 + 1)\n")) == 42


def test_default_labels_are_the_device_packages_labels():
    """The CLI's default labels are pkcs11.labels' FreeRTOS labels (the host cannot import
    the device package, so it keeps copies: this compares them)."""
    import ast

    from p11board import names

    source = next(p for p in sorted((ROOT / "modules").rglob("labels.py")) if "pkcs11" in str(p))
    labels = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(source.read_text()).body
              if isinstance(n, ast.Assign)}
    assert names.DEFAULT_KEY_LABEL.encode() == labels["LABEL_DEVICE_PRIVATE_KEY"]
    assert names.DEFAULT_PUB_LABEL.encode() == labels["LABEL_DEVICE_PUBLIC_KEY"]
    assert names.DEFAULT_CERT_LABEL.encode() == labels["LABEL_DEVICE_CERTIFICATE"]
    assert names.DEFAULT_CA_LABEL.encode() == labels["LABEL_ROOT_CERTIFICATE"]


def test_product_code_never_imports_the_test_harness():
    """tools/, demo/ and bench/ import p11lab, never host_tests (nor pytest in p11lab)."""
    import ast

    bad = []
    for folder in ("tools", "demo", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names_ = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                for name in names_:
                    top = name.split(".")[0]
                    if top in ("harness", "host_tests", "conftest") or \
                            (top == "pytest" and "p11lab" in path.parts):
                        bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, bad
