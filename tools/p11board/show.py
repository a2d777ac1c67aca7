"""Output: progress on stderr, results on stdout as text or (--json) JSON.

The commands hand over plain records (dicts built from the board's answers);
everything about how they look lives here.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import files, names
from .errors import Exit, PinNeeded, ToolError

PROG = "p11board"


class UI:
    def __init__(self, quiet: bool, as_json: bool) -> None:
        self.quiet = quiet
        self.json = as_json
        self.dumped = False                 # --json: the command printed its own JSON
        self.messages: list[str] = []       # --json: progress and hints, for the summary
        self.lines: list[str] = []          # --json: text output of commands without a JSON form

    def say(self, text: str) -> None:
        """Progress and hints: stderr, unless --quiet."""
        if self.json:
            self.messages.append(text)
        if not self.quiet:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def out(self, text: str = "") -> None:
        if self.json:
            self.lines.append(text)         # goes into the JSON summary (see finish)
            return
        print(text, flush=True)

    def dump(self, obj: object) -> None:
        self.dumped = True
        print(json.dumps(jsonable(obj), indent=2, sort_keys=True), flush=True)

    def finish(self, command: str, code: int, error_text: str | None = None) -> None:
        """--json: every command ends with one JSON document on stdout, failures too."""
        if not self.json or (self.dumped and error_text is None):
            return
        doc: dict[str, Any] = {"ok": code == 0, "command": command, "exit": code}
        if error_text is not None:
            doc["error"] = error_text
        if self.lines:
            doc["output"] = "\n".join(self.lines)
        doc["messages"] = self.messages
        self.dump(doc)


ERRORS: list[str] = []


def error(text: str) -> None:
    """A failure, always shown (stderr); kept for the --json summary."""
    ERRORS.append(text)
    print(f"{PROG}: {text}", file=sys.stderr)


def warn(text: str) -> None:
    """A warning, always shown (stderr), even with -q; not a failure: --json output
    is unchanged."""
    print(f"{PROG}: warning: {text}", file=sys.stderr)


def jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def text(v: Any) -> str:
    """A PKCS#11 padded/bytes field as text."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace").rstrip(" \x00")
    return "" if v is None else str(v)


def size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def login_hint(flags: int, pin: str | None) -> str:
    if flags & names.CKF_LOGIN_REQUIRED and pin is None:
        return " (the token has a user PIN: private objects stay hidden without --pin)"
    return ""


def not_found(message: str, flags: int, pin: str | None, then: str = "") -> ToolError:
    """The error for "no such object": a PinNeeded when private objects may be hiding it."""
    hint = login_hint(flags, pin)
    return (PinNeeded if hint else ToolError)(Exit.OBJECT, message + hint + then)


# -- info -------------------------------------------------------------------------------


def info_record(r: dict[str, Any], where: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """The board's INFO answer as the record `info` prints (and --json dumps)."""
    tok = r["token"]
    return {
        "board": where,
        "platform": r["platform"], "version": r["version"], "machine": r["machine"],
        "micropython": r.get("micropython"),
        "token_dir": r["token_dir"], "token_partition": r.get("token_partition"),
        "crypto_backend": r["backend"], "mem_free": r["mem_free"],
        "library": {"manufacturer": text(r["info"]["manufacturerID"]),
                    "description": text(r["info"]["libraryDescription"]),
                    "cryptoki_version": list(r["info"]["cryptokiVersion"]),
                    "version": list(r["info"]["libraryVersion"])},
        "slot": {"id": 0, "description": text(r["slot"]["slotDescription"])},
        "token": {"label": text(tok["label"]), "serial": text(tok["serialNumber"]),
                  "model": text(tok["model"]), "flags": names.flag_names(tok["flags"], names.CKF_TOKEN),
                  "pin_length": [tok["ulMinPinLen"], tok["ulMaxPinLen"]],
                  "max_sessions": tok["ulMaxSessionCount"],
                  "total_bytes": tok["ulTotalPublicMemory"], "free_bytes": tok["ulFreePublicMemory"]},
        "mechanisms": [{"mechanism": names.CKM.get(m, hex(m)), "value": m,
                        "min_key_bits": i["ulMinKeySize"], "max_key_bits": i["ulMaxKeySize"],
                        "flags": names.flag_names(i["flags"], names.CKF_MECH)} for m, i in r["mechanisms"]],
        "config": config,
    }


def info(ui: UI, info: dict[str, Any]) -> None:
    if ui.json:
        ui.dump(info)
        return
    t = info["token"]
    config = info["config"]
    ui.out(f"board:       {info['board']}")
    mp = f"MicroPython {info['micropython']}" if info.get("micropython") else "MicroPython"
    ui.out(f"firmware:    {mp} ({info['platform']}; {info['machine']}; Python language {info['version']})")
    ui.out(f"token:       {t['label']!r}, serial {t['serial']}, model {t['model']!r}")
    part = f" (ESP32 token partition: {info['token_partition']})" if info["token_partition"] else ""
    ui.out(f"storage:     {info['token_dir']}: {size(t['free_bytes'])} free of {size(t['total_bytes'])}{part}")
    ui.out(f"flags:       {', '.join(t['flags'])}")
    ui.out(f"PIN length:  {t['pin_length'][0]} to {t['pin_length'][1]}")
    ui.out(f"crypto:      {'C module _pkcs11' if info['crypto_backend'] == 'c' else 'pure Python (pkcs11.pure)'}")
    ui.out(f"free RAM:    {info['mem_free']} bytes")
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
        ui.out(f"AWS IoT:     not configured ({PROG} config --endpoint ... --thing-name ...)")


# -- list -------------------------------------------------------------------------------


def object_row(handle: int, a: dict[Any, Any]) -> dict[str, Any]:
    """One `list` row from the board's attributes of an object."""
    if "error" in a:
        return {"handle": handle, "error": a["error"]}
    cls = a.get(0)
    row: dict[str, Any] = {
        "handle": handle, "class": names.CKO.get(cls, str(cls)), "label": text(a.get(3)),
        "id": (a.get(0x102) or b"").hex(), "private": bool(a.get(2)),
    }
    if cls in (2, 3):
        row["key_type"] = names.CKK.get(a.get(0x100), str(a.get(0x100)))
        row["size"] = names.key_size(a.get(0x100), a.get(0x180), a.get(0x121))
    elif cls == 1:
        row["key_type"] = "X.509" if a.get(0x80) == 0 else str(a.get(0x80))
        row["size"] = f"{a['size']} bytes" if a.get("size") is not None else ""
    else:
        row["key_type"] = text(a.get(0x10)) or ""
        row["size"] = f"{a['size']} bytes" if a.get("size") is not None else ""
    return row


def object_list(ui: UI, rows: list[dict[str, Any]], flags: int, pin: str | None) -> None:
    hint = login_hint(flags, pin)
    if ui.json:
        ui.dump({"objects": rows, "login_required": bool(flags & names.CKF_LOGIN_REQUIRED),
                 "logged_in": pin is not None})
        return
    if not rows:
        ui.out("the token holds no objects" + hint)
        return
    ui.out(f"{'HANDLE':>6}  {'CLASS':<12} {'LABEL':<32} {'TYPE':<6} {'SIZE':<11} ID")
    for row in rows:
        if "error" in row:
            ui.out(f"{row['handle']:>6}  unreadable record: {row['error']}")
            continue
        ui.out(f"{row['handle']:>6}  {row['class']:<12} {row['label']:<32} {row['key_type']:<6} "
               f"{row['size']:<11} {row['id']}")
    if hint:
        ui.say(hint.strip(" ()"))


# -- show -------------------------------------------------------------------------------


def attribute_text(t: int, v: Any) -> Any:
    if v == 0xFFFFFFFF and t == 0x166:
        return "none (imported)"
    if t in (3, 0x10):
        return text(v)
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


def object_record(handle: int, a: dict[Any, Any]) -> dict[str, Any]:
    """One `show` record: named attributes, the certificate or public key decoded."""
    cls = a.get(0)
    out: dict[str, Any] = {"handle": handle, "class": names.CKO.get(cls, str(cls))}
    attrs: dict[str, Any] = {}
    for t in sorted(k for k in a if isinstance(k, int)):
        v = a[t]
        if v is None or (t == 0x11 and cls == 1):
            continue  # unavailable; or the certificate itself, decoded below
        attrs[names.CKA.get(t, hex(t))] = attribute_text(t, v)
    out["attributes"] = attrs
    if cls == 0 and a.get("size") is not None:
        out["value_size"] = a["size"]
    if cls == 1 and a.get(0x11):
        try:
            out["certificate"] = files.certificate_summary(x509.load_der_x509_certificate(bytes(a[0x11])))
        except ValueError:
            out["certificate"] = {"error": "CKA_VALUE is not a valid X.509 certificate"}
    if cls in (2, 3):
        pub = files.public_key_of(a)
        if pub is not None:
            out["public_key"] = {
                "type": files.describe_public_key(pub),
                "spki_sha256": files.spki_fingerprint(pub),
                "key_id": files.key_id(pub).hex(),
                "pem": public_pem(pub),
            }
    return out


def objects(ui: UI, objs: list[dict[str, Any]]) -> None:
    if ui.json:
        ui.dump(objs)
        return
    for i, o in enumerate(objs):
        if i:
            ui.out()
        ui.out(f"{o['class']} (handle {o['handle']})")
        for k, v in o["attributes"].items():
            if k == "CKA_SERIAL_NUMBER" and "certificate" in o:
                continue        # the certificate's serial is shown below, once
            ui.out(f"  {k:<24} {v}")
        if "value_size" in o:
            ui.out(f"  {'value':<24} {o['value_size']} bytes")
        if "certificate" in o:
            c = o["certificate"]
            ui.out("  certificate:")
            for k in ("subject", "issuer", "serial", "not_before", "not_after", "public_key",
                      "sha256_fingerprint", "key_id", "self_signed", "ca", "error"):
                if k in c:
                    v = c[k]
                    if k == "ca":
                        v = "yes" if v else ("no" if v is False else "no (no basicConstraints)")
                    elif k == "self_signed":
                        v = "yes" if v else "no"
                    ui.out(f"    {k:<20} {v}")
        if "public_key" in o:
            pk = o["public_key"]
            ui.out(f"  public key:              {pk['type']}, SPKI SHA-256 {pk['spki_sha256']}")
            for line in pk["pem"].strip().splitlines():
                ui.out(f"    {line}")


def public_pem(pub: Any) -> str:
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# -- config -----------------------------------------------------------------------------


def config(ui: UI, config: dict[str, Any]) -> None:
    if ui.json:
        ui.dump(config)
    elif config:
        for k in ("endpoint", "thing_name", "port", "error"):
            if k in config:
                ui.out(f"{k:<11} {config[k]}")
    else:
        ui.out(f"not configured: {PROG} config --endpoint <prefix>-ats.iot.<region>.amazonaws.com "
               "--thing-name <thing>")
