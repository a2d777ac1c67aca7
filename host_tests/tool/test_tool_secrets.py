"""No p11board command makes a private key's bytes leave the device.

The token holds known keys: the seed's EC key and an RSA-2048 key imported by
the tool, and an EC key created *extractable and not sensitive* (so the token
itself would hand its value to anyone asking). Every command runs with every
option, in-process, while every byte the board sends is recorded. The key
values are then searched, in the usual text forms, in: each command's stdout
and stderr, the JSON outputs, the files the tool wrote, and the raw bytes
received from the board.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness.paths import BUILD, ROOT
from harness.p11board import run_openssl

sys.path.insert(0, str(ROOT / "tools"))

from p11board import cli, device  # noqa: E402
from p11board.connection import Connection, DeviceFailure  # noqa: E402


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _forms(secret: bytes, windows: bool = True) -> set[bytes]:
    """Text and binary forms of a secret (and of 12-byte windows of it, so that a
    partial leak is found too; not for DER encodings, whose headers are public)."""
    forms: set[bytes] = set()
    windows = [secret] + ([secret[i:i + 12] for i in range(0, max(1, len(secret) - 12), 8)] if windows else [])
    for w in windows:
        h = w.hex()
        forms |= {w, h.encode(), h.upper().encode(), w.hex(":").encode(), w.hex(":").upper().encode(),
                  repr(w)[2:-1].encode()}
    for shift in range(3):
        b64 = base64.b64encode(secret[shift:]).decode()
        forms.add(b64[4:28].encode())                       # a chunk clear of the edges
        forms.add(base64.urlsafe_b64encode(secret[shift:])[4:28])
    forms.add(str(int.from_bytes(secret, "big")).encode())
    return forms


def _pem_lines(pem: bytes) -> set[bytes]:
    return {line.strip() for line in pem.splitlines()
            if line.strip() and not line.startswith(b"-----") and len(line.strip()) >= 24}


@pytest.fixture
def known_keys(tmp_path, seed_files, unix_fw):
    """The secrets to look for, and the key files they came from."""
    run_openssl("genrsa", "-traditional", "-out", "rsa.key", "2048", cwd=tmp_path)
    ec_key = serialization.load_pem_private_key(seed_files.key.read_bytes(), None)
    rsa_key = serialization.load_pem_private_key((tmp_path / "rsa.key").read_bytes(), None)
    loose = ec.generate_private_key(ec.SECP256R1())
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and isinstance(rsa_key, rsa.RSAPrivateKey)
    secrets: dict[str, bytes] = {"ec d": ec_key.private_numbers().private_value.to_bytes(32, "big"),
                                 "loose d": loose.private_numbers().private_value.to_bytes(32, "big")}
    n = rsa_key.private_numbers()
    for name, v in (("rsa d", n.d), ("rsa p", n.p), ("rsa q", n.q), ("rsa dp", n.dmp1),
                    ("rsa dq", n.dmq1), ("rsa qinv", n.iqmp)):
        secrets[name] = _int_bytes(v)
    files = [seed_files.key, tmp_path / "rsa.key"]
    pems = set()
    for k in (ec_key, rsa_key, loose):
        for fname, fmt in (("PKCS#8", serialization.PrivateFormat.PKCS8),
                           ("SEC1/PKCS#1", serialization.PrivateFormat.TraditionalOpenSSL)):
            der = k.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
            secrets[f"{type(k).__name__} {fname} DER"] = der
            pems |= _pem_lines(k.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    for f in files:
        pems |= _pem_lines(f.read_bytes())
    # the loose key goes in through the token API, extractable and not sensitive
    d = secrets["loose d"]
    unix_fw.run(f"""
        import pkcs11
        from pkcs11.constants import *
        with pkcs11.open_session() as s:
            s.create_object([(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
                             (CKA_LABEL, b"Loose Key"), (CKA_SIGN, True), (CKA_SENSITIVE, False),
                             (CKA_EXTRACTABLE, True),
                             (CKA_EC_PARAMS, b"\\x06\\x08\\x2a\\x86\\x48\\xce\\x3d\\x03\\x01\\x07"),
                             (CKA_VALUE, {d!r})])
            k = s.get_key(object_class=CKO_PRIVATE_KEY, label="Loose Key")
            assert k[CKA_VALUE] == {d!r}        # the token itself would reveal it
        print("ok")
    """)
    return secrets, pems, tmp_path / "rsa.key"


def record_serial(monkeypatch) -> bytearray:
    """Every byte later SerialTransports read from their board, in one buffer."""
    from mpremote import transport_serial

    received = bytearray()
    orig_init = transport_serial.SerialTransport.__init__

    def init(transport, *a, **kw):
        orig_init(transport, *a, **kw)
        real_read = transport.serial.read

        def read(size=1):
            data = real_read(size)
            received.extend(data)
            return data

        transport.serial.read = read

    monkeypatch.setattr(transport_serial.SerialTransport, "__init__", init)
    return received


def leaks(hay: bytes, secret: bytes) -> bool:
    return any(f in hay or f.lower() in hay.lower() for f in _forms(secret))


class Recorder:
    """Runs p11board in-process; keeps stdout, stderr and every byte the board sent."""

    def __init__(self, monkeypatch, token_dir: Path, cwd: Path) -> None:
        self.outputs: list[tuple[list[str], int, str, str]] = []
        self.base = ["--unix", "--token-dir", str(token_dir), "--create"]
        self.cwd = cwd
        monkeypatch.setenv("BUILD", str(BUILD))
        monkeypatch.delenv("P11BOARD_PIN", raising=False)
        monkeypatch.chdir(cwd)
        self.received = record_serial(monkeypatch)
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    def __call__(self, *args: str, expect: int = 0) -> str:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = cli.main([*self.base, *args])
        self.outputs.append((list(args), rc, out.getvalue(), err.getvalue()))
        assert rc == expect, f"p11board {' '.join(args)} -> {rc}\n{out.getvalue()}\n{err.getvalue()}"
        return out.getvalue()


def test_no_command_lets_private_key_bytes_leave_the_device(known_keys, seed_files, unix_fw,
                                                             monkeypatch, tmp_path):
    secrets, pem_lines, rsa_file = known_keys
    run = Recorder(monkeypatch, unix_fw.token_dir, tmp_path)
    written: list[Path] = []

    # provisioning, with every option of the import commands
    run("import-key", str(seed_files.key))
    run("import-key", str(seed_files.key), expect=5)
    run("import-key", str(seed_files.key), "--replace", "--id", "a1b2")
    run("import-key", str(rsa_file), "--label", "RSA Key", "--public-label", "RSA Pub", "--replace")
    run("import-key", str(seed_files.key), "--label", "Bare", "--no-public", "-q")
    run("import-cert", str(seed_files.cert))
    run("import-cert", str(seed_files.cert), "--label", "Other Cert", "--id", "01", "--replace")
    run("import-ca", str(seed_files.ca))
    run("import-ca", str(seed_files.ca), "--replace", "--label", "CA 2")
    run("generate-key", "--label", "Gen", "--public-label", "Gen Pub", "--id", "02")
    run("generate-key", "--label", "Gen", "--public-label", "Gen Pub", "--replace")
    run("config", "--endpoint", "abc-ats.iot.eu-west-1.amazonaws.com", "--thing-name", "dcgecc",
        "--port", "8883")

    # everything that reads, for every label, class and output form
    labels = ["Device Priv TLS Key", "Device Pub TLS Key", "RSA Key", "RSA Pub", "Bare", "Loose Key",
              "Device Cert", "Other Cert", "Root Cert", "CA 2", "Gen", "Gen Pub"]
    private = ("Device Priv TLS Key", "RSA Key", "Bare", "Loose Key", "Gen")
    for pin_args in ([], ["--pin", "97531"]):
        if pin_args:
            run("set-pin", "--old-pin", "", "--new-pin", "97531")
            # without the PIN now: private objects are hidden
            run("list")
            run("list", "--json")
            for label in private:
                run("show", label, expect=5)
                run("csr", "--subject", "CN=x", "--label", label, expect=5)
        run("info", *pin_args)
        run("info", "--json", *pin_args)
        run("list", *pin_args)
        run("list", "--json", *pin_args)
        run("config", *pin_args)
        run("config", "--json", *pin_args)
        run("check", *pin_args)
        run("check", "--json", *pin_args)
        for label in labels:
            run("show", label, *pin_args)
            run("show", label, "--json", *pin_args)
            for cls in ("private-key", "public-key", "certificate", "data"):
                out, err = io.StringIO(), io.StringIO()
                with redirect_stdout(out), redirect_stderr(err):
                    rc = cli.main([*run.base, "show", label, "--class", cls, "--json", *pin_args])
                run.outputs.append((["show", label, "--class", cls], rc, out.getvalue(), err.getvalue()))
                assert rc in (0, 5)
        for label in private:
            out = tmp_path / f"{label.replace(' ', '_')}{len(pin_args)}.csr"
            run("csr", "--subject", "CN=leak-test,O=Example", "--label", label, *pin_args)
            run("csr", "--subject", "CN=leak-test", "--label", label, "--out", str(out), *pin_args)
            written.append(out)

    # the destructive ones last
    run("destroy", "Gen", "--pin", "97531", expect=6)                    # no terminal, no --yes
    run("destroy", "Gen", "--class", "private-key", "--pin", "97531", "--yes")
    run("destroy", "Loose Key", "--pin", "97531", "--yes")
    run("set-pin", "--old-pin", "97531", "--new-pin", "86420")
    run("set-pin", "--so", "--old-pin", "x", "--new-pin", "y", expect=1)  # no SO PIN yet
    run("init-token", "--so-pin", "so-pin-1", "--label", "Wiped", "--user-pin", "1234", "--yes")
    run("list", "--json", "--pin", "1234")
    run("init-pin", "--so-pin", "so-pin-1", "--new-pin", "5678")
    run("unlock", "--so-pin", "so-pin-1", "--new-pin", "5679")

    assert len(run.outputs) > 100 and len(run.received) > 10_000
    # the commands did see the keys: their public halves were printed
    everything = "".join(o[2] + o[3] for o in run.outputs)
    assert "BEGIN PUBLIC KEY" in everything and "CERTIFICATE REQUEST" in everything
    assert '"CKA_SENSITIVE": false' in everything                        # the loose key was shown

    haystacks: list[tuple[str, bytes]] = [("serial bytes received from the board", bytes(run.received))]
    for args, _rc, out, err in run.outputs:
        haystacks.append((f"p11board {' '.join(args)} stdout", out.encode()))
        haystacks.append((f"p11board {' '.join(args)} stderr", err.encode()))
    for f in written:
        haystacks.append((str(f), f.read_bytes()))
    assert len(written) == 10

    needles: list[tuple[str, bytes]] = [(name, form) for name, value in secrets.items()
                                        for form in _forms(value, windows="DER" not in name)]
    # PEM lines that carry secret bytes (an EC key's PEM also holds its public point)
    raw = [v for name, v in secrets.items() if "DER" not in name]

    def secret_line(line: bytes) -> bool:
        try:
            data = base64.b64decode(line, validate=True)
        except ValueError:
            return False
        return any(data[i:i + 8] in v for v in raw for i in range(len(data) - 7))

    needles += [("a line of a PEM private key", line) for line in pem_lines if secret_line(line)]
    assert len(needles) > 500
    for where, hay in haystacks:
        low = hay.lower()
        for name, needle in needles:
            assert needle not in hay and needle.lower() not in low, f"{name} found in {where}"


def test_device_scripts_refuse_secret_attributes_even_when_the_token_would_answer(known_keys, unix_fw,
                                                                                  monkeypatch):
    """The device helper `_get` is the only attribute reader of every script; it
    refuses secret attributes of private keys before asking the token."""
    monkeypatch.setenv("BUILD", str(BUILD))
    body = """
def _main():
    with _session(False) as s:
        o = s.get_object(label=b"Loose Key")
        _o("R", _get(o, [ATTR]))
"""
    with Connection(unix=True, token_dir=str(unix_fw.token_dir), timeout=30) as board:
        for attr in device.SECRET_ATTRIBUTES:
            with pytest.raises(DeviceFailure) as e:
                board.run(device.script(body, ATTR=attr))
            assert e.value.kind == "ValueError" and "never reads secret" in e.value.text
        # the same helper reads public attributes of the same key
        assert board.run(device.script(body, ATTR=0x103)) == {0x103: False}


def test_the_leak_search_finds_a_leak(known_keys, unix_fw, monkeypatch):
    """Negative control for the search above: a script that bypasses `_get` and
    asks the token for the extractable key's value is caught."""
    secrets = known_keys[0]
    monkeypatch.setenv("BUILD", str(BUILD))
    received = record_serial(monkeypatch)
    body = """
def _main():
    with _session(False) as s:
        o = s.get_object(label=b"Loose Key")
        _o("R", o.get(0x11))
"""
    with Connection(unix=True, token_dir=str(unix_fw.token_dir), timeout=30) as board:
        value = board.run(device.script(body))
    assert value == [secrets["loose d"]]
    assert leaks(bytes(received), secrets["loose d"])
    assert leaks(repr(value).encode(), secrets["loose d"])
    assert not leaks(bytes(received), secrets["ec d"])


def test_the_attribute_lists_of_show_and_list_hold_no_secret_attribute():
    for cls, attrs in device.SHOW_ATTRIBUTES.items():
        assert not set(attrs) & set(device.SECRET_ATTRIBUTES) or cls in (0, 1), (cls, attrs)
    # CKA_VALUE (0x11) is read for certificates and data objects only
    assert 0x11 not in device.SHOW_ATTRIBUTES[2] + device.SHOW_ATTRIBUTES[3]
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands == {"info", "list", "show", "import-key", "import-cert", "import-ca", "generate-key",
                        "csr", "destroy", "set-pin", "init-token", "config", "init-pin", "unlock", "check",
                        "lock", "load-claim",
                        # p11bridge's: the board's loop refuses secret attributes itself
                        # (host_tests/bridge/test_bridge_unix.py)
                        "serve", "install-module"}

