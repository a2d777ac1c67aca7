"""Talking to a board: board selection, mpremote's SerialTransport, and this
repository's unix firmware (on a pty) and qemu board started through p11lab."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from p11lab import LabError, paths

from .device import MARK
from .errors import Exit, ToolError
from .lock import Lock

Progress = Callable[[str], None]


class DeviceFailure(Exception):
    """The device script reported an exception: (type name, CKR value or None, text)."""

    def __init__(self, kind: str, rv: int | None, text: str,
                 pin_state: tuple[int, int] | None = None) -> None:
        super().__init__(text)
        self.kind = kind
        self.rv = rv
        self.text = text
        # after a wrong or locked PIN: (token flags, the token's limit of wrong tries)
        self.pin_state = pin_state


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
        pin_state = None
        for line in lines:
            for tag in ("R", "E", "F"):
                if line.startswith(MARK + tag):
                    try:
                        value = ast.literal_eval(line[len(MARK) + 1:])
                    except (ValueError, SyntaxError):
                        raise ToolError(Exit.DEVICE, f"{self.name}: garbled answer from the board") from None
                    if tag == "F":
                        pin_state = value
                        continue
                    if tag == "E":
                        kind, rv, text = value
                        raise DeviceFailure(kind, rv, text, pin_state)
                    result = value
        if result is None:
            raise ToolError(Exit.DEVICE, f"{self.name}: the board gave no answer "
                            "(is this the project's firmware?)")
        return result


# -- connecting -----------------------------------------------------------------

RAW_REPL_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"


def enter_raw_repl(transport: Any, timeout: float) -> None:
    """mpremote's enter_raw_repl(soft_reset=True), but interrupting until the
    board answers. mpremote sends one Ctrl-C; a board that is booting (just
    started, or reset by opening its port) takes it as plain input while its
    boot code runs with Ctrl-C off, and then runs main.py for ever. Once the
    prompt is there, the soft reset runs the user's boot.py again: that is
    waited for, not interrupted."""
    from mpremote.transport import TransportError

    deadline = time.monotonic() + timeout
    wait = 1.0
    while True:
        transport.serial.write(b"\r\x03")
        while transport.serial.inWaiting() > 0:
            transport.serial.read(transport.serial.inWaiting())
        transport.serial.write(b"\r\x01")
        left = deadline - time.monotonic()
        data = transport.read_until(1, RAW_REPL_PROMPT, timeout=None, timeout_overall=max(0.1, min(wait, left)))
        if data.endswith(RAW_REPL_PROMPT):
            break
        if time.monotonic() >= deadline:
            print(data)
            raise TransportError("could not enter raw repl")
        wait = min(wait * 2, 4.0)
    transport.serial.write(b"\x04")
    deadline = time.monotonic() + timeout
    for ending in (b"soft reboot\r\n", RAW_REPL_PROMPT[:-1]):
        data = transport.read_until(1, ending, timeout=None,
                                    timeout_overall=max(0.1, deadline - time.monotonic()))
        if not data.endswith(ending):
            print(data)
            raise TransportError("could not enter raw repl")
    transport.in_raw_repl = True



class Connection:
    """Context manager: opens the board (starting an emulator if asked), yields a Board."""

    def __init__(self, *, device: str = "auto", unix: bool = False, qemu: bool = False,
                 firmware: str | None = None, token_dir: str | None = None,
                 elf: str | None = None, flash: str | None = None, timeout: float = 60,
                 say: Progress | None = None, create: bool = False) -> None:
        self.device = device
        self.unix = unix
        self.qemu = qemu
        self.firmware = firmware
        self.token_dir = token_dir
        self.elf = elf
        self.flash = flash
        self.timeout = timeout
        self.say = say or (lambda s: None)
        self.create = create
        self.created = False        # a new, empty token was made for this command
        self._stops: list[Callable[[], None]] = []
        self.transport: Any = None

    def __enter__(self) -> Board:
        try:
            if self.unix:
                path, name = self._start_unix()
            elif self.qemu:
                path, name = self._start_qemu()
            else:
                # mpremote opens the port with pyserial's exclusive=True: an flock
                # for as long as this command runs (see _open for the busy case)
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

    def _lock(self, path: Path | str, what: str) -> None:
        lock = Lock(path, what).acquire()
        self._stops.append(lock.release)

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
                if os.path.exists(path):
                    Lock(path, "serial port").acquire().release()     # raises the busy error when held
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
                enter_raw_repl(self.transport, min(self.timeout, max(10.0, self.timeout / 3)))
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
            token_dir = self._token_dir()
            self._lock(token_dir, "token directory")
            work = Path(tempfile.mkdtemp(prefix="p11board-unix-"))
            self._stops.append(lambda: shutil.rmtree(work, ignore_errors=True))
            # Ready when it returns: the REPL prompt has been seen (see p11lab.unix).
            board = UnixPtyBoard(token_dir, work, binary, timeout=20)
        except LabError as e:
            raise ToolError(Exit.CONNECTION, f"--unix: {e}") from None
        self._stops.append(board.stop)
        where = f"unix firmware (token directory {token_dir})"
        return board.pty, where

    def _token_dir(self) -> Path:
        """The token directory, made when it is new and that is allowed: the
        default one, or any with --create. A typo in --token-dir must not make
        an empty token that then "holds no objects"."""
        if self.token_dir:
            d = Path(self.token_dir).expanduser().resolve()
            given = True
        else:
            d = default_token_dir()
            given = False
        if d.is_dir():
            return d
        if d.exists():
            raise ToolError(Exit.USAGE, f"--token-dir {d} is not a directory")
        if given and not self.create:
            raise ToolError(Exit.USAGE, f"--token-dir {d} does not exist: check the path, or add "
                            "--create to make a new, empty token there")
        d.mkdir(parents=True, exist_ok=True)
        self.created = True
        self.say(f"new token: created the empty token directory {d}")
        return d

    # -- this repository's qemu board ------------------------------------------

    def _start_qemu(self) -> tuple[str, str]:
        from p11lab.qemu import QemuBoard

        try:
            elf = Path(self.elf) if self.elf else paths.qemu_elf()
            if not elf.exists():
                raise ToolError(Exit.CONNECTION, f"{elf} is missing: run `make qemu` (or give --elf)")
            flash = self._flash_image()
            self._lock(flash, "flash image")
            work = Path(tempfile.mkdtemp(prefix="p11board-qemu-"))
            self._stops.append(lambda: shutil.rmtree(work, ignore_errors=True))
            board = QemuBoard(work, elf=elf, flash=flash)
            self._stops.append(board.stop)
            self.say(f"starting qemu ({elf.name}, flash image {flash})")
            pty = board.start()
        except LabError as e:
            raise ToolError(Exit.CONNECTION, f"--qemu: {e}") from None
        return str(pty), f"qemu board (flash image {flash})"

    def _flash_image(self) -> Path:
        """The flash image, made (empty: it reads as erased flash) when it is new
        and that is allowed: the default one, or any with --create."""
        if self.flash:
            f = Path(self.flash).expanduser().resolve()
            given = True
        else:
            f = default_flash_image()
            given = False
        if f.is_file():
            return f
        if f.exists():
            raise ToolError(Exit.USAGE, f"--flash {f} is not a file")
        if given and not self.create:
            raise ToolError(Exit.USAGE, f"--flash {f} does not exist: check the path, or add "
                            "--create to make a new, empty flash image there")
        if not given:
            try:
                old = paths.default_build() / "p11board-qemu" / "flash.img"
            except Exception:
                old = None
            if old is not None and old.is_file():
                raise ToolError(Exit.USAGE, f"the default flash image moved out of the build directory "
                                f"(make clean deleted it): move {old} to {f}, or give --flash {old}")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
        self.created = True
        self.say(f"new token: created the empty flash image {f}")
        return f


def data_dir() -> Path:
    """Where p11board keeps user state that must outlive `make clean`:
    $XDG_DATA_HOME/p11board, by default ~/.local/share/p11board."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "p11board"


def default_flash_image() -> Path:
    """--qemu's flash image when --flash is not given (outside build/: `make
    clean` keeps it)."""
    return data_dir() / "qemu-flash.img"


def default_token_dir() -> Path:
    """--unix's token directory when --token-dir is not given: the firmware's own
    default (PKCS11_TOKEN_DIR, else ~/.micropython/pkcs11-token)."""
    env = os.environ.get("PKCS11_TOKEN_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".micropython" / "pkcs11-token"
