"""`p11board load-claim`: the bench step of fleet provisioning by claim, once per batch.

    p11board load-claim batch.json                 # every board of the batch gets the same file
    p11board load-claim --cert claim.pem --key claim.key --ca AmazonRootCA1.pem \\
        --template MyTemplate --endpoint <prefix>-ats.iot.<region>.amazonaws.com
    p11board load-claim --generate-key --subject "CN=claim-batch-7" --out claim.csr
                                                  # claim key born in the token instead;
                                                  # then load-claim --cert ... without --key

The claim key goes to "Claim Key" (sent once, zeroed on the board after the import,
never read back), the claim certificate to "Claim Cert", the root CA to "Root Cert",
and the template name, endpoint and parameters to fleet_claim.json in the token
directory, where the device module fleetprov reads them on first boot.

The batch file is JSON: {"template", "endpoint", "port", "server_name",
"parameters", "claim_certificate" (PEM), "claim_private_key" (PEM), "root_ca" (PEM)};
options given on the command line override its fields. docs/fleet-provisioning.md.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import device, files
from .commands import connect
from .errors import Exit, ToolError
from .show import PROG, UI

CLAIM_KEY = b"Claim Key"
CLAIM_PUB = b"Claim Pub Key"
CLAIM_CERT = b"Claim Cert"
ROOT_CERT = b"Root Cert"
CLAIM_FILE = "fleet_claim.json"

_STORE = r'''
def _main():
    from pkcs11 import config, crypto
    from pkcs11.store import Store, replace_file
    _check_mount()
    with _session(True) as s:
        taken = []
        wanted = [(CERT_LABEL, 1)]
        if _K is not None:
            wanted.append((KEY_LABEL, 3))
        if CA is not None:
            wanted.append((CA_LABEL, 1))
        for label, cls in wanted:
            for o in s.find_objects(object_class=cls, label=label):
                if label == CA_LABEL and _get(o, [0x11])[0x11] == crypto.parse_certificate(CA)["der"]:
                    continue
                taken.append((o, cls, label))
        if taken and not REPLACE:
            _o("R", {"taken": [(o.handle, c, label) for o, c, label in taken]})
            return
        for o, cls, label in taken:
            o.destroy()
        if _K is not None:
            _o("P", "storing the claim key in the token")
            s.import_key(_K, label=KEY_LABEL)
        keys = s.find_objects(object_class=3, label=KEY_LABEL)
        if len(keys) != 1:
            raise ValueError("the token has %d keys labelled %r: give --key, or --generate-key first"
                             % (len(keys), KEY_LABEL))
        kt = _get(keys[0], [0x100])[0x100]
        pk = crypto.parse_certificate(CERT)["public_key"] or {}
        if kt == 3:
            ok = pk.get("type") == "ec" and _get(keys[0], [0x181])[0x181][-65:] == pk.get("q")
        else:
            ok = pk.get("type") == "rsa" and _get(keys[0], [0x120])[0x120] == pk.get("n")
        if not ok:
            raise ValueError("the claim certificate is not for the claim key in the token")
        for label in (CERT_LABEL,) + ((CA_LABEL,) if CA is not None else ()):
            if not s.find_objects(object_class=1, label=label):
                s.import_certificate(CERT if label == CERT_LABEL else CA, label=label)
        d = config.token_dir()
        Store(d).ensure()
        path = d + "/" + CLAIM_FILE
        replace_file(path, SETTINGS)
        _o("R", {"path": path, "replaced": len(taken)})
'''

# Runs after _STORE, whatever happened: the key bytes (if sent) are zeroed.
_WIPE = r'''
if _K is not None:
    for _i in range(len(_K)):
        _K[_i] = 0
_K = None
gc.collect()
'''

_GENERATE = r'''
def _main():
    import p11csr
    _check_mount()
    with _session(True) as s:
        old = s.find_objects(object_class=3, label=KEY_LABEL) + \
            s.find_objects(object_class=2, label=PUB_LABEL)
        if old and not REPLACE:
            _o("R", {"taken": len(old)})
            return
        for o in old:
            o.destroy()
        _o("P", "generating the claim key pair in the token")
        pub, key = s.generate_keypair(label=KEY_LABEL, public_label=PUB_LABEL)
        _o("R", {"csr": p11csr.make_csr(s, key, SUBJECT, pub=pub)})
'''


def _pem_file(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ToolError(Exit.FILE_FORMAT, f"{path}: {e.strerror}") from None


def _certificate(data: bytes, what: str) -> bytes:
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data \
            else x509.load_der_x509_certificate(data)
    except ValueError:
        raise ToolError(Exit.FILE_FORMAT, f"{what} is not an X.509 certificate") from None
    return cert.public_bytes(serialization.Encoding.DER)


def _private_key(data: bytes, what: str) -> bytearray:
    try:
        key = serialization.load_pem_private_key(data, password=None) if b"-----BEGIN" in data \
            else serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise ToolError(Exit.FILE_FORMAT, f"{what} is encrypted; decrypt it first") from None
    except ValueError:
        raise ToolError(Exit.FILE_FORMAT, f"{what} is not a private key") from None
    if not ((isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1")
            or (isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048)):
        raise ToolError(Exit.FILE_FORMAT, f"{what}: the token takes EC P-256 and RSA-2048 keys only")
    return bytearray(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _bundle(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        v = json.loads(Path(path).read_text())
    except OSError as e:
        raise ToolError(Exit.FILE_FORMAT, f"{path}: {e.strerror}") from None
    except ValueError:
        raise ToolError(Exit.FILE_FORMAT, f"{path} is not JSON") from None
    if not isinstance(v, dict):
        raise ToolError(Exit.FILE_FORMAT, f"{path} is not a JSON object")
    return v


def _generate(args: argparse.Namespace, ui: UI) -> int:
    if not args.subject or not args.out:
        raise ToolError(Exit.USAGE, "--generate-key needs --subject and --out")
    subject = files.check_subject(args.subject)
    with connect(args, ui) as board:
        r = board.run(device.script(_GENERATE, PIN=args.pin, KEY_LABEL=CLAIM_KEY, PUB_LABEL=CLAIM_PUB,
                                    SUBJECT=subject, REPLACE=args.replace), progress=ui.say)
    if "taken" in r:
        raise ToolError(Exit.OBJECT, f"the token already has a {CLAIM_KEY.decode()!r}; add --replace")
    pem = files.csr_pem(r["csr"])
    if args.out == "-":
        ui.out(pem.rstrip())
    else:
        Path(args.out).write_text(pem)
        ui.say(f"wrote {args.out}")
    ui.say("next: have the CSR signed (aws iot create-certificate-from-csr), then "
           f"{PROG} load-claim --cert claim.pem --ca root.pem --template ... --endpoint ...")
    return Exit.OK


def cmd_load_claim(args: argparse.Namespace, ui: UI) -> int:
    if args.generate_key:
        return _generate(args, ui)
    b = _bundle(args.bundle)
    cert_pem = _pem_file(args.cert) or (b.get("claim_certificate") or "").encode() or None
    key_pem = _pem_file(args.key) or (b.get("claim_private_key") or "").encode() or None
    ca_pem = _pem_file(args.ca) or (b.get("root_ca") or "").encode() or None
    if cert_pem is None:
        raise ToolError(Exit.USAGE, "no claim certificate: give --cert or a batch file with claim_certificate")
    settings: dict[str, Any] = {}
    for k in ("template", "endpoint", "port", "server_name"):
        v = getattr(args, k) if getattr(args, k) is not None else b.get(k)
        if v is not None:
            settings[k] = v
    params = dict(b.get("parameters") or {})
    for p in args.param or ():
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise ToolError(Exit.USAGE, f"--param {p!r}: use NAME=VALUE")
        params[k] = v
    if params:
        settings["parameters"] = params
    if not settings.get("template") or not re.fullmatch(r"[0-9A-Za-z_-]{1,36}", settings["template"]):
        raise ToolError(Exit.USAGE, "--template: the provisioning template name (1 to 36 characters "
                        "of a-z A-Z 0-9 _ -)")
    if not settings.get("endpoint"):
        raise ToolError(Exit.USAGE, "--endpoint: aws iot describe-endpoint --endpoint-type iot:Data-ATS")
    settings.setdefault("port", 8883)
    cert = _certificate(cert_pem, "the claim certificate")
    ca = _certificate(ca_pem, "the root CA") if ca_pem else None
    key = _private_key(key_pem, "the claim key") if key_pem else None
    key_pem = None
    ui.say(f"claim for template {settings['template']!r} at {settings['endpoint']}:{settings['port']}"
           + ("" if key is not None else " (claim key already in the token)"))
    try:
        with connect(args, ui) as board:
            r = board.run(device.script(_STORE, _WIPE, PIN=args.pin, KEY_LABEL=CLAIM_KEY,
                                        CERT_LABEL=CLAIM_CERT, CA_LABEL=ROOT_CERT, CERT=cert, CA=ca,
                                        REPLACE=args.replace, CLAIM_FILE=CLAIM_FILE,
                                        SETTINGS=json.dumps(settings, sort_keys=True), _K=key),
                          progress=ui.say)
    finally:
        if key is not None:
            key[:] = bytes(len(key))
    if "taken" in r:
        what = ", ".join(repr(bytes(label).decode()) for _h, _c, label in r["taken"])
        raise ToolError(Exit.OBJECT, f"the token already has {what}; add --replace to replace")
    ui.say(f"claim identity stored; settings in {r['path']}"
           + (f"; replaced {r['replaced']} object(s)" if r["replaced"] else ""))
    ui.say("on the board: import fleetprov; fleetprov.provision()")
    return Exit.OK


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `load-claim` with the CLI's add(name, fn, help) helper."""
    sp = add("load-claim", cmd_load_claim, "fleet provisioning by claim: store the batch's claim "
             "key, claim certificate, root CA and template settings on the board "
             "(docs/fleet-provisioning.md)")
    sp.add_argument("bundle", nargs="?", metavar="BATCH.json",
                    help="the batch file (JSON with the claim credentials and settings)")
    sp.add_argument("--cert", help="claim certificate (PEM/DER)")
    sp.add_argument("--key", help="claim private key (PEM/DER; sent once, never read back)")
    sp.add_argument("--ca", help="root CA of the endpoint (e.g. AmazonRootCA1.pem)")
    sp.add_argument("--template", help="the fleet provisioning template name")
    sp.add_argument("--endpoint", help="<prefix>-ats.iot.<region>.amazonaws.com")
    sp.add_argument("--port", type=int, help="MQTT port (default 8883)")
    sp.add_argument("--server-name", help="TLS server name when it differs from the endpoint")
    sp.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="a template parameter every board sends (repeatable)")
    sp.add_argument("--replace", action="store_true", help="replace claim objects already there")
    sp.add_argument("--generate-key", action="store_true",
                    help="generate the claim key in the token and write its CSR (--subject, --out)")
    sp.add_argument("--subject", help='with --generate-key: e.g. "CN=claim-batch-7"')
    sp.add_argument("--out", help="with --generate-key: where the CSR goes ('-' for stdout)")
