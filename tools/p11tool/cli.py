"""p11tool: provision the MicroPython PKCS#11 token over the REPL (mpremote).

Every command connects, runs one or two small scripts on the board (see
p11tool.device) and disconnects. Private keys never come back: no script
reads a secret attribute, and no command has a way to ask for one.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import __version__, device, files, names
from .connection import Board, Connection, DeviceFailure
from .errors import EXIT_HELP, Exit, ToolError, ckr_sentence

DEFAULT_KEY_LABEL = "Device Priv TLS Key"
DEFAULT_PUB_LABEL = "Device Pub TLS Key"
DEFAULT_CERT_LABEL = "Device Cert"
DEFAULT_CA_LABEL = "Root Cert"
LABEL_MAX = 32


class UI:
    def __init__(self, quiet: bool, as_json: bool) -> None:
        self.quiet = quiet
        self.json = as_json

    def say(self, text: str) -> None:
        """Progress and hints: stderr, unless --quiet."""
        if not self.quiet:
            print(f"p11tool: {text}", file=sys.stderr, flush=True)

    def out(self, text: str = "") -> None:
        print(text, flush=True)

    def dump(self, obj: object) -> None:
        print(json.dumps(_jsonable(obj), indent=2, sort_keys=True), flush=True)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _text(v: Any) -> str:
    """A PKCS#11 padded/bytes field as text."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace").rstrip(" \x00")
    return "" if v is None else str(v)


def _label(text: str, what: str = "--label") -> bytes:
    b = text.encode()
    if not b or len(b) > LABEL_MAX:
        raise ToolError(Exit.USAGE, f"{what} must be 1 to {LABEL_MAX} bytes: {text!r}")
    return b


# -- connection options ------------------------------------------------------------------

CONNECTION_DEFAULTS: dict[str, Any] = {
    "device": "auto", "unix": False, "qemu": False, "firmware": None, "token_dir": None,
    "elf": None, "flash": None, "pin": None, "timeout": 60.0, "json": False, "quiet": False,
}


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
                        "firmware's own, ~/.micropython/pkcs11-token)")
    g.add_argument("--qemu", action="store_true", default=S,
                   help="run this repository's qemu board (host_tests/harness/qemu.py)")
    g.add_argument("--elf", default=S, metavar="PATH",
                   help="qemu firmware (default: $BUILD/qemu/firmware.elf)")
    g.add_argument("--flash", default=S, metavar="IMAGE",
                   help="with --qemu: persistent flash image (default: $BUILD/p11tool-qemu/flash.img)")
    o = p.add_argument_group("common options")
    o.add_argument("--pin", default=S,
                   help="user PIN, when the token has one (or env P11TOOL_PIN; '-' asks)")
    o.add_argument("--timeout", type=float, default=S, metavar="SECONDS",
                   help="longest silence from the board before giving up (default 60)")
    o.add_argument("--json", action="store_true", default=S, help="JSON output (info, list, show)")
    o.add_argument("-q", "--quiet", action="store_true", default=S, help="no progress messages")
    return p


def _fill_defaults(args: argparse.Namespace) -> None:
    for k, v in CONNECTION_DEFAULTS.items():
        if not hasattr(args, k):
            setattr(args, k, v)
    if args.pin is None:
        args.pin = os.environ.get("P11TOOL_PIN") or None
    if args.pin == "-":
        args.pin = getpass.getpass("user PIN: ")
    if args.unix and args.qemu:
        raise ToolError(Exit.USAGE, "--unix and --qemu exclude each other")
    if (args.unix or args.qemu) and args.device != "auto":
        raise ToolError(Exit.USAGE, "--device cannot be combined with --unix or --qemu")


def _connect(args: argparse.Namespace, ui: UI) -> Connection:
    return Connection(device=args.device, unix=args.unix, qemu=args.qemu, firmware=args.firmware,
                      token_dir=args.token_dir, elf=args.elf, flash=args.flash,
                      timeout=args.timeout, say=ui.say)


def _run(board: Board, ui: UI, body: str, epilogue: str = "", **params: Any) -> Any:
    return board.run(device.script(body, epilogue, **params), progress=ui.say)


def _login_hint(flags: int, pin: str | None) -> str:
    if flags & names.CKF_LOGIN_REQUIRED and pin is None:
        return " (the token has a user PIN: private objects stay hidden without --pin)"
    return ""


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


# -- info ----------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace, ui: UI) -> int:
    with _connect(args, ui) as board:
        r = _run(board, ui, device.INFO, PIN=args.pin, CONFIG_FILE=device.CONFIG_FILE)
        where = board.name
    tok = r["token"]
    config = _parse_config(r.get("config"))
    info = {
        "board": where,
        "platform": r["platform"], "version": r["version"], "machine": r["machine"],
        "token_dir": r["token_dir"], "token_partition": r.get("token_partition"),
        "crypto_backend": r["backend"], "mem_free": r["mem_free"],
        "library": {"manufacturer": _text(r["info"]["manufacturerID"]),
                    "description": _text(r["info"]["libraryDescription"]),
                    "cryptoki_version": list(r["info"]["cryptokiVersion"]),
                    "version": list(r["info"]["libraryVersion"])},
        "slot": {"id": 0, "description": _text(r["slot"]["slotDescription"])},
        "token": {"label": _text(tok["label"]), "serial": _text(tok["serialNumber"]),
                  "model": _text(tok["model"]), "flags": names.flag_names(tok["flags"], names.CKF_TOKEN),
                  "pin_length": [tok["ulMinPinLen"], tok["ulMaxPinLen"]],
                  "max_sessions": tok["ulMaxSessionCount"],
                  "total_bytes": tok["ulTotalPublicMemory"], "free_bytes": tok["ulFreePublicMemory"]},
        "mechanisms": [{"mechanism": names.CKM.get(m, hex(m)), "value": m,
                        "min_key_bits": i["ulMinKeySize"], "max_key_bits": i["ulMaxKeySize"],
                        "flags": names.flag_names(i["flags"], names.CKF_MECH)} for m, i in r["mechanisms"]],
        "config": config,
    }
    if ui.json:
        ui.dump(info)
        return Exit.OK
    t = info["token"]
    ui.out(f"board:       {where}")
    ui.out(f"firmware:    {r['version']} ({r['platform']}; {r['machine']})")
    ui.out(f"token:       {t['label']!r}, serial {t['serial']}, model {t['model']!r}")
    part = f" (ESP32 token partition: {info['token_partition']})" if info["token_partition"] else ""
    ui.out(f"storage:     {r['token_dir']}: {_size(t['free_bytes'])} free of {_size(t['total_bytes'])}{part}")
    ui.out(f"flags:       {', '.join(t['flags'])}")
    ui.out(f"PIN length:  {t['pin_length'][0]} to {t['pin_length'][1]}")
    ui.out(f"crypto:      {'C module _pkcs11' if r['backend'] == 'c' else 'pure Python (pkcs11.pure)'}")
    ui.out(f"free RAM:    {r['mem_free']} bytes")
    ui.out(f"library:     {info['library']['description']} {'.'.join(map(str, info['library']['version']))}, "
           f"Cryptoki {'.'.join(map(str, info['library']['cryptoki_version']))}")
    ui.out("mechanisms:")
    for m in info["mechanisms"]:
        lo, hi = m["min_key_bits"], m["max_key_bits"]
        bits = "" if not hi else f", {hi} bit" if lo == hi else f", {lo}-{hi} bit"
        ui.out(f"  {m['mechanism']:<26}{', '.join(m['flags'])}{bits}")
    if config:
        ui.out(f"AWS IoT:     endpoint {config.get('endpoint')}, thing {config.get('thing_name')}, "
               f"port {config.get('port')}")
    else:
        ui.out("AWS IoT:     not configured (p11tool config --endpoint ... --thing-name ...)")
    return Exit.OK


# -- list ----------------------------------------------------------------------------------


def _object_row(handle: int, a: dict[int, Any]) -> dict[str, Any]:
    if "error" in a:
        return {"handle": handle, "error": a["error"]}
    cls = a.get(0)
    row: dict[str, Any] = {
        "handle": handle, "class": names.CKO.get(cls, str(cls)), "label": _text(a.get(3)),
        "id": (a.get(0x102) or b"").hex(), "private": bool(a.get(2)),
    }
    if cls in (2, 3):
        row["key_type"] = names.CKK.get(a.get(0x100), str(a.get(0x100)))
        row["size"] = names.key_size(a.get(0x100), a.get(0x180), a.get(0x121))
    elif cls == 1:
        row["key_type"] = "X.509" if a.get(0x80) == 0 else str(a.get(0x80))
        row["size"] = f"{a['size']} bytes" if a.get("size") is not None else ""
    else:
        row["key_type"] = _text(a.get(0x10)) or ""
        row["size"] = f"{a['size']} bytes" if a.get("size") is not None else ""
    return row


def cmd_list(args: argparse.Namespace, ui: UI) -> int:
    with _connect(args, ui) as board:
        r = _run(board, ui, device.LIST, PIN=args.pin)
    rows = [_object_row(h, a) for h, a in r["objects"]]
    hint = _login_hint(r["flags"], args.pin)
    if ui.json:
        ui.dump({"objects": rows, "login_required": bool(r["flags"] & names.CKF_LOGIN_REQUIRED),
                 "logged_in": args.pin is not None})
        return Exit.OK
    if not rows:
        ui.out("the token holds no objects" + hint)
        return Exit.OK
    ui.out(f"{'HANDLE':>6}  {'CLASS':<12} {'LABEL':<32} {'TYPE':<6} {'SIZE':<11} ID")
    for row in rows:
        if "error" in row:
            ui.out(f"{row['handle']:>6}  unreadable record: {row['error']}")
            continue
        ui.out(f"{row['handle']:>6}  {row['class']:<12} {row['label']:<32} {row['key_type']:<6} "
               f"{row['size']:<11} {row['id']}")
    if hint:
        ui.say(hint.strip(" ()"))
    return Exit.OK


# -- show ----------------------------------------------------------------------------------


def _public_key_of(a: dict[int, Any]) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None:
    try:
        if a.get(0x100) == 3 and a.get(0x181):
            q = a[0x181]
            if len(q) == 67 and q[0] == 0x04 and q[1] == 65:
                q = q[2:]
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(q))
        if a.get(0x100) == 0 and a.get(0x120) and a.get(0x122):
            n = int.from_bytes(a[0x120], "big")
            e = int.from_bytes(a[0x122], "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        return None
    return None


def _attribute_text(t: int, v: Any) -> Any:
    if v == 0xFFFFFFFF and t == 0x166:
        return "none (imported)"
    if t in (3, 0x10):
        return _text(v)
    if t == 0:
        return names.CKO.get(v, v)
    if t == 0x100:
        return names.CKK.get(v, v)
    if t == 0x166:
        return names.CKM.get(v, v)
    if t == 0x80:
        return "X.509" if v == 0 else v
    if t in (0x81, 0x101) and v and hasattr(x509.Name, "from_bytes"):
        try:
            return x509.Name.from_bytes(bytes(v)).rfc4514_string()
        except ValueError:
            pass
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    return v


def _show_one(handle: int, a: dict[int, Any]) -> dict[str, Any]:
    cls = a.get(0)
    out: dict[str, Any] = {"handle": handle, "class": names.CKO.get(cls, str(cls))}
    attrs: dict[str, Any] = {}
    for t in sorted(k for k in a if isinstance(k, int)):
        v = a[t]
        if v is None or (t == 0x11 and cls == 1):
            continue  # unavailable; or the certificate itself, decoded below
        attrs[names.CKA.get(t, hex(t))] = _attribute_text(t, v)
    out["attributes"] = attrs
    if cls == 0 and a.get("size") is not None:
        out["value_size"] = a["size"]
    if cls == 1 and a.get(0x11):
        try:
            out["certificate"] = files.certificate_summary(x509.load_der_x509_certificate(bytes(a[0x11])))
        except ValueError:
            out["certificate"] = {"error": "CKA_VALUE is not a valid X.509 certificate"}
    if cls in (2, 3):
        pub = _public_key_of(a)
        if pub is not None:
            out["public_key"] = {
                "type": files.describe_public_key(pub),
                "spki_sha256": files.spki_fingerprint(pub),
                "key_id": files.key_id(pub).hex(),
                "pem": pub.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
            }
    return out


def _class_arg(text: str | None) -> int | None:
    if text is None:
        return None
    if text not in names.CKO_BY_NAME:
        raise ToolError(Exit.USAGE, f"--class: one of {', '.join(names.CKO_BY_NAME)}")
    return names.CKO_BY_NAME[text]


def cmd_show(args: argparse.Namespace, ui: UI) -> int:
    label = _label(args.label, "LABEL")
    cls = _class_arg(args.cls)
    with _connect(args, ui) as board:
        r = _run(board, ui, device.SHOW, PIN=args.pin, LABEL=label, CLASS=cls,
                 ATTRS=device.SHOW_ATTRIBUTES)
    objs = [_show_one(h, a) for h, a in r["objects"]]
    if not objs:
        raise ToolError(Exit.OBJECT, f"no object labelled {args.label!r}{_login_hint(r['flags'], args.pin)}")
    if ui.json:
        ui.dump(objs)
        return Exit.OK
    for i, o in enumerate(objs):
        if i:
            ui.out()
        ui.out(f"{o['class']} (handle {o['handle']})")
        for k, v in o["attributes"].items():
            ui.out(f"  {k:<24} {v}")
        if "value_size" in o:
            ui.out(f"  {'value':<24} {o['value_size']} bytes")
        if "certificate" in o:
            c = o["certificate"]
            ui.out("  certificate:")
            for k in ("subject", "issuer", "serial", "not_before", "not_after", "public_key",
                      "sha256_fingerprint", "key_id", "self_signed", "ca", "error"):
                if k in c:
                    ui.out(f"    {k:<20} {c[k]}")
        if "public_key" in o:
            pk = o["public_key"]
            ui.out(f"  public key:              {pk['type']}, SPKI SHA-256 {pk['spki_sha256']}")
            for line in pk["pem"].strip().splitlines():
                ui.out(f"    {line}")
    return Exit.OK


# -- import ----------------------------------------------------------------------------------


def _taken_error(r: dict[str, Any]) -> ToolError:
    what = ", ".join(f"{names.CKO.get(c, c)} {_text(lbl)!r}" for _h, c, lbl in r["taken"])
    return ToolError(Exit.OBJECT, f"the token already has {what}; add --replace to replace it")


def cmd_import_key(args: argparse.Namespace, ui: UI) -> int:
    key = files.load_private_key(Path(args.file))
    label = _label(args.label)
    if args.no_public:
        pub_label = None
    elif args.public_label is not None:
        pub_label = _label(args.public_label, "--public-label")
    else:
        pub_label = _label(DEFAULT_PUB_LABEL) if args.label == DEFAULT_KEY_LABEL else label
    kid = files.parse_hex_id(args.id) if args.id is not None else key.key_id
    ui.say(f"{args.file}: {key.kind} private key ({key.form}); id {kid.hex()}")
    with _connect(args, ui) as board:
        pairs = [(label, 3)] + ([(pub_label, 2)] if pub_label is not None else [])
        r = _run(board, ui, device.TAKEN, PIN=args.pin, PAIRS=pairs)
        if r["taken"] and not args.replace:
            raise _taken_error(r)
        ui.say(f"sending the key to the board ({len(key.der)} bytes, once)")
        r = _run(board, ui, device.IMPORT_KEY, device.WIPE_KEY, PIN=args.pin,
                 LABEL=label, PUBLIC_LABEL=pub_label, ID=kid, REPLACE=args.replace,
                 _K=bytearray(key.der))
    if "taken" in r:
        raise _taken_error(r)
    ui.say(f"stored {key.kind} key {args.label!r} (handle {r['handle']})"
           + (f", public key {pub_label.decode()!r}" if pub_label else "")
           + (f"; replaced {r['replaced']} object(s)" if r["replaced"] else ""))
    return Exit.OK


def _import_certificate(args: argparse.Namespace, ui: UI, default_label: str) -> int:
    cf = files.load_certificate(Path(args.file))
    label = _label(args.label if args.label is not None else default_label)
    info = files.certificate_summary(cf.cert)
    if cf.count > 1:
        ui.say(f"{args.file} holds {cf.count} certificates; importing the first ({info['subject']})")
    kid = files.parse_hex_id(args.id) if args.id is not None else bytes.fromhex(str(info.get("key_id", "")))
    ui.say(f"{args.file}: {info['subject']} ({info['public_key']}), valid until {info['not_after']}")
    with _connect(args, ui) as board:
        r = _run(board, ui, device.IMPORT_CERT, PIN=args.pin, LABEL=label, ID=kid,
                 REPLACE=args.replace, _C=cf.der)
    if "taken" in r:
        raise _taken_error(r)
    ui.say(f"stored certificate {label.decode()!r} (handle {r['handle']})"
           + (f"; replaced {r['replaced']} object(s)" if r["replaced"] else ""))
    if r.get("key"):
        ui.say(f"it belongs to the token's private key {_text(r['key'])!r}")
    elif default_label == DEFAULT_CERT_LABEL:
        ui.say("note: no private key in the token has this certificate's public key")
    return Exit.OK


def cmd_import_cert(args: argparse.Namespace, ui: UI) -> int:
    return _import_certificate(args, ui, DEFAULT_CERT_LABEL)


def cmd_import_ca(args: argparse.Namespace, ui: UI) -> int:
    return _import_certificate(args, ui, DEFAULT_CA_LABEL)


# -- generate-key --------------------------------------------------------------------------


def cmd_generate_key(args: argparse.Namespace, ui: UI) -> int:
    label = _label(args.label)
    if args.public_label is not None:
        pub_label = _label(args.public_label, "--public-label")
    else:
        pub_label = _label(DEFAULT_PUB_LABEL) if args.label == DEFAULT_KEY_LABEL else label
    kid = files.parse_hex_id(args.id) if args.id is not None else b""
    with _connect(args, ui) as board:
        r = _run(board, ui, device.GENERATE, PIN=args.pin, LABEL=label, PUBLIC_LABEL=pub_label,
                 ID=kid, REPLACE=args.replace)
    if "taken" in r:
        raise _taken_error(r)
    pub = _public_key_of({0x100: 3, 0x181: r["ec_point"]})
    if pub is None:
        raise ToolError(Exit.DEVICE, "the board returned an invalid public key")
    ui.say(f"generated EC P-256 key {args.label!r} (handle {r['handle']}), public key "
           f"{pub_label.decode()!r}, id {r['id'].hex()}"
           + (f"; replaced {r['replaced']} object(s)" if r["replaced"] else ""))
    ui.out(pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode().rstrip())
    ui.say(f'next: p11tool csr --subject "CN=<thing name>" --out device.csr')
    return Exit.OK


# -- csr ----------------------------------------------------------------------------------


def cmd_csr(args: argparse.Namespace, ui: UI) -> int:
    subject = files.check_subject(args.subject)
    label = _label(args.label)
    with _connect(args, ui) as board:
        r = _run(board, ui, device.CSR, PIN=args.pin, LABEL=label, SUBJECT=subject)
    if "keys" in r:
        if r["keys"] == 0:
            raise ToolError(Exit.OBJECT, f"no private key labelled {args.label!r}"
                            f"{_login_hint(r['flags'], args.pin)}; make one with p11tool generate-key")
        raise ToolError(Exit.OBJECT, f"{r['keys']} private keys are labelled {args.label!r}; "
                        "destroy the extra ones (p11tool destroy)")
    der = bytes(r["csr"])
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise ToolError(Exit.DEVICE, "the board returned a malformed CSR") from None
    if not csr.is_signature_valid:
        raise ToolError(Exit.DEVICE, "the CSR's signature does not verify: the token's key and "
                        "its public half disagree")
    token_pub = _public_key_of(r["key"])
    if token_pub is not None and files.spki_fingerprint(token_pub) != files.spki_fingerprint(csr.public_key()):
        raise ToolError(Exit.DEVICE, "the CSR's public key is not the token key's public key")
    pem = files.csr_pem(der)
    if args.out in (None, "-"):
        sys.stdout.write(pem)
        sys.stdout.flush()
    else:
        try:
            Path(args.out).write_text(pem)
        except OSError as e:
            raise ToolError(Exit.FILE_FORMAT, f"{args.out}: cannot write it ({e.strerror})") from None
        ui.say(f"wrote {args.out}: {csr.subject.rfc4514_string()}, "
               f"{files.describe_public_key(csr.public_key())}, signed by the token")
        ui.say("next: aws iot create-certificate-from-csr --certificate-signing-request "
               f"file://{args.out} --set-as-active --certificate-pem-outfile device.pem")
    return Exit.OK


# -- destroy ----------------------------------------------------------------------------------


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ToolError(Exit.ABORTED, f"{question} -- not confirmed (no terminal): add --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise ToolError(Exit.ABORTED, "nothing done")


def cmd_destroy(args: argparse.Namespace, ui: UI) -> int:
    label = _label(args.label, "LABEL")
    cls = _class_arg(args.cls)
    with _connect(args, ui) as board:
        r = _run(board, ui, device.FIND, PIN=args.pin, LABEL=label, CLASS=cls)
        found = r["objects"]
        if not found:
            raise ToolError(Exit.OBJECT, f"no object labelled {args.label!r}{_login_hint(r['flags'], args.pin)}")
        what = ", ".join(f"{names.CKO.get(a[0], a[0])} (handle {h})" for h, a in found)
        _confirm(f"destroy {len(found)} object(s) labelled {args.label!r}: {what}?", args.yes)
        r = _run(board, ui, device.DESTROY, PIN=args.pin, LABEL=label, HANDLES=[h for h, _ in found])
    ui.say(f"destroyed {len(r['destroyed'])} object(s) labelled {args.label!r}")
    return Exit.OK


# -- PINs and token initialization --------------------------------------------------------------


def _secret(value: str | None, prompt: str, confirm: bool = False) -> str:
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise ToolError(Exit.USAGE, f"{prompt}: give it as an option (no terminal to ask on)")
    first = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} (again): ") != first:
        raise ToolError(Exit.USAGE, "the two entries differ")
    return first


def cmd_set_pin(args: argparse.Namespace, ui: UI) -> int:
    who = "SO PIN" if args.so else "user PIN"
    old = _secret(args.old_pin, f"current {who} (empty if none)")
    new = _secret(args.new_pin, f"new {who}", confirm=True)
    with _connect(args, ui) as board:
        _run(board, ui, device.SET_PIN, SO=args.so, OLD=old, NEW=new)
    ui.say(f"{who} changed")
    return Exit.OK


def cmd_init_token(args: argparse.Namespace, ui: UI) -> int:
    label = _label(args.label, "--label")
    so_pin = _secret(args.so_pin, "SO PIN (the current one, or a new one for a fresh token)")
    _confirm("initialize the token: EVERY key, certificate and object on it is destroyed?", args.yes)
    with _connect(args, ui) as board:
        r = _run(board, ui, device.INIT_TOKEN, SO_PIN=so_pin, LABEL_TOKEN=label,
                 USER_PIN=args.user_pin)
    ui.say(f"token {_text(r['label'])!r} initialized ({', '.join(names.flag_names(r['flags'], names.CKF_TOKEN))})")
    return Exit.OK


# -- config ----------------------------------------------------------------------------------


def _parse_config(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        v = json.loads(bytes(data).decode())
    except (ValueError, UnicodeDecodeError):
        return {"error": "the config file on the board is not valid JSON"}
    return v if isinstance(v, dict) else {"error": "the config file on the board is not a JSON object"}


def _check_endpoint(host: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*", host) \
            or len(host) > 253:
        raise ToolError(Exit.USAGE, f"--endpoint {host!r} is not a host name "
                        "(aws iot describe-endpoint --endpoint-type iot:Data-ATS prints it)")
    return host


def _check_thing(name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9:_-]{1,128}", name):
        raise ToolError(Exit.USAGE, f"--thing-name {name!r}: AWS IoT thing names are 1 to 128 "
                        "characters of a-z A-Z 0-9 : _ -")
    return name


def cmd_config(args: argparse.Namespace, ui: UI) -> int:
    changes = {k: v for k, v in (("endpoint", args.endpoint), ("thing_name", args.thing_name),
                                 ("port", args.port)) if v is not None}
    if "endpoint" in changes:
        _check_endpoint(changes["endpoint"])
    if "thing_name" in changes:
        _check_thing(changes["thing_name"])
    if "port" in changes and not 0 < changes["port"] < 65536:
        raise ToolError(Exit.USAGE, "--port must be 1..65535")
    with _connect(args, ui) as board:
        r = _run(board, ui, device.CONFIG_READ, CONFIG_FILE=device.CONFIG_FILE)
        config = _parse_config(r["config"]) or {}
        if changes:
            if "error" in config:
                ui.say(f"{config['error']}: writing a new one")
                config = {}
            config.update(changes)
            config.setdefault("port", 8883)
            data = json.dumps(config, sort_keys=True).encode()
            w = _run(board, ui, device.CONFIG_WRITE, CONFIG_FILE=device.CONFIG_FILE, DATA=data)
            ui.say(f"saved {w['path']}")
    if ui.json:
        ui.dump(config)
    elif config:
        for k in ("endpoint", "thing_name", "port", "error"):
            if k in config:
                ui.out(f"{k:<11} {config[k]}")
    else:
        ui.out("not configured: p11tool config --endpoint <prefix>-ats.iot.<region>.amazonaws.com "
               "--thing-name <thing>")
    return Exit.OK


# -- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    p = argparse.ArgumentParser(
        prog="p11tool", parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Provision the PKCS#11 token of this MicroPython firmware over the REPL: "
                    "import or generate keys, make CSRs for AWS IoT, manage certificates, PINs "
                    "and the client configuration. Private keys never leave the board.",
        epilog=EXIT_HELP + "\n\nSee docs/aws-iot-walkthrough.md for the AWS IoT steps.")
    p.add_argument("--version", action="version", version=f"p11tool {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace, UI], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    add("info", cmd_info, "token, slot, mechanisms, free space, board and configuration")
    add("list", cmd_list, "objects: class, label, key type, size, id (never secrets)")

    sp = add("show", cmd_show, "public attributes of the objects labelled LABEL "
             "(certificates decoded: subject, issuer, validity, SHA-256 fingerprint)")
    sp.add_argument("label", metavar="LABEL")
    sp.add_argument("--class", dest="cls", choices=list(names.CKO_BY_NAME), help="only this class")

    sp = add("import-key", cmd_import_key, "store a private key from a PEM/DER file (EC P-256 or "
             "RSA-2048; PKCS#8, SEC1, PKCS#1); it is sent once and never comes back")
    sp.add_argument("file", metavar="FILE.pem")
    sp.add_argument("--label", default=DEFAULT_KEY_LABEL, help=f"default {DEFAULT_KEY_LABEL!r}")
    sp.add_argument("--public-label", help=f"label of the public key object stored with it "
                    f"(default {DEFAULT_PUB_LABEL!r} for the default key label, else the key's label)")
    sp.add_argument("--no-public", action="store_true", help="do not store the public key object")
    sp.add_argument("--id", help="CKA_ID in hex (default: SHA-1 of the public key)")
    sp.add_argument("--replace", action="store_true", help="replace objects with the same labels")

    for name, fn, label, what in (("import-cert", cmd_import_cert, DEFAULT_CERT_LABEL, "the device certificate"),
                                  ("import-ca", cmd_import_ca, DEFAULT_CA_LABEL, "a root CA certificate")):
        sp = add(name, fn, f"store {what} from a PEM/DER file (label {label!r})")
        sp.add_argument("file", metavar="FILE.pem")
        sp.add_argument("--label", help=f"default {label!r}")
        sp.add_argument("--id", help="CKA_ID in hex (default: SHA-1 of the certificate's public key)")
        sp.add_argument("--replace", action="store_true", help="replace a certificate with the same label")

    sp = add("generate-key", cmd_generate_key, "generate an EC P-256 key pair inside the token "
             "(prints the public key)")
    sp.add_argument("--label", default=DEFAULT_KEY_LABEL, help=f"default {DEFAULT_KEY_LABEL!r}")
    sp.add_argument("--public-label", help=f"default {DEFAULT_PUB_LABEL!r} for the default key label")
    sp.add_argument("--id", help="CKA_ID in hex (default: SHA-1 of the public key)")
    sp.add_argument("--replace", action="store_true", help="replace keys with the same labels")

    sp = add("csr", cmd_csr, "a PKCS#10 request built on the board and signed by the token's key, "
             "for aws iot create-certificate-from-csr")
    sp.add_argument("--subject", required=True, help='e.g. "CN=my-thing" or "CN=my-thing,O=Example"')
    sp.add_argument("--label", default=DEFAULT_KEY_LABEL, help=f"the private key (default {DEFAULT_KEY_LABEL!r})")
    sp.add_argument("--out", default="-", metavar="FILE", help="where to write the PEM (default: stdout)")

    sp = add("destroy", cmd_destroy, "destroy the objects labelled LABEL (asks first)")
    sp.add_argument("label", metavar="LABEL")
    sp.add_argument("--class", dest="cls", choices=list(names.CKO_BY_NAME), help="only this class")
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask")

    sp = add("set-pin", cmd_set_pin, "set or change the user PIN (or the SO PIN with --so); "
             "asks for the PINs unless given")
    sp.add_argument("--so", action="store_true", help="change the security officer's PIN")
    sp.add_argument("--old-pin", help="current PIN ('' when the token has no user PIN yet)")
    sp.add_argument("--new-pin", help="new PIN")

    sp = add("init-token", cmd_init_token, "erase the token and set its label and SO PIN (asks first)")
    sp.add_argument("--label", default="MicroPython token", help="token label")
    sp.add_argument("--so-pin", help="SO PIN (the current one when the token has one)")
    sp.add_argument("--user-pin", help="also set this user PIN")
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask")

    sp = add("config", cmd_config, "show or set the AWS IoT client configuration stored on the "
             f"board ({device.CONFIG_FILE} in the token directory)")
    sp.add_argument("--endpoint", help="<prefix>-ats.iot.<region>.amazonaws.com")
    sp.add_argument("--thing-name", help="the AWS IoT thing name (the MQTT client id)")
    sp.add_argument("--port", type=int, help="MQTT port (default 8883)")

    # the board as a PKCS#11 token of every host program (tools/p11bridge)
    from p11bridge.cli import add_commands
    add_commands(sub, wrap=lambda fn: lambda args, ui: fn(args))
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return Exit.USAGE
    ui = UI(quiet=False, as_json=False)
    try:
        _fill_defaults(args)
        ui = UI(quiet=args.quiet, as_json=args.json)
        return int(args.func(args, ui))
    except ToolError as e:
        print(f"p11tool: {e}", file=sys.stderr)
        return int(e.code)
    except DeviceFailure as e:
        return int(_report_device_failure(e))
    except KeyboardInterrupt:
        print("p11tool: interrupted", file=sys.stderr)
        return int(Exit.ABORTED)


def _report_device_failure(e: DeviceFailure) -> Exit:
    if e.rv is not None:
        sentence = ckr_sentence(e.rv)
        print(f"p11tool: token error: {e.text}" + (f" -- {sentence}" if sentence else ""), file=sys.stderr)
        return Exit.TOKEN
    if e.kind == "ImportError":
        print(f"p11tool: the board's firmware lacks a module this tool needs ({e.text}): "
              "flash this project's firmware", file=sys.stderr)
        return Exit.DEVICE
    if e.kind == "MemoryError":
        print("p11tool: the board ran out of memory; reset it and try again", file=sys.stderr)
        return Exit.DEVICE
    if e.kind in ("ValueError", "NoSuchKey", "MultipleObjectsReturned"):
        print(f"p11tool: the board refused: {e.text}", file=sys.stderr)
        return Exit.DEVICE
    print(f"p11tool: the board reported {e.kind}: {e.text}", file=sys.stderr)
    return Exit.DEVICE


if __name__ == "__main__":
    sys.exit(main())
