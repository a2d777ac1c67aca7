"""One p11board at a time per token: an advisory lock (flock) on the token's
storage for the whole command.

What is locked:
  * --qemu: the flash image file itself;
  * --unix: the token directory itself (a directory can be flock()ed on Linux);
  * a serial port: mpremote opens it with pyserial's `exclusive=True`, an flock
    of the device node for as long as the command runs; when that open fails,
    p11board checks the same lock and calls a held port busy.

A second p11board on the same storage fails at once with exit code 3 ("busy")
before it has touched anything: two writers at once used to lose objects while
both reported success. The lock goes with the process (the kernel drops it when
the file descriptor closes, also on a crash), so nothing stale is left behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .errors import Exit, ToolError


class Lock:
    """flock(LOCK_EX | LOCK_NB) on `path`; ToolError(Exit.CONNECTION) when taken."""

    def __init__(self, path: Path | str, what: str) -> None:
        self.path = str(path)
        self.what = what
        self.fd: int | None = None

    def acquire(self) -> "Lock":
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags)
        except OSError as e:
            raise ToolError(Exit.CONNECTION, f"cannot open {self.what} {self.path} to lock it "
                            f"({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ToolError(Exit.CONNECTION, f"{self.what} {self.path} is busy: another "
                                "p11board (or a program that locked it) is using it; nothing was "
                                "changed. Run the commands one after the other.") from None
            raise ToolError(Exit.CONNECTION, f"cannot lock {self.what} {self.path} ({e.strerror})") from None
        self.fd = fd
        return self

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)        # closing drops the flock
            except OSError:
                pass

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
