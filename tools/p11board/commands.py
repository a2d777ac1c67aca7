"""One function per subcommand: check the arguments, run the device scripts
(p11board.device) over a connection (p11board.connection), hand the answers to
p11board.show. Each returns an exit code or raises ToolError / DeviceFailure
(p11board.cli turns those into messages and exit codes)."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from . import device, files, names, show
from .connection import Board, Connection
from .errors import Exit, ToolError
from .show import UI

LABEL_MAX = 32


def label_arg(text: str, what: str = "--label") -> bytes:
    b = text.encode()
    if not b or len(b) > LABEL_MAX:
        raise ToolError(Exit.USAGE, f"{what} must be 1 to {LABEL_MAX} bytes: {text!r}")
    return b


def class_arg(text: str | None) -> int | None:
    if text is None:
        return None
    if text not in names.CKO_BY_NAME:
        raise ToolError(Exit.USAGE, f"--class: one of {', '.join(names.CKO_BY_NAME)}")
    return names.CKO_BY_NAME[text]


def connect(args: argparse.Namespace, ui: UI) -> Connection:
    return Connection(device=args.device, unix=args.unix, qemu=args.qemu, firmware=args.firmware,
                      token_dir=args.token_dir, elf=args.elf, flash=args.flash,
                      timeout=args.timeout, say=ui.say, create=args.create)


def run(board: Board, ui: UI, body: str, epilogue: str = "", **params: Any) -> Any:
    return board.run(device.script(body, epilogue, **params), progress=ui.say)


# -- info ----------------------------------------------------------------------------------


def info(args: argparse.Namespace, ui: UI) -> int:
    with connect(args, ui) as board:
        r = run(board, ui, device.INFO, PIN=args.pin, CONFIG_FILE=device.CONFIG_FILE)
        where = board.name
    show.info(ui, show.info_record(r, where, parse_config(r.get("config"))))
    return Exit.OK


# -- list ----------------------------------------------------------------------------------


def list_objects(args: argparse.Namespace, ui: UI) -> int:
    with connect(args, ui) as board:
        r = run(board, ui, device.LIST, PIN=args.pin)
    show.object_list(ui, [show.object_row(h, a) for h, a in r["objects"]], r["flags"], args.pin)
    return Exit.OK


# -- show ----------------------------------------------------------------------------------


def show_objects(args: argparse.Namespace, ui: UI) -> int:
    label = label_arg(args.label, "LABEL")
    cls = class_arg(args.cls)
    with connect(args, ui) as board:
        r = run(board, ui, device.SHOW, PIN=args.pin, LABEL=label, CLASS=cls,
                ATTRS=device.SHOW_ATTRIBUTES)
    objs = [show.object_record(h, a) for h, a in r["objects"]]
    if not objs:
        raise show.not_found(f"no object labelled {args.label!r}", r["flags"], args.pin)
    show.objects(ui, objs)
    return Exit.OK


# -- import ----------------------------------------------------------------------------------


def _mismatch_error(r: dict[str, Any]) -> ToolError:
    text = str(r["mismatch"]).replace("PKCS#11 error: ", "").replace("pass force=True", "add --force")
    text = text.replace("import_certificate(..., replace=True)", f"{show.PROG} import-cert --replace")
    return ToolError(Exit.OBJECT, f"refused, nothing changed: {text}")


def _taken_error(r: dict[str, Any]) -> ToolError:
    what = ", ".join(f"{names.CKO.get(c, c)} {show.text(lbl)!r}" for _h, c, lbl in r["taken"])
    return ToolError(Exit.OBJECT, f"the token already has {what}; add --replace to replace it")


def import_key(args: argparse.Namespace, ui: UI) -> int:
    key = files.load_private_key(Path(args.file))
    label = label_arg(args.label)
    if args.no_public:
        pub_label = None
    elif args.public_label is not None:
        pub_label = label_arg(args.public_label, "--public-label")
    else:
        pub_label = label_arg(names.DEFAULT_PUB_LABEL) if args.label == names.DEFAULT_KEY_LABEL else label
    kid = files.parse_hex_id(args.id) if args.id is not None else key.key_id
    ui.say(f"{args.file}: {key.kind} private key ({key.form}); id {kid.hex()}")
    with connect(args, ui) as board:
        pairs = [(label, 3)] + ([(pub_label, 2)] if pub_label is not None else [])
        r = run(board, ui, device.TAKEN, PIN=args.pin, PAIRS=pairs)
        if r["taken"] and not args.replace:
            raise _taken_error(r)
        ui.say(f"sending the key to the board ({len(key.der)} bytes, once)")
        r = run(board, ui, device.IMPORT_KEY, device.WIPE_KEY, PIN=args.pin,
                 LABEL=label, PUBLIC_LABEL=pub_label, ID=kid, REPLACE=args.replace,
                 FORCE=args.force, _K=bytearray(key.der))
    if "taken" in r:
        raise _taken_error(r)
    if "mismatch" in r:
        raise _mismatch_error(r)
    ui.say(f"stored {key.kind} key {args.label!r} (handle {r['handle']})"
           + (f", public key {pub_label.decode()!r}" if pub_label else "")
           + (f"; replaced {r['replaced']} object(s)" if r["replaced"] else ""))
    return Exit.OK


def _import_certificate(args: argparse.Namespace, ui: UI, default_label: str) -> int:
    cf = files.load_certificate(Path(args.file))
    label = label_arg(args.label if args.label is not None else default_label)
    info = files.certificate_summary(cf.cert)
    chain = default_label == names.DEFAULT_CERT_LABEL
    if cf.count > 1:
        ui.say(f"{args.file} holds {cf.count} certificates; "
               + (f"the device certificate ({info['subject']}) and {cf.count - 1} intermediate CA(s)"
                  if chain else f"importing the first ({info['subject']})"))
    kid = files.parse_hex_id(args.id) if args.id is not None else bytes.fromhex(str(info.get("key_id", "")))
    ui.say(f"{args.file}: {info['subject']} ({info['public_key']}), valid until {info['not_after']}")
    with connect(args, ui) as board:
        trusted = default_label == names.DEFAULT_CA_LABEL
        so_pin = getattr(args, "so_pin", None)
        if so_pin == "-":
            so_pin = _secret(None, "SO PIN")
        r = run(board, ui, device.IMPORT_CERT, PIN=args.pin, LABEL=label, ID=kid,
                 REPLACE=args.replace, FORCE=args.force, TRUSTED=trusted,
                 SO_PIN=so_pin, _C=cf.der)
        if "taken" not in r and "mismatch" not in r and chain:
            # The certificates after the first one are the intermediates, issuer first.
            c = run(board, ui, device.IMPORT_CHAIN, PIN=args.pin, LABEL=label, MAX_CHAIN=4,
                    _CHAIN=list(cf.rest))
            if c["stored"] or c["removed"]:
                ui.say(f"stored {c['stored']} intermediate CA certificate(s) as "
                       f"{label.decode()!r} CA 1..{c['stored']}"
                       + (f"; removed {c['removed']} old one(s)" if c["removed"] else ""))
    if "taken" in r:
        raise _taken_error(r)
    if "mismatch" in r:
        raise _mismatch_error(r)
    ui.say(f"stored certificate {label.decode()!r} (handle {r['handle']})"
           + (f"; replaced {r['replaced']} object(s)" if r["replaced"] else ""))
    if r.get("key"):
        ui.say(f"it belongs to the token's private key {show.text(r['key'])!r}")
    elif default_label == names.DEFAULT_CERT_LABEL:
        ui.say("note: no private key in the token has this certificate's public key")
    return Exit.OK


def import_cert(args: argparse.Namespace, ui: UI) -> int:
    return _import_certificate(args, ui, names.DEFAULT_CERT_LABEL)


def import_ca(args: argparse.Namespace, ui: UI) -> int:
    return _import_certificate(args, ui, names.DEFAULT_CA_LABEL)


# -- generate-key --------------------------------------------------------------------------


def generate_key(args: argparse.Namespace, ui: UI) -> int:
    label = label_arg(args.label)
    if args.public_label is not None:
        pub_label = label_arg(args.public_label, "--public-label")
    else:
        pub_label = label_arg(names.DEFAULT_PUB_LABEL) if args.label == names.DEFAULT_KEY_LABEL else label
    kid = files.parse_hex_id(args.id) if args.id is not None else b""
    with connect(args, ui) as board:
        r = run(board, ui, device.GENERATE, PIN=args.pin, LABEL=label, PUBLIC_LABEL=pub_label,
                 ID=kid, REPLACE=args.replace, FORCE=args.force)
    if "taken" in r:
        raise _taken_error(r)
    if "mismatch" in r:
        raise _mismatch_error(r)
    pub = files.public_key_of({0x100: 3, 0x181: r["ec_point"]})
    if pub is None:
        raise ToolError(Exit.DEVICE, "the board returned an invalid public key")
    ui.say(f"generated EC P-256 key {args.label!r} (handle {r['handle']}), public key "
           f"{pub_label.decode()!r}, id {r['id'].hex()}"
           + (f"; replaced {r['replaced']} object(s)" if r["replaced"] else ""))
    ui.out(show.public_pem(pub).rstrip())
    ui.say(f'next: {show.PROG} csr --subject "CN=<thing name>" --out device.csr')
    return Exit.OK


# -- csr ----------------------------------------------------------------------------------


def csr(args: argparse.Namespace, ui: UI) -> int:
    subject = files.check_subject(args.subject)
    label = label_arg(args.label)
    with connect(args, ui) as board:
        r = run(board, ui, device.CSR, PIN=args.pin, LABEL=label, SUBJECT=subject)
    if "keys" in r:
        if r["keys"] == 0:
            raise show.not_found(f"no private key labelled {args.label!r}", r["flags"], args.pin,
                                 f"; make one with {show.PROG} generate-key")
        raise ToolError(Exit.OBJECT, f"{r['keys']} private keys are labelled {args.label!r}; "
                        f"destroy the extra ones ({show.PROG} destroy)")
    der = bytes(r["csr"])
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise ToolError(Exit.DEVICE, "the board returned a malformed CSR") from None
    if not csr.is_signature_valid:
        raise ToolError(Exit.DEVICE, "the CSR's signature does not verify: the token's key and "
                        "its public half disagree")
    token_pub = files.public_key_of(r["key"])
    if token_pub is not None and files.spki_fingerprint(token_pub) != files.spki_fingerprint(csr.public_key()):
        raise ToolError(Exit.DEVICE, "the CSR's public key is not the token key's public key")
    pem = files.csr_pem(der)
    if args.out in (None, "-"):
        if ui.json:
            ui.out(pem.rstrip())
        else:
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


def destroy(args: argparse.Namespace, ui: UI) -> int:
    chosen = [x for x in (args.label, args.handle, args.id) if x is not None]
    if len(chosen) != 1:
        raise ToolError(Exit.USAGE, "destroy: give exactly one of LABEL, --handle N or --id HEX "
                        f"(the handles and ids are in `{show.PROG} list`)")
    label = label_arg(args.label, "LABEL") if args.label is not None else None
    kid = files.parse_hex_id(args.id) if args.id is not None else None
    cls = class_arg(args.cls)
    if args.handle is not None:
        desc = f"handle {args.handle}"
    elif kid is not None:
        desc = f"id {kid.hex()}"
    else:
        desc = f"labelled {args.label!r}"
    with connect(args, ui) as board:
        r = run(board, ui, device.FIND, PIN=args.pin, LABEL=label, CLASS=cls, ID=kid, HANDLE=args.handle)
        found = r["objects"]
        if cls is not None:
            found = [(h, a) for h, a in found if a[0] == cls]
        if not found:
            raise show.not_found(f"no object with {desc}" if not desc.startswith("labelled")
                                 else f"no object {desc}", r["flags"], args.pin)
        what = ", ".join(f"{names.CKO.get(a[0], a[0])} {show.text(a[3])!r} (handle {h})" for h, a in found)
        _confirm(f"destroy {len(found)} object(s): {what}?", args.yes)
        r = run(board, ui, device.DESTROY, PIN=args.pin, HANDLES=[(h, a[3]) for h, a in found])
    ui.say(f"destroyed {len(r['destroyed'])} object(s): {what}")
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


def set_pin(args: argparse.Namespace, ui: UI) -> int:
    who = "SO PIN" if args.so else "user PIN"
    old = _secret(args.old_pin, f"current {who} (empty if none)")
    new = _secret(args.new_pin, f"new {who}", confirm=True)
    with connect(args, ui) as board:
        r = run(board, ui, device.SET_PIN, SO=args.so, OLD=old, NEW=new)
    ui.say(f"{who} {'changed' if r.get('had') else 'set (the token had none)'}")
    return Exit.OK


def init_pin(args: argparse.Namespace, ui: UI) -> int:
    so_pin = _secret(args.so_pin, "SO PIN")
    new = _secret(args.new_pin, "new user PIN", confirm=True)
    with connect(args, ui) as board:
        r = run(board, ui, device.INIT_PIN, SO_PIN=so_pin, NEW=new)
    was = "locked" if r["before"] & 0x40000 else ("set" if r["before"] & names.CKF_USER_PIN_INITIALIZED else "not set")
    ui.say(f"user PIN set by the SO (it was {was}); wrong tries counted from 0 again; keys and "
           "certificates kept")
    return Exit.OK


def init_token(args: argparse.Namespace, ui: UI) -> int:
    label = label_arg(args.label, "--label")
    so_pin = _secret(args.so_pin, "SO PIN (the current one, or a new one for a fresh token)")
    _confirm("initialize the token: EVERY key, certificate and object on it is destroyed?", args.yes)
    with connect(args, ui) as board:
        r = run(board, ui, device.INIT_TOKEN, SO_PIN=so_pin, LABEL_TOKEN=label,
                 USER_PIN=args.user_pin)
    ui.say(f"token {show.text(r['label'])!r} initialized ({', '.join(names.flag_names(r['flags'], names.CKF_TOKEN))})")
    return Exit.OK


# -- config ----------------------------------------------------------------------------------


def parse_config(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        v = json.loads(bytes(data).decode())
    except (ValueError, UnicodeDecodeError):
        return {"error": "the config file on the board is not valid JSON"}
    return v if isinstance(v, dict) else {"error": "the config file on the board is not a JSON object"}


def _check_endpoint(host: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*", host) \
            or len(host) > 253:
        raise ToolError(Exit.USAGE, f"--endpoint {host!r} is not a host name "
                        "(aws iot describe-endpoint --endpoint-type iot:Data-ATS prints it)")
    return host


def _check_thing(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9:_-]{1,128}", name):
        raise ToolError(Exit.USAGE, f"--thing-name {name!r}: AWS IoT thing names are 1 to 128 "
                        "characters of a-z A-Z 0-9 : _ -")
    return name


def config(args: argparse.Namespace, ui: UI) -> int:
    changes = {k: v for k, v in (("endpoint", args.endpoint), ("thing_name", args.thing_name),
                                 ("port", args.port)) if v is not None}
    if "endpoint" in changes:
        _check_endpoint(changes["endpoint"])
    if "thing_name" in changes:
        _check_thing(changes["thing_name"])
    if "port" in changes and not 0 < changes["port"] < 65536:
        raise ToolError(Exit.USAGE, "--port must be 1..65535")
    with connect(args, ui) as board:
        r = run(board, ui, device.CONFIG_READ, CONFIG_FILE=device.CONFIG_FILE)
        config = parse_config(r["config"]) or {}
        if changes:
            if "error" in config:
                ui.say(f"{config['error']}: writing a new one")
                config = {}
            config.update(changes)
            config.setdefault("port", 8883)
            data = json.dumps(config, sort_keys=True).encode()
            w = run(board, ui, device.CONFIG_WRITE, CONFIG_FILE=device.CONFIG_FILE, DATA=data)
            ui.say(f"saved {w['path']}")
    show.config(ui, config)
    return Exit.OK


# -- check ------------------------------------------------------------------------------------


def _check_line(ui: UI, ok: bool, text: str, failures: list[str]) -> None:
    ui.out(f"  {'ok  ' if ok else 'FAIL'}  {text}")
    if not ok:
        failures.append(text)


def check(args: argparse.Namespace, ui: UI) -> int:
    """Is the board ready to connect? The stored configuration, the device key, its
    certificate and the root CA; with --ca, also a live MQTT connect/publish through
    the token to a local mosquitto on 127.0.0.1 that trusts that CA (--unix only)."""
    import datetime
    import shutil
    import tempfile

    from cryptography.hazmat.primitives import serialization

    ca_cert = None
    if args.ca is not None:
        if not args.unix:
            raise ToolError(Exit.USAGE, "check --ca runs MQTT from the board to a broker on this "
                            "computer's 127.0.0.1: only --unix boards reach it. For a board, connect "
                            "to the real endpoint (docs/aws-iot-walkthrough.md, 'Run it')")
        ca_cert = files.load_certificate(Path(args.ca)).cert
    failures: list[str] = []
    with connect(args, ui) as board:
        r = run(board, ui, device.CHECK_READ, PIN=args.pin, KEY_LABEL=names.DEFAULT_KEY_LABEL.encode(),
                CERT_LABEL=names.DEFAULT_CERT_LABEL.encode(), CA_LABEL=names.DEFAULT_CA_LABEL.encode(),
                CONFIG_FILE=device.CONFIG_FILE)
        ui.out(f"{board.name}:")
        cfg = parse_config(r.get("config")) or {}
        endpoint, thing = cfg.get("endpoint"), cfg.get("thing_name")
        _check_line(ui, bool(endpoint and thing and "error" not in cfg),
                    f"configuration: endpoint {endpoint!r}, thing {thing!r}, port {cfg.get('port')!r}"
                    + ("" if endpoint and thing else f" (set it: {show.PROG} config --endpoint HOST --thing-name NAME)"),
                    failures)
        hint = show.login_hint(r["flags"], args.pin)
        _check_line(ui, r["keys"] == 1, f"private key {names.DEFAULT_KEY_LABEL!r}: "
                    f"{r['keys']} found{hint if r['keys'] == 0 else ''}", failures)
        cert = None
        if r["certs"] == 1:
            cert = x509.load_der_x509_certificate(bytes(r["cert"]))
        _check_line(ui, cert is not None, f"certificate {names.DEFAULT_CERT_LABEL!r}: {r['certs']} found"
                    + (f" ({cert.subject.rfc4514_string()}, issued by {cert.issuer.rfc4514_string()})"
                       if cert is not None else ""), failures)
        if cert is not None and r.get("key"):
            token_pub = files.public_key_of(r["key"])
            same = token_pub is not None and \
                files.spki_fingerprint(token_pub) == files.spki_fingerprint(cert.public_key())
            _check_line(ui, same, "the certificate is the private key's" if same else
                        "the certificate is for ANOTHER key (import the right one with import-cert --replace)",
                        failures)
        if cert is not None:
            now = datetime.datetime.now(datetime.timezone.utc)
            valid = cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
            _check_line(ui, valid, f"valid from {cert.not_valid_before_utc:%Y-%m-%d} until "
                        f"{cert.not_valid_after_utc:%Y-%m-%d}", failures)
            if ca_cert is not None:
                try:
                    cert.verify_directly_issued_by(ca_cert)
                    issued = True
                except Exception:          # another issuer, or a signature that does not verify
                    issued = False
                _check_line(ui, issued, f"issued by --ca {args.ca} ({ca_cert.subject.rfc4514_string()})",
                            failures)
        _check_line(ui, r["cas"] >= 1, f"root CA {names.DEFAULT_CA_LABEL!r}: {r['cas']} found", failures)
        if failures or ca_cert is None:
            if not failures:
                ui.say("static checks passed; add --ca <the CA that issued the certificate> (with "
                       "--unix) for a live MQTT check against a local broker")
            return Exit.OBJECT if failures else Exit.OK
        from p11lab import LabError
        from p11lab.localca import LocalCA
        from p11lab.mosquitto import Mosquitto, TLSListener

        work = Path(tempfile.mkdtemp(prefix="p11board-check-"))
        mqtt = None
        try:
            server_ca = LocalCA(work / "ca", name="p11board check server CA")
            server = server_ca.issue_server((str(endpoint), "localhost", "127.0.0.1"))
            ca_file = work / "client-ca.pem"
            ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
            mqtt = Mosquitto(work, plain=False, allow_anonymous=False,
                             tls=TLSListener(cafile=ca_file, certfile=server.cert_path,
                                             keyfile=server.key_path,  # type: ignore[arg-type]
                                             extra=["tls_version tlsv1.2"]))
            try:
                mqtt.start()
            except LabError as e:
                raise ToolError(Exit.CONNECTION, f"cannot start the local broker: {e}") from None
            ui.say(f"local mosquitto on 127.0.0.1:{mqtt.tls_port} (pid {mqtt.pid}), trusting {args.ca}")
            m = run(board, ui, device.CHECK_MQTT, PIN=args.pin, HOST="127.0.0.1", PORT=mqtt.tls_port,
                    SERVER_NAME=str(endpoint), THING=str(thing), SERVER_CA=server_ca.root_der, WAIT=10)
        finally:
            if mqtt is not None:
                mqtt.stop()
            shutil.rmtree(work, ignore_errors=True)
        _check_line(ui, True, f"MQTT connect as {thing!r} through the token (local broker, server name "
                    f"{endpoint})", failures)
        _check_line(ui, bool(m["echo"]), f"publish and receive on {m['topic']}", failures)
    return Exit.OBJECT if failures else Exit.OK
# -- locked production mode ---------------------------------------------------------------


def lock(args: argparse.Namespace, ui: UI) -> int:
    app = args.app
    if not re.fullmatch(r"(frozen:[A-Za-z_][A-Za-z0-9_.]*|[A-Za-z0-9_./-]{1,60})", app):
        raise ToolError(Exit.USAGE, f"--app {app!r}: a file path on the board or frozen:<module>")
    _confirm("lock the board? Its REPL will accept no input after the next reset; only erasing "
             "the token partition (every key on it) unlocks it", args.yes)
    with connect(args, ui) as board:
        r = run(board, ui, device.LOCK, PIN=args.pin, APP=app, FORCE=bool(args.force))
    ui.say(f"locked: {r['path']} written; after the next reset the board runs {r['app']} and "
           "no REPL. To unlock, erase the token partition (ESP32: make flash ... ERASE_TOKEN=1; "
           "qemu: delete the flash image); its keys are destroyed with it.")
    return Exit.OK
