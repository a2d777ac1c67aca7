"""Talking to a board: board selection, mpremote's SerialTransport, and this
repository's unix firmware (on a pty) and qemu board started through p11lab."""

from __future__ import annotations

import ast
import contextlib
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from p11lab import LabError, paths

from .device import MARK
from .errors import Exit, ToolError

Progress = Callable[[str], None]


class DeviceFailure(Exception):
    """The device script reported an exception: (type name, CKR value or None, text)."""

    def __init__(self, kind: str, rv: int | None, text: str) -> None:
        super().__init__(text)
        self.kind = kind
        self.rv = rv
        self.text = text


class Board:
    """A connected board in raw REPL mode; `run()` executes one device script."""

    def __init__(self, transport: Any, name: str, timeout: float) -> None:
        self.transport = transport
        self.name = name
        self.timeout = timeout

    def run(self, code: str, progress: Progress | None = None) -> Any:
        """Run a script from p11board.device; return its result (the R line).
        Raises DeviceFailure for an E line, ToolError for transport trouble."""
        from mpremote.transport import TransportError

        lines: list[str] = []
        pending = bytearray()

        def consume(b: bytes) -> None:
            pending.extend(b)
            if b == b"\n":
                line = pending.decode("utf-8", "replace").rstrip("\r\n")
                pending.clear()
                if line.startswith(MARK + "P") and progress is not None:
                    try:
                        progress(str(ast.literal_eval(line[len(MARK) + 1:])))
                    except (ValueError, SyntaxError):
                        pass
                lines.append(line)

        t = self.transport
        try:
            t.exec_raw_no_follow(code)
            t.read_until(1, b"\x04", timeout=self.timeout, data_consumer=consume)
            if pending.endswith(b"\x04"):
                pending.pop()
                lines.append(pending.decode("utf-8", "replace"))
            else:
                raise ToolError(Exit.CONNECTION, f"{self.name}: no answer within {self.timeout:g} s "
                                "(the board is busy or hung; reset it, or raise --timeout)")
            err = t.read_until(1, b"\x04", timeout=self.timeout)
        except TransportError as e:
            raise ToolError(Exit.CONNECTION, f"{self.name}: {e}") from None
        except OSError as e:
            raise ToolError(Exit.CONNECTION, f"{self.name}: connection lost ({e})") from None
        err = err[:-1] if err.endswith(b"\x04") else err
        if err.strip():
            last = err.decode("utf-8", "replace").strip().splitlines()[-1]
            if "MemoryError" in last:
                raise ToolError(Exit.DEVICE, f"{self.name}: the board ran out of memory ({last}); "
                                "reset it and try again")
            raise ToolError(Exit.DEVICE, f"{self.name}: the device script failed: {last}")
        result = None
        for line in lines:
            for tag in ("R", "E"):
                if line.startswith(MARK + tag):
                    try:
                        value = ast.literal_eval(line[len(MARK) + 1:])
                    except (ValueError, SyntaxError):
                        raise ToolError(Exit.DEVICE, f"{self.name}: garbled answer from the board") from None
                    if tag == "E":
                        kind, rv, text = value
                        raise DeviceFailure(kind, rv, text)
                    result = value
        if result is None:
            raise ToolError(Exit.DEVICE, f"{self.name}: the board gave no answer "
                            "(is this the project's firmware?)")
        return result


# -- connecting -----------------------------------------------------------------


class Connection:
    """Context manager: opens the board (starting an emulator if asked), yields a Board."""

    def __init__(self, *, device: str = "auto", unix: bool = False, qemu: bool = False,
                 firmware: str | None = None, token_dir: str | None = None,
                 elf: str | None = None, flash: str | None = None, timeout: float = 60,
                 say: Progress | None = None) -> None:
        self.device = device
        self.unix = unix
        self.qemu = qemu
        self.firmware = firmware
        self.token_dir = token_dir
        self.elf = elf
        self.flash = flash
        self.timeout = timeout
        self.say = say or (lambda s: None)
        self._stops: list[Callable[[], None]] = []
        self.transport: Any = None

    def __enter__(self) -> Board:
        try:
            if self.unix:
                path, name = self._start_unix()
            elif self.qemu:
                path, name = self._start_qemu()
            else:
                path, name = self._find_serial(), None
            return self._open(path, name or path)
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        t, self.transport = self.transport, None
        if t is not None:
            try:
                t.exit_raw_repl()
            except Exception:
                pass
            try:
                t.close()
            except Exception:
                pass
        while self._stops:
            try:
                self._stops.pop()()
            except Exception:
                pass

    # -- serial ports ---------------------------------------------------------

    def _find_serial(self) -> str:
        if self.device != "auto":
            dev = self.device[5:] if self.device.startswith("port:") else self.device
            return dev
        import serial.tools.list_ports

        ports = [p for p in sorted(serial.tools.list_ports.comports())
                 if p.vid is not None and p.pid is not None]
        if not ports:
            raise ToolError(Exit.CONNECTION, "no USB serial device found: plug the board in, or give "
                            "--device PORT (or --unix / --qemu for this repository's firmware)")
        if len(ports) > 1:
            self.say(f"several serial devices; using {ports[0].device} "
                     f"(others: {', '.join(p.device for p in ports[1:])})")
        return ports[0].device

    def _open(self, path: str, name: str) -> Board:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.say(f"connecting to {name}")
        try:
            self.transport = SerialTransport(path, baudrate=115200)
        except TransportError as e:
            msg = str(e)
            if msg.startswith("failed to access"):
                msg += " (no such port, no permission, or in use by another program)"
            raise ToolError(Exit.CONNECTION, msg) from None
        except OSError as e:
            raise ToolError(Exit.CONNECTION, f"cannot open {path}: {e}") from None
        # mpremote reads a /dev/pts/N device with blocking reads, which never
        # time out on a silent pty; poll it like any other serial port instead.
        self.transport.is_pty = False
        try:
            # mpremote prints what it got when the raw REPL does not answer: keep
            # that off stdout (it may carry --json output).
            seen = io.StringIO()
            with contextlib.redirect_stdout(seen):
                self.transport.enter_raw_repl(soft_reset=True, timeout_overall=max(10.0, self.timeout / 3))
        except (TransportError, OSError) as e:
            got = seen.getvalue().strip()[-300:]
            raise ToolError(Exit.CONNECTION, f"{name}: no MicroPython raw REPL ({e}): is a "
                            "MicroPython board on that port, and no program holding it?"
                            + (f" The board said: {got}" if got else "")) from None
        return Board(self.transport, name, self.timeout)

    # -- this repository's unix firmware on a pty -------------------------------

    def _start_unix(self) -> tuple[str, str]:
        from p11lab.unix import UnixPtyBoard

        try:
            binary = Path(self.firmware) if self.firmware else paths.unix_binary()
            if not binary.exists():
                raise ToolError(Exit.CONNECTION, f"{binary} is missing: run `make unix` (or give --firmware)")
            token_dir = None
            if self.token_dir:
                token_dir = Path(self.token_dir).resolve()
                token_dir.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="p11board-unix-"))
            self._stops.append(lambda: shutil.rmtree(work, ignore_errors=True))
            # Ready when it returns: the REPL prompt has been seen (see p11lab.unix).
            board = UnixPtyBoard(token_dir, work, binary, timeout=20)
        except LabError as e:
            raise ToolError(Exit.CONNECTION, f"--unix: {e}") from None
        self._stops.append(board.stop)
        where = f"unix firmware ({token_dir or 'its default token directory'})"
        return board.pty, where

    # -- this repository's qemu board ------------------------------------------

    def _start_qemu(self) -> tuple[str, str]:
        from p11lab.qemu import QemuBoard

        try:
            elf = Path(self.elf) if self.elf else paths.qemu_elf()
            if not elf.exists():
                raise ToolError(Exit.CONNECTION, f"{elf} is missing: run `make qemu` (or give --elf)")
            if self.flash:
                flash = Path(self.flash)
            else:
                flash = paths.build_dir() / "p11board-qemu" / "flash.img"
            flash = flash.resolve()
            flash.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="p11board-qemu-"))
            self._stops.append(lambda: shutil.rmtree(work, ignore_errors=True))
            board = QemuBoard(work, elf=elf, flash=flash)
            self._stops.append(board.stop)
            self.say(f"starting qemu ({elf.name}, flash image {flash})")
            pty = board.start()
        except LabError as e:
            raise ToolError(Exit.CONNECTION, f"--qemu: {e}") from None
        return str(pty), f"qemu board (flash image {flash})"
