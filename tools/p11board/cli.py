"""p11board: provision the MicroPython PKCS#11 token over the REPL (mpremote).

Every command connects, runs one or two small scripts on the board (see
p11board.device) and disconnects. Private keys never come back: no script
reads a secret attribute, and no command has a way to ask for one.

This module: the command line (options, subcommands), main() and the mapping of
failures to exit codes (p11board.errors.Exit). The commands are in
p11board.commands, their output in p11board.show.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any, Callable

from p11bridge.cli import add_commands as add_bridge_commands

from . import __version__, commands, device, fleet, names, show
from .connection import DeviceFailure
from .errors import EXIT_HELP, PIN_PROMPT, Exit, PinNeeded, ToolError, ckr_sentence

CKR_USER_NOT_LOGGED_IN = 0x101
from .show import PROG, UI

PIN_ENV = "P11BOARD_PIN"

# -- connection options ------------------------------------------------------------------

CONNECTION_DEFAULTS: dict[str, Any] = {
    "device": "auto", "unix": False, "qemu": False, "firmware": None, "token_dir": None,
    "elf": None, "flash": None, "create": False, "pin": None, "pin_fd": None, "timeout": 60.0, "json": False, "quiet": False,
}

# options that carry a secret: given as arguments they show in `ps` and in the
# shell history (issue 10, finding 9)
SECRET_OPTIONS = ("pin", "old_pin", "new_pin", "so_pin", "user_pin")


def _common_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    S = argparse.SUPPRESS
    g = p.add_argument_group("board selection (like mpremote)")
    g.add_argument("-d", "--device", default=S, metavar="PORT",
                   help="serial port (/dev/ttyUSB0, port:/dev/ttyACM0) or 'auto' (default: the "
                        "first USB serial device, as mpremote picks it)")
    g.add_argument("--unix", action="store_true", default=S,
                   help="run this repository's unix firmware on a pty (needs socat)")
    g.add_argument("--firmware", default=S, metavar="PATH",
                   help="unix firmware binary (default: $BUILD/unix/micropython)")
    g.add_argument("--token-dir", default=S, metavar="DIR",
                   help="with --unix: the token directory (PKCS11_TOKEN_DIR; default: the "
                        "firmware's own, ~/.micropython/pkcs11-token, made on first use)")
    g.add_argument("--qemu", action="store_true", default=S,
                   help="run this repository's qemu board (p11lab.qemu)")
    g.add_argument("--elf", default=S, metavar="PATH",
                   help="qemu firmware (default: $BUILD/qemu/firmware.elf)")
    g.add_argument("--flash", default=S, metavar="IMAGE",
                   help="with --qemu: persistent flash image (default: "
                        "~/.local/share/p11board/qemu-flash.img, made on first use)")
    g.add_argument("--create", action="store_true", default=S,
                   help="make the --token-dir directory or --flash image when it does not exist "
                        "(a new, empty token); without it a missing one is refused")
    o = p.add_argument_group("common options")
    o.add_argument("--pin", default=S,
                   help="user PIN, when the token has one (better left out: on a terminal a "
                        "command that needs it asks; or env P11BOARD_PIN, --pin-fd; '-' asks up "
                        "front; a PIN in the arguments shows in ps and the shell history)")
    o.add_argument("--pin-fd", type=int, default=S, metavar="FD",
                   help="read the user PIN from this file descriptor (its first line)")
    o.add_argument("--timeout", type=float, default=S, metavar="SECONDS",
                   help="longest silence from the board before giving up (default 60)")
    o.add_argument("--json", action="store_true", default=S, help="JSON output: info, list, show, "
                   "config print their records; every other command, and every failure, one "
                   "summary {ok, command, exit, error, output, messages}")
    o.add_argument("-q", "--quiet", action="store_true", default=S, help="no progress messages")
    return p


def _fill_defaults(args: argparse.Namespace) -> None:
    for k, v in CONNECTION_DEFAULTS.items():
        if not hasattr(args, k):
            setattr(args, k, v)
    given = [k for k in SECRET_OPTIONS if getattr(args, k, None) not in (None, "-")]
    if given:
        show.warn(", ".join("--" + k.replace("_", "-") for k in given)
                   + " on the command line shows in ps and the shell history; use the prompt "
                   f"(leave it out or give '-'), {PIN_ENV} or --pin-fd")
    if args.pin is None and args.pin_fd is not None:
        args.pin = read_pin_fd(args.pin_fd)
    if args.pin is None:
        args.pin = os.environ.get(PIN_ENV) or None
    if args.pin == "-":
        if not sys.stdin.isatty():
            raise ToolError(Exit.ABORTED, "--pin -: no terminal to ask for the PIN on; give it "
                            f"with --pin PIN or the environment variable {PIN_ENV}")
        args.pin = getpass.getpass(PIN_PROMPT)
    if args.unix and args.qemu:
        raise ToolError(Exit.USAGE, "--unix and --qemu exclude each other")
    if (args.unix or args.qemu) and args.device != "auto":
        raise ToolError(Exit.USAGE, "--device cannot be combined with --unix or --qemu")


def read_pin_fd(fd: int) -> str:
    """The first line from file descriptor fd (closed after reading)."""
    try:
        with os.fdopen(fd, "r", closefd=True) as f:
            line = f.readline()
    except OSError as e:
        raise ToolError(Exit.USAGE, f"--pin-fd {fd}: {e.strerror}") from None
    return line.rstrip("\r\n")


# -- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    p = argparse.ArgumentParser(
        prog=PROG, parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Provision the PKCS#11 token of this MicroPython firmware over the REPL: "
                    "import or generate keys, make CSRs for AWS IoT, manage certificates, PINs "
                    "and the client configuration. Private keys never leave the board.",
        epilog=EXIT_HELP + "\n\nSee docs/aws-iot-walkthrough.md for the AWS IoT steps.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace, UI], int], help: str,
            aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help, description=help, aliases=list(aliases))
        sp.set_defaults(func=fn)
        return sp

    add("info", commands.info, "token, slot, mechanisms, free space, board and configuration")
    add("list", commands.list_objects, "objects: class, label, key type, size, id (never secrets)")

    sp = add("show", commands.show_objects, "public attributes of the objects labelled LABEL "
             "(certificates decoded: subject, issuer, validity, SHA-256 fingerprint)")
    sp.add_argument("label", metavar="LABEL")
    sp.add_argument("--class", dest="cls", choices=list(names.CKO_BY_NAME), help="only this class")

    sp = add("import-key", commands.import_key, "store a private key from a PEM/DER file (EC P-256 or "
             "RSA-2048; PKCS#8, SEC1, PKCS#1); it is sent once and never comes back")
    sp.add_argument("file", metavar="FILE.pem")
    sp.add_argument("--label", default=names.DEFAULT_KEY_LABEL, help=f"default {names.DEFAULT_KEY_LABEL!r}")
    sp.add_argument("--public-label", help=f"label of the public key object stored with it "
                    f"(default {names.DEFAULT_PUB_LABEL!r} for the default key label, else the key's label)")
    sp.add_argument("--no-public", action="store_true", help="do not store the public key object")
    sp.add_argument("--id", help="CKA_ID in hex (default: SHA-1 of the public key)")
    sp.add_argument("--replace", action="store_true", help="replace objects with the same labels")
    sp.add_argument("--force", action="store_true", help=f"store it even when the token's "
                    f"{names.DEFAULT_CERT_LABEL!r} is the certificate of another key")

    for name, fn, label, what in (("import-cert", commands.import_cert, names.DEFAULT_CERT_LABEL, "the device certificate"),
                                  ("import-ca", commands.import_ca, names.DEFAULT_CA_LABEL, "a root CA certificate")):
        sp = add(name, fn, f"store {what} from a PEM/DER file (label {label!r})")
        sp.add_argument("file", metavar="FILE.pem")
        sp.add_argument("--label", help=f"default {label!r}")
        sp.add_argument("--id", help="CKA_ID in hex (default: SHA-1 of the certificate's public key)")
        sp.add_argument("--replace", action="store_true", help="replace a certificate with the same label")
        sp.add_argument("--force", action="store_true", help=f"store a {names.DEFAULT_CERT_LABEL!r} "
                        f"even when it is not for the token's {names.DEFAULT_KEY_LABEL!r}")
        if name == "import-ca":
            sp.add_argument("--so-pin", help="the SO PIN, when the token has one: a trusted root "
                                             "(CKA_TRUSTED) is stored by the SO ('-' asks)")

    sp = add("generate-key", commands.generate_key, "generate an EC P-256 key pair inside the token "
             "(prints the public key)")
    sp.add_argument("--label", default=names.DEFAULT_KEY_LABEL, help=f"default {names.DEFAULT_KEY_LABEL!r}")
    sp.add_argument("--public-label", help=f"default {names.DEFAULT_PUB_LABEL!r} for the default key label")
    sp.add_argument("--id", help="CKA_ID in hex (default: SHA-1 of the public key)")
    sp.add_argument("--replace", action="store_true", help="replace keys with the same labels")
    sp.add_argument("--force", action="store_true", help=f"replace the device key even though the "
                    f"stored {names.DEFAULT_CERT_LABEL!r} will no longer match it")

    sp = add("csr", commands.csr, "a PKCS#10 request built on the board and signed by the token's key, "
             "for aws iot create-certificate-from-csr")
    sp.add_argument("--subject", required=True, help='e.g. "CN=my-thing" or "CN=my-thing,O=Example"')
    sp.add_argument("--label", default=names.DEFAULT_KEY_LABEL, help=f"the private key (default {names.DEFAULT_KEY_LABEL!r})")
    sp.add_argument("--out", default="-", metavar="FILE", help="where to write the PEM (default: stdout)")

    sp = add("destroy", commands.destroy, "destroy the objects labelled LABEL, or one object by "
             "--handle, or the objects with --id (asks first)")
    sp.add_argument("label", metavar="LABEL", nargs="?")
    sp.add_argument("--handle", type=int, help="the object with this handle (see list)")
    sp.add_argument("--id", help="the objects with this CKA_ID (hex, see list)")
    sp.add_argument("--class", dest="cls", choices=list(names.CKO_BY_NAME), help="only this class")
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask")

    sp = add("set-pin", commands.set_pin, "set or change the user PIN (or the SO PIN with --so); "
             "asks for the PINs unless given")
    sp.add_argument("--so", action="store_true", help="change the security officer's PIN")
    sp.add_argument("--old-pin", help="current PIN ('' when the token has no user PIN yet)")
    sp.add_argument("--new-pin", help="new PIN")

    sp = add("init-pin", commands.init_pin, "the security officer sets a new user PIN (C_InitPIN): "
             "unlocks a user PIN locked after too many wrong tries, or replaces a forgotten one; "
             "keys and certificates stay", aliases=("unlock",))
    sp.add_argument("--so-pin", help="the SO PIN (set with init-token)")
    sp.add_argument("--new-pin", help="the new user PIN")

    sp = add("init-token", commands.init_token, "erase the token and set its label and SO PIN (asks first)")
    sp.add_argument("--label", default="MicroPython token", help="token label")
    sp.add_argument("--so-pin", help="SO PIN (the current one when the token has one)")
    sp.add_argument("--user-pin", help="also set this user PIN")
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask")

    sp = add("check", commands.check, "is the board ready to connect? the stored endpoint and thing, "
             "the device key, its certificate (matching, valid, issued by --ca) and the root CA; "
             "with --ca and --unix also a live MQTT connect/publish through the token to a local "
             "mosquitto on 127.0.0.1 that trusts that CA")
    sp.add_argument("--ca", metavar="CA.pem", help="the CA that issued the device certificate "
                    "(a local CA's root.pem for a board provisioned locally)")

    sp = add("config", commands.config, "show or set the AWS IoT client configuration stored on the "
             f"board ({device.CONFIG_FILE} in the token directory)")
    sp.add_argument("--endpoint", help="<prefix>-ats.iot.<region>.amazonaws.com")
    sp.add_argument("--thing-name", help="the AWS IoT thing name (the MQTT client id)")
    sp.add_argument("--port", type=int, help="MQTT port (default 8883)")

    sp = add("lock", commands.lock, "locked production mode: from the next reset the board runs its "
             "application and its REPL accepts no input (mpremote and this tool stop working); "
             "only erasing the token partition (keys destroyed) unlocks it (asks first)")
    sp.add_argument("--app", default="main.py", help="the application the locked board runs: a file "
                    "on the board (default main.py) or frozen:<module> for a module frozen into the "
                    "firmware (recommended on ESP32: the filesystem partition is not encrypted)")
    sp.add_argument("--force", action="store_true", help="lock even when the token holds no private key")
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask")

    fleet.register(add)  # load-claim (p11board.fleet)
    # serve, install-module: the board as a PKCS#11 token of every host program (p11bridge)
    add_bridge_commands(lambda name, fn, help: add(name, _serial_board(fn), help))
    return p


def _serial_board(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace, UI], int]:
    """A p11bridge command as a p11board command: it talks to a serial port itself."""
    def run(args: argparse.Namespace, ui: UI) -> int:
        if args.unix or args.qemu:
            raise ToolError(Exit.USAGE, "serve and install-module take a serial port (--device): "
                            "give the unix firmware's or the qemu board's pty")
        return fn(args)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return Exit.USAGE
    show.ERRORS.clear()
    ui = UI(quiet=False, as_json=bool(getattr(args, "json", False)))
    code: int
    try:
        _fill_defaults(args)
        ui = UI(quiet=args.quiet, as_json=args.json)
        code = _run_asking_for_the_pin(args, ui)
    except ToolError as e:
        show.error(str(e))
        code = int(e.code)
    except DeviceFailure as e:
        code = int(_report_device_failure(e))
    except KeyboardInterrupt:
        show.error("interrupted")
        code = int(Exit.ABORTED)
    ui.finish(args.command, code, "\n".join(show.ERRORS) if show.ERRORS else None)
    return code


def _run_asking_for_the_pin(args: argparse.Namespace, ui: UI) -> int:
    """Runs the command; when it failed only for want of the user PIN (nothing was
    changed then) and no PIN was given, asks for it on the terminal and runs it again,
    so a PIN need never be typed into the command line."""
    try:
        return int(args.func(args, ui))
    except (PinNeeded, DeviceFailure) as e:
        wanted = isinstance(e, PinNeeded) or e.rv == CKR_USER_NOT_LOGGED_IN
        if not (wanted and args.pin is None and sys.stdin.isatty()):
            raise
    args.pin = getpass.getpass(PIN_PROMPT)
    return int(args.func(args, ui))


def pin_tries(state: tuple[int, int] | None) -> str:
    """What the token's PIN flags say after a wrong PIN (CKF_*_PIN_COUNT_LOW,
    FINAL_TRY, LOCKED), with the limit of wrong tries in a row."""
    if not state:
        return ""
    flags, limit = state
    parts = []
    for who, low, final, locked, way_out in (
            ("user PIN", 0x10000, 0x20000, 0x40000, ""),
            ("SO PIN", 0x100000, 0x200000, 0x400000,
             f"; only {PROG} init-token (it erases every object) resets the token")):
        if flags & locked:
            parts.append(f"the {who} is locked ({limit} wrong tries in a row){way_out}")
        elif flags & final:
            parts.append(f"the {who} has ONE try left (it locks after {limit} wrong tries in a row)")
        elif flags & low:
            parts.append(f"wrong {who} tries are counted: it locks after {limit} wrong tries in a row")
    return ("\n  " + "\n  ".join(parts)) if parts else ""


def _report_device_failure(e: DeviceFailure) -> Exit:
    if e.rv is not None:
        sentence = ckr_sentence(e.rv)
        show.error(f"token error: {e.text}" + (f" -- {sentence}" if sentence else "")
                   + pin_tries(e.pin_state))
        return Exit.TOKEN
    if e.kind == "ImportError":
        show.error(f"the board's firmware lacks a module this tool needs ({e.text}): "
                   "flash this project's firmware")
        return Exit.DEVICE
    if e.kind == "MemoryError":
        show.error("the board ran out of memory; reset it and try again")
        return Exit.DEVICE
    if e.kind in ("ValueError", "NoSuchKey", "MultipleObjectsReturned"):
        show.error(f"the board refused: {e.text}")
        return Exit.DEVICE
    show.error(f"the board reported {e.kind}: {e.text}")
    return Exit.DEVICE


if __name__ == "__main__":
    sys.exit(main())
