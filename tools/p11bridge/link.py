"""The serial link to the board: one raw-REPL start of modules/p11bridge/p11bridge.py,
then one binary frame per PKCS#11 call (tools/p11bridge/wire.py).

Failures map to what the application should see:
  DeviceLost     the port went away or the board restarted     CKR_DEVICE_REMOVED
  DeviceTimeout  no answer within the timeout                  CKR_DEVICE_ERROR
  BoardBusy      another application holds the board           CKR_DEVICE_ERROR
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from . import wire

CKR_DEVICE_ERROR = 0x30
CKR_DEVICE_REMOVED = 0x32
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
START = b"import p11bridge;p11bridge.run()\x04"


class LinkError(Exception):
    rv = CKR_DEVICE_ERROR


class DeviceLost(LinkError):
    rv = CKR_DEVICE_REMOVED


class DeviceTimeout(LinkError):
    rv = CKR_DEVICE_ERROR


class BoardBusy(LinkError):
    rv = CKR_DEVICE_ERROR


def lock_path(device: str) -> Path:
    """One lock file per board (its real path), in the user's runtime folder."""
    real = os.path.realpath(device)
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    tag = re.sub(r"[^A-Za-z0-9]+", "-", real).strip("-")[-40:]
    digest = hashlib.sha256(real.encode()).hexdigest()[:8]
    return Path(base) / f"p11bridge-{tag}-{digest}.lock"


class BoardLock:
    """An flock on the board's lock file, held from C_Initialize to C_Finalize:
    two applications never share the serial line; the second waits up to
    `wait` seconds, then is refused with the holder's pid in the message."""

    def __init__(self, device: str, wait: float) -> None:
        self.path = lock_path(device)
        self.wait = wait
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        end = time.monotonic() + self.wait
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise BoardBusy(f"the board is in use by another application"
                                    f"{' (pid ' + holder + ')' if holder else ''}; "
                                    f"lock {self.path}") from None
                time.sleep(delay)       # poll the lock: flock has no timeout
                delay = min(delay * 2, 0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)       # closing drops the flock
            self.fd = None


class Link:
    """The board behind one serial port, serving modules/p11bridge/p11bridge.py."""

    def __init__(self, device: str, *, timeout: float = 60.0, lock_wait: float = 10.0,
                 baudrate: int = 115200, log: Callable[[str], None] | None = None) -> None:
        self.device = device
        self.timeout = timeout
        self.baudrate = baudrate
        self.log = log or (lambda s: None)
        self.lock = BoardLock(device, lock_wait)
        self.port: Any = None
        self.ops: dict[str, int] = {}

    # -- lifetime ---------------------------------------------------------------

    def open(self) -> None:
        self.lock.acquire()
        try:
            self._open_port()
            self._start()
        except BaseException:
            self._close_port()
            self.lock.release()
            raise

    def _open_port(self) -> None:
        import serial

        try:
            self.port = serial.Serial(self.device, self.baudrate, timeout=self.timeout,
                                      write_timeout=self.timeout, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            raise DeviceLost(f"cannot open {self.device}: {e}") from None

    def _start(self) -> None:
        """Raw REPL (knocking until it answers: the board may be booting, or
        still in a loop a crashed host left, which leaves on a non-frame byte),
        then one `import p11bridge; p11bridge.run()`, then the ready frame."""
        end = time.monotonic() + min(self.timeout, 20.0)
        seen = b""
        while True:
            self._write(b"\r\x03\x03\x01")
            seen = self._read_until(RAW_BANNER, min(1.0, max(0.05, end - time.monotonic())))
            if seen.endswith(RAW_BANNER):
                break
            if time.monotonic() >= end:
                raise DeviceTimeout(f"{self.device}: no MicroPython raw REPL "
                                    f"(the board said {seen[-120:]!r})")
        self._write(START)
        got = self._read_until(b"OK", 5.0)
        if not got.endswith(b"OK"):
            raise DeviceTimeout(f"{self.device}: the raw REPL did not take the start command")
        rv, result = self._read_frame(start=True)
        if rv != 0 or not isinstance(result, list) or result[0] != 1:
            raise LinkError(f"{self.device}: unexpected start frame {result!r}")
        ops = list(result[1])
        self.ops = {name: i for i, name in enumerate(ops)}

    def close(self) -> None:
        """Stop the board's loop (back to its REPL) and drop the lock."""
        if self.port is not None:
            try:
                self._write(wire.request(wire.STOP_OP, []))
                self._read_frame()
                self._read_until(b"\x04>", 2.0)
                self._write(b"\x02")        # Ctrl-B: the friendly REPL, as we found it
            except (LinkError, OSError):
                pass
        self._close_port()
        self.lock.release()

    def abort(self) -> None:
        """Forget the board after a failure: close the port, drop the lock."""
        self._close_port()
        self.lock.release()

    def _close_port(self) -> None:
        p, self.port = self.port, None
        if p is not None:
            try:
                p.close()
            except Exception:
                pass

    # -- calls ------------------------------------------------------------------

    def call(self, name: str, *args: object, **kw: object) -> tuple[int, object]:
        """(rv, result) of one C_* call on the board."""
        op = self.ops.get(name)
        if op is None:
            return 0x54, None       # CKR_FUNCTION_NOT_SUPPORTED: not on this board
        self._write(wire.request(op, args, kw or None))
        return self._read_frame()

    def board_time(self) -> float:
        """Seconds the board spent in the last call (its own clock)."""
        self._write(wire.request(wire.TIME_OP, []))
        return int(self._read_frame()[1]) / 1e6     # type: ignore[call-overload]

    # -- bytes --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as e:
            raise DeviceLost(f"{self.device}: {e}") from None

    def _read(self, n: int, timeout: float | None = None) -> bytes:
        import serial

        p = self.port
        if timeout is not None:
            p.timeout = timeout
        try:
            data = p.read(n)
        except (serial.SerialException, OSError, TypeError) as e:
            # pyserial raises SerialException (or TypeError on a closed port)
            # when the device is unplugged or the pty's other side is gone
            raise DeviceLost(f"{self.device}: {e}") from None
        finally:
            if timeout is not None:
                p.timeout = self.timeout
        return data

    def _read_until(self, marker: bytes, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        got = b""
        while not got.endswith(marker):
            left = end - time.monotonic()
            if left <= 0:
                break
            b = self._read(1, left)
            if not b:
                break
            got += b
        return got

    def _read_frame(self, start: bool = False) -> tuple[int, object]:
        h = self._read(1)
        if not h:
            raise DeviceTimeout(f"{self.device}: no answer within {self.timeout:g} s")
        if h[0] != wire.RESPONSE:
            # Not one of our frames: the board restarted (banner), or the loop
            # failed (raw REPL end marker and traceback).
            tail = h + self._read_until(b">", 0.5)
            if start and h == b"\x04":
                raise LinkError(f"{self.device}: p11bridge did not start on the board: "
                                f"{_traceback(tail + self._read_until(b'>', 1.0))}")
            raise DeviceLost(f"{self.device}: the board restarted or left the bridge loop "
                             f"(it said {tail[:80]!r})")
        n = self._read(2)
        if len(n) < 2:
            raise DeviceTimeout(f"{self.device}: frame cut short")
        (length,) = struct.unpack(">H", n)
        body = self._read(length)
        if len(body) < length:
            raise DeviceTimeout(f"{self.device}: frame cut short")
        value, _ = wire.decode(body)
        rv, result = value   # type: ignore[misc]
        return rv, result


def _traceback(raw: bytes) -> str:
    text = raw.replace(b"\x04", b"\n").decode(errors="replace").strip(">\r\n ")
    last = [line for line in text.splitlines() if line.strip()]
    return last[-1] if last else text
