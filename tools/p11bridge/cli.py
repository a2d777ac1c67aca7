"""p11bridge: the board's PKCS#11 token for every host program, through p11-kit.

    p11bridge serve --device /dev/ttyUSB0      p11-kit RPC on stdin/stdout (run by p11-kit)
    p11bridge install-module --device /dev/ttyUSB0 [--name board]
                                               writes ~/.config/pkcs11/modules/board.module

The provisioning CLI offers the same two commands (`p11board serve`,
`p11board install-module`) through add_commands().
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Callable


AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def add_commands(add: AddCommand) -> None:
    """Add `serve` and `install-module` to a CLI: add(name, fn, help) makes the
    subcommand's parser and stores fn (taking the parsed arguments) as its command."""
    p = add("serve", cmd_serve, "speak p11-kit's RPC protocol on stdin/stdout for the board "
            "(run by p11-kit-proxy.so from a module file)")
    _device_args(p)
    p = add("install-module", cmd_install_module, "write a p11-kit module file so every PKCS#11 "
            "program sees the board's token (through p11-kit-proxy.so)")
    _device_args(p)
    p.add_argument("--name", default="micropython-token",
                   help="module name: ~/.config/pkcs11/modules/NAME.module (default %(default)s)")
    p.add_argument("--config-dir", default=None,
                   help="folder for the module file (default ~/.config/pkcs11/modules)")
    p.add_argument("--force", action="store_true", help="replace an existing module file")


def _device_args(p: argparse.ArgumentParser) -> None:
    # `--device` may already exist on a parent parser (p11board's board selection)
    if not any("--device" in a.option_strings for a in p._actions):
        p.add_argument("-d", "--device", default="auto",
                       help="the board's serial port (default: the only USB serial device)")
    p.add_argument("--call-timeout", type=float, default=60.0,
                   help="seconds one call may take on the board (default %(default)s)")
    p.add_argument("--wait", type=float, default=10.0,
                   help="seconds to wait while another application uses the board (default %(default)s)")


def _find_device(device: str) -> str:
    if device and device != "auto":
        return device[5:] if device.startswith("port:") else device
    import serial.tools.list_ports

    ports = [p.device for p in sorted(serial.tools.list_ports.comports())
             if p.vid is not None and p.pid is not None]
    if len(ports) != 1:
        raise SystemExit(f"p11bridge: give --device ({'no USB serial device' if not ports else 'several: ' + ', '.join(ports)})")
    return ports[0]


def cmd_serve(args: argparse.Namespace) -> int:
    from .link import Link
    from .server import serve

    device = _find_device(args.device)
    # stdout is the protocol: keep it to ourselves and send stray prints to stderr
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    return serve(lambda: Link(device, timeout=args.call_timeout, lock_wait=args.wait, log=log),
                 0, out_fd, log)


def _p11kit_library(name: str) -> str | None:
    import sysconfig

    arch = sysconfig.get_config_var("MULTIARCH") or ""
    for d in (f"/usr/lib/{arch}", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        p = Path(d) / name
        if p.exists():
            return str(p)
    return None


def proxy_path() -> str | None:
    """Where p11-kit-proxy.so is (Debian: p11-kit-modules), or None."""
    return _p11kit_library("p11-kit-proxy.so")


def client_path() -> str | None:
    """Where p11-kit-client.so is (Debian: p11-kit-modules), or None: the module
    that runs the command in P11_KIT_SERVER_ADDRESS='|command' without any
    module file, which is how a program running as root reaches the board."""
    return _p11kit_library("pkcs11/p11-kit-client.so")


def remote_address(module_file: Path) -> str:
    """The `remote:` value of a module file (`|command`), for P11_KIT_SERVER_ADDRESS."""
    for line in module_file.read_text().splitlines():
        if line.startswith("remote:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"{module_file} has no remote: line")


def remote_value(command: list[str]) -> str:
    """p11-kit's `|command` form: a module file's remote: value, or P11_KIT_SERVER_ADDRESS."""
    return "|" + shlex.join(command)


def module_text(command: list[str]) -> str:
    return ("# The MicroPython board's PKCS#11 token, through p11-kit's remoting\n"
            "# (written by p11bridge install-module).\n"
            f"remote: {remote_value(command)}\n")


def serve_command(device: str, call_timeout: float, wait: float) -> list[str]:
    exe = Path(sys.argv[0]).absolute()
    if exe.name in ("p11bridge", "p11board") and exe.exists():
        cmd = [str(exe)]
    else:
        cmd = [sys.executable, "-m", "p11bridge"]
    cmd += ["serve", "--device", device]
    if call_timeout != 60.0:
        cmd += ["--call-timeout", f"{call_timeout:g}"]
    if wait != 10.0:
        cmd += ["--wait", f"{wait:g}"]
    return cmd


def cmd_install_module(args: argparse.Namespace) -> int:
    device = _find_device(args.device)
    if not device.startswith("/"):
        device = os.path.abspath(device)
    folder = Path(args.config_dir) if args.config_dir else \
        Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "pkcs11" / "modules"
    path = folder / f"{args.name}.module"
    if path.exists() and not args.force:
        print(f"p11bridge: {path} exists (--force replaces it)", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    command = serve_command(device, args.call_timeout, args.wait)
    path.write_text(module_text(command))
    print(f"wrote {path}")
    proxy = proxy_path()
    if proxy is None:
        print("p11-kit-proxy.so is not installed (Debian: apt install p11-kit-modules)")
    else:
        print(f"try: pkcs11-tool --module {proxy} -L")
    if os.getuid() == 0:
        client = client_path() or "p11-kit-client.so"
        print("note: p11-kit reads no user module files in programs running as root. As root,\n"
              "copy the file to /etc/pkcs11/modules/ (every program on this machine then sees\n"
              "the board), or hand the bridge to one program through p11-kit's client module:\n"
              f"  P11_KIT_SERVER_ADDRESS={shlex.quote(remote_value(command))} \\\n"
              f"    pkcs11-tool --module {client} -L")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p11bridge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    add_commands(add)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
