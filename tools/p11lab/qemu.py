"""Run the emulated MPS2-AN385 firmware under qemu, reachable by mpremote.

One `QemuBoard` is one qemu process plus a socat process that gives it a stable
pty path, both started and stopped by PID. Everything lives in one folder:

    flash.img   the littlefs2 flash image (the firmware opens it by this name
                through semihosting, relative to qemu's working directory)
    uart.log    every byte the board sent on its UART (across restarts)
    pty         symlink to the pty for mpremote / a terminal

Used by the CLI's --qemu, `make bench`, the tests (the `qemu_board` fixture), and by hand:

    python3 -m p11lab.qemu [--dir DIR] [--flash IMAGE] [--elf ELF]

prints the pty path and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import time
import tty
from pathlib import Path

from . import paths
from .errors import LabError, QemuError, ToolMissing

FLASH_NAME = "flash.img"


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the launcher dies, so no qemu outlives a killed test run."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _stop_pid(proc: subprocess.Popen | None, timeout: float = 5) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class QemuBoard:
    """qemu + socat for one board folder. `start()` returns the pty path."""

    def __init__(self, work_dir: Path | str, *, elf: Path | str | None = None,
                 flash: Path | str | None = None, extra_args: tuple[str, ...] = (),
                 machine: str = "mps2-an385") -> None:
        self.work_dir = Path(work_dir).resolve()
        self.machine = machine      # mps2-an386: the same board with a Cortex-M4 (the bench)
        self.elf = Path(elf) if elf is not None else paths.default_build() / "qemu" / "firmware.elf"
        self.extra_args = tuple(extra_args)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.flash = self.work_dir / FLASH_NAME
        if flash is not None and Path(flash).resolve() != self.flash:
            # The firmware always opens flash.img in qemu's folder: point it at the image.
            if self.flash.is_symlink() or self.flash.exists():
                self.flash.unlink()
            self.flash.symlink_to(Path(flash).resolve())
        self.pty = self.work_dir / "pty"
        self.log_path = self.work_dir / "uart.log"
        self.qemu: subprocess.Popen | None = None
        self.socat: subprocess.Popen | None = None
        self._sock_dir: str | None = None

    # -- lifetime -------------------------------------------------------------

    def start(self, timeout: float = 20) -> Path:
        if self.running:
            return self.pty
        paths.require(self.elf, "qemu")
        for tool in ("qemu-system-arm", "socat"):
            if shutil.which(tool) is None:
                raise ToolMissing(f"the qemu board needs {tool} (Debian: apt install "
                                  f"{'qemu-system-arm' if tool.startswith('qemu') else tool})")
        # A unix socket path must stay short (108 bytes): keep it in /tmp.
        self._sock_dir = tempfile.mkdtemp(prefix="qemu-")
        sock = Path(self._sock_dir) / "uart.sock"
        cmd = [
            "qemu-system-arm", "-machine", self.machine, "-nographic", "-monitor", "null",
            "-semihosting",
            "-chardev", f"socket,id=s0,path={sock},server=on,wait=off,"
                        f"logfile={self.log_path},logappend=on",
            "-serial", "chardev:s0",
            "-kernel", str(self.elf), *self.extra_args,
        ]
        with open(self.work_dir / "qemu.out", "ab") as out:
            self.qemu = subprocess.Popen(cmd, cwd=self.work_dir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
        try:
            self._wait(lambda: sock.exists(), timeout, "qemu's UART socket")
            if self.pty.is_symlink():
                self.pty.unlink()
            with open(self.work_dir / "socat.out", "ab") as out:
                self.socat = subprocess.Popen(
                    ["socat", f"PTY,link={self.pty},raw,echo=0", f"UNIX-CONNECT:{sock}"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent)
            self._wait(lambda: self.pty.exists(), timeout, "socat's pty")
        except BaseException:
            self.stop()
            raise
        return self.pty

    def _wait(self, cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            for name, proc in (("qemu", self.qemu), ("socat", self.socat)):
                if proc is not None and proc.poll() is not None:
                    out = self.work_dir / f"{name}.out"
                    text = out.read_text(errors="replace") if out.exists() else ""
                    raise QemuError(f"{name} exited ({proc.returncode}) waiting for {what}:\n{text}")
            if time.monotonic() > end:
                raise QemuError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop socat and qemu (by PID); the flash image and log stay."""
        _stop_pid(self.socat)
        _stop_pid(self.qemu)
        self.socat = self.qemu = None
        if self._sock_dir:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None

    def restart(self, timeout: float = 20) -> Path:
        """Stop qemu and start it again on the same flash image."""
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.qemu is not None and self.qemu.poll() is None

    @property
    def pid(self) -> int | None:
        return self.qemu.pid if self.qemu else None

    def __enter__(self) -> "QemuBoard":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- output ---------------------------------------------------------------

    @property
    def uart_log(self) -> str:
        """Everything the board has sent on its UART so far (all runs in this folder)."""
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 20, start: int = 0) -> str:
        """Wait until `text` appears in the UART log after character `start`."""
        end = time.monotonic() + timeout
        while True:
            log = self.uart_log
            if text in log[start:]:
                return log
            if not self.running:
                raise QemuError(f"qemu exited before {text!r} appeared; log:\n{log[-2000:]}")
            if time.monotonic() > end:
                raise QemuError(f"{text!r} not in the UART log after {timeout} s; log:\n{log[-2000:]}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the qemu process has used so far."""
        if self.qemu is None:
            raise QemuError("qemu is not running")
        fields = Path(f"/proc/{self.qemu.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- mpremote -------------------------------------------------------------

    def mpremote(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `mpremote connect <pty> <args...>`."""
        if not self.running:
            raise QemuError("qemu is not running")
        proc = subprocess.run([*paths.mpremote_cmd(), "connect", str(self.pty), *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise QemuError(f"mpremote {' '.join(args)[:200]} exited {proc.returncode}\n"
                            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
        return proc

    def exec(self, code: str, timeout: float = 120, resume: bool = False) -> str:
        """Run code on the board; returns what it printed. mpremote soft-resets the
        board first (fresh interpreter, filesystem remounted) unless resume=True."""
        args = ("resume", "exec", code) if resume else ("exec", code)
        return self.mpremote(*args, timeout=timeout).stdout

    def run_file(self, path: Path | str, timeout: float = 120) -> str:
        """Run a local script on the board (`mpremote run`); returns what it printed."""
        return self.mpremote("run", str(path), timeout=timeout).stdout

    def cp_to(self, local: Path | str, remote: str, timeout: float = 300) -> None:
        """Copy a local file to the board's filesystem (remote path like '/x' or 'x')."""
        self.mpremote("fs", "cp", str(local), ":" + remote, timeout=timeout)

    def cp_from(self, remote: str, local: Path | str, timeout: float = 300) -> None:
        """Copy a file from the board's filesystem to a local path."""
        self.mpremote("fs", "cp", ":" + remote, str(local), timeout=timeout)

    # -- raw terminal ---------------------------------------------------------

    def open_serial(self) -> "SerialPty":
        """A raw connection to the board's UART (for Ctrl-C and REPL tests)."""
        return SerialPty(self.pty)


class SerialPty:
    """Minimal raw terminal on the board's pty."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIFLUSH)
        self.received = b""

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_until(self, marker: bytes, timeout: float = 20) -> bytes:
        """Read until `marker` appears in what arrived since the last match."""
        end = time.monotonic() + timeout
        while marker not in self.received:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not ready:
                raise QemuError(f"{marker!r} not received in {timeout} s; got:\n{self.received[-2000:]!r}")
            self.received += os.read(self.fd, 4096)
        head, _, self.received = self.received.partition(marker)
        return head + marker

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "SerialPty":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the qemu MPS2-AN385 firmware with a stable pty.")
    ap.add_argument("--dir", default="qemu-board",
                    help="folder for flash.img, uart.log and the pty link (default: ./qemu-board)")
    ap.add_argument("--flash", help="flash image to use (default: DIR/flash.img, created when missing)")
    ap.add_argument("--elf", help="firmware (default: $BUILD/qemu/firmware.elf)")
    args = ap.parse_args(argv)
    board = QemuBoard(args.dir, elf=args.elf, flash=args.flash)
    try:
        pty = board.start()
    except LabError as e:
        print(f"p11lab.qemu: {e}", file=sys.stderr)
        return 1
    print(f"pty: {pty}\nuart log: {board.log_path}\nqemu pid: {board.pid}\n"
          f"connect with: mpremote connect {pty}   (Ctrl-C here stops qemu)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while board.running:
            time.sleep(0.5)
        print("qemu exited (machine.reset() ends the emulator)")
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
