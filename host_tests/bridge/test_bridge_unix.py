"""The unix firmware's token as a PKCS#11 token of every host program, through
p11-kit-proxy.so and `p11bridge serve` (module file written by
`p11bridge install-module`): OpenSC's pkcs11-tool, OpenSSL's pkcs11 engine,
python-pkcs11, and `openssl s_client` with the engine against mosquitto."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.bridge import BridgeClient, bridge_unix  # noqa: F401 (the fixture)

LABEL = "Device Priv TLS Key"
KEY_URI = "pkcs11:object=Device%20Priv%20TLS%20Key;type=private"

pytestmark = pytest.mark.slow


def keypairgen(c: BridgeClient, label: str = LABEL, key_id: str = "01") -> str:
    return c.tool("--keypairgen", "--key-type", "EC:prime256v1", "--label", label, "--id", key_id)


def public_key_pem(c: BridgeClient, key_id: str = "01") -> Path:
    der = c.home / f"pub-{key_id}.der"
    c.tool("--read-object", "--type", "pubkey", "--id", key_id, "-o", str(der))
    pem = c.home / f"pub-{key_id}.pem"
    subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(der), "-out", str(pem)],
                   check=True, capture_output=True)
    return pem


def test_list_slots_and_mechanisms(bridge_unix: BridgeClient) -> None:
    out = bridge_unix.run("pkcs11-tool", "--module", bridge_unix.proxy, "-L").stdout.decode()
    assert "token label        : MicroPython PKCS#11 token" in out
    assert "token initialized" in out
    mechs = bridge_unix.tool("-M")
    for m in ("ECDSA,", "ECDSA-KEY-PAIR-GEN", "RSA-PKCS,", "SHA256, hw, digest"):
        assert m in mechs


def test_keypairgen_list_objects_and_sign_verified_by_openssl(bridge_unix: BridgeClient) -> None:
    c = bridge_unix
    out = keypairgen(c)
    assert "Private Key Object; EC" in out and "never extractable" in out
    objects = c.tool("-O")
    assert objects.count(f"label:      {LABEL}") == 2
    assert "Public Key Object; EC" in objects and "Private Key Object; EC" in objects

    data = c.home / "data.bin"
    data.write_bytes(b"signed on the board through p11-kit\n")
    digest = c.home / "data.sha256"
    digest.write_bytes(subprocess.run(["openssl", "dgst", "-sha256", "-binary", str(data)],
                                      check=True, capture_output=True).stdout)
    sig = c.home / "sig.der"
    c.tool("--sign", "-m", "ECDSA", "--id", "01", "-i", str(digest), "-o", str(sig),
           "--signature-format", "openssl")
    pem = public_key_pem(c)
    ok = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pem), "-signature", str(sig),
                         str(data)], capture_output=True, text=True)
    assert ok.stdout.strip() == "Verified OK", ok.stderr
    # and a signature over other data does not verify with that key
    data.write_bytes(b"something else\n")
    bad = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pem), "-signature", str(sig),
                          str(data)], capture_output=True, text=True)
    assert bad.returncode != 0


def test_openssl_engine_csr_and_certificate_round_trip(bridge_unix: BridgeClient) -> None:
    """openssl req with the pkcs11 engine: a CSR and a self-signed certificate
    signed by the board's key; the certificate stored on the token with
    pkcs11-tool --write-object comes back intact with --read-object."""
    c = bridge_unix
    keypairgen(c)
    csr = c.home / "board.csr"
    c.run("openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", KEY_URI,
          "-subj", "/CN=board-through-p11-kit", "-out", str(csr))
    verify = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-verify", "-subject"],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and "CN = board-through-p11-kit" in verify.stdout
    csr_pub = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-pubkey"],
                             check=True, capture_output=True).stdout
    assert csr_pub == public_key_pem(c).read_bytes()

    cert_pem = c.home / "board.pem"
    c.run("openssl", "req", "-new", "-x509", "-days", "30", "-engine", "pkcs11", "-keyform", "engine",
          "-key", KEY_URI, "-subj", "/CN=board-self-signed", "-out", str(cert_pem))
    cert_der = c.home / "board.der"
    subprocess.run(["openssl", "x509", "-in", str(cert_pem), "-outform", "DER", "-out", str(cert_der)],
                   check=True)
    # the board's signature on it checks out
    subprocess.run(["openssl", "verify", "-CAfile", str(cert_pem), str(cert_pem)], check=True,
                   capture_output=True)
    c.tool("--write-object", str(cert_der), "--type", "cert", "--label", "Device Cert", "--id", "01")
    back = c.home / "back.der"
    c.tool("--read-object", "--type", "cert", "--label", "Device Cert", "-o", str(back))
    assert back.read_bytes() == cert_der.read_bytes()
    assert "Certificate Object; type = X.509 cert" in c.tool("-O", "--type", "cert")


def test_pkcs11_tool_test_suite(bridge_unix: BridgeClient) -> None:
    """pkcs11-tool --test after --init-token/--init-pin (SO and user PIN set
    through the bridge), with an imported RSA key pair and a generated EC one:
    which of its checks run and pass (the note lists them)."""
    c = bridge_unix
    c.tool("--init-token", "--label", "MicroPython PKCS#11 token", "--so-pin", "12345678")
    c.tool("--init-pin", "--login", "--login-type", "so", "--so-pin", "12345678", "--new-pin", "1234")
    rsa_pem = c.home / "rsa.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(rsa_pem), "2048"], check=True, capture_output=True)
    for kind, args in (("privkey", []), ("pubkey", ["-pubout"])):
        der = c.home / f"rsa-{kind}.der"
        subprocess.run(["openssl", "pkey", "-in", str(rsa_pem), *args, "-outform", "DER", "-out", str(der)],
                       check=True, capture_output=True)
        c.tool("--login", "--pin", "1234", "--write-object", str(der), "--type", kind,
               "--label", "rsa", "--id", "02")
    c.tool("--login", "--pin", "1234", "--keypairgen", "--key-type", "EC:prime256v1",
           "--label", LABEL, "--id", "01")
    out = c.tool("--login", "--pin", "1234", "--test")
    print(out)
    assert "C_SeedRandom() and C_GenerateRandom():" in out
    assert "seems to be OK" in out          # C_GenerateRandom
    assert "all 4 digest functions seem to work" in out
    assert "SHA-1: OK" in out and "SHA256: OK" in out
    sig = out[out.index("Signatures"):out.index("Verify")]
    for m in ("RSA-PKCS: OK", "SHA1-RSA-PKCS: OK", "SHA256-RSA-PKCS: OK"):
        assert m in sig
    ver = out[out.index("Verify"):]
    assert "RSA-PKCS: OK" in ver and "SHA1-RSA-PKCS: OK" in ver
    assert "No errors" in out
    # a wrong PIN is refused through the bridge as the token refuses it
    bad = c.run("pkcs11-tool", "--module", c.proxy, "--token-label", "MicroPython PKCS#11 token",
                "--login", "--pin", "9999", "-O", check=False)
    assert bad.returncode != 0 and b"CKR_PIN_INCORRECT" in bad.stderr + bad.stdout


def test_python_pkcs11_generates_and_signs(bridge_unix: BridgeClient) -> None:
    """python-pkcs11 through the proxy: key generation, ECDSA sign verified on the
    host with cryptography, the private key's value refused."""
    out = bridge_unix.python("""
        import hashlib, pkcs11
        from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
        from pkcs11.util.ec import encode_named_curve_parameters, encode_ec_public_key
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        lib = pkcs11.lib(PROXY)
        token = lib.get_token(token_label=LABEL)
        with token.open(rw=True) as s:
            params = s.create_domain_parameters(KeyType.EC, {
                Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
            pub, priv = params.generate_keypair(store=True, label="py key")
            data = b"python-pkcs11 through p11-kit"
            sig = priv.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
            key = serialization.load_der_public_key(encode_ec_public_key(pub))
            der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                             int.from_bytes(sig[32:], "big"))
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
            print("verified", len(sig))
            print("sensitive", priv[Attribute.SENSITIVE], "extractable", priv[Attribute.EXTRACTABLE])
            try:
                priv[Attribute.VALUE]
                print("value readable")
            except pkcs11.exceptions.AttributeSensitive:
                print("value sensitive")
    """)
    assert "verified 64" in out
    assert "sensitive True extractable False" in out
    assert "value sensitive" in out


def test_private_key_value_never_crosses_the_bridge(bridge_unix: BridgeClient) -> None:
    """Even a key imported as extractable and not sensitive: the bridge keeps
    its CKA_VALUE on the board; a certificate's CKA_VALUE (negative control)
    and the key's public attributes still come through."""
    out = bridge_unix.python("""
        import pkcs11
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11.util.ec import encode_named_curve_parameters

        scalar = bytes(range(1, 33))
        lib = pkcs11.lib(PROXY)
        with lib.get_token(token_label=LABEL).open(rw=True) as s:
            key = s.create_object({
                Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC,
                Attribute.TOKEN: True, Attribute.LABEL: "open key",
                Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1"),
                Attribute.VALUE: scalar, Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True, Attribute.SIGN: True})
            print("extractable", key[Attribute.EXTRACTABLE], "sensitive", key[Attribute.SENSITIVE])
            try:
                v = key[Attribute.VALUE]
                print("VALUE CAME THROUGH", v == scalar)
            except pkcs11.exceptions.AttributeSensitive:
                print("value kept on the board")
            data = s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: False,
                                    Attribute.LABEL: "note", Attribute.VALUE: b"public bytes"})
            print("data value", data[Attribute.VALUE])
    """)
    assert "extractable True sensitive False" in out
    assert "value kept on the board" in out
    assert "VALUE CAME THROUGH" not in out
    assert "data value b'public bytes'" in out


HOLD_SESSION = """
    import sys, pkcs11
    from pkcs11 import Mechanism, ObjectClass
    lib = pkcs11.lib(PROXY)
    with lib.get_token(token_label=LABEL).open() as s:
        key = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="Device Priv TLS Key")
        print("signed", len(key.sign(b"x" * 32, mechanism=Mechanism.ECDSA)), flush=True)
        sys.stdin.readline()
        try:
            print("signed", len(key.sign(b"y" * 32, mechanism=Mechanism.ECDSA)), flush=True)
        except pkcs11.exceptions.PKCS11Error as e:
            print("error", type(e).__name__, flush=True)
"""


def test_board_restart_mid_session_gives_device_removed(bridge_unix: BridgeClient, unix_pty) -> None:
    c = bridge_unix
    keypairgen(c)
    client = c.spawn_python(HOLD_SESSION)
    try:
        client.expect("signed 64")
        unix_pty.stop()                 # the firmware and its pty go away mid-session
        client.send("sign again")
        assert client.expect("error", timeout=30) == "error DeviceRemoved"
        client.wait(30)
    finally:
        client.stop()


def test_two_applications_are_serialized_or_refused(bridge_unix: BridgeClient, unix_pty,
                                                    tmp_path: Path) -> None:
    c = bridge_unix
    keypairgen(c)
    first = c.spawn_python(HOLD_SESSION)
    try:
        first.expect("signed 64")
        # a user whose module file waits 1 s for the board: refused, clearly
        impatient = BridgeClient(tmp_path / "home2", unix_pty.pty, wait=1)
        proc = impatient.run("pkcs11-tool", "--module", impatient.proxy, "-L", check=False)
        assert "MicroPython PKCS#11 token" not in proc.stdout.decode()
        assert "the board is in use by another application" in proc.stderr.decode()
        # the default waits: it runs once the first application is done
        waiting = c.popen("pkcs11-tool", "--module", c.proxy, "-L")
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiting.wait(1.5)       # still waiting for the board
            first.send("done")
            assert first.expect("signed") == "signed 64"
            out, err = waiting.communicate(timeout=60)
            assert waiting.returncode == 0, err
            assert b"MicroPython PKCS#11 token" in out
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
    finally:
        first.stop()


def _mqtt(packet_type: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([packet_type, len(body)]) + body


def _utf8(text: str) -> bytes:
    return len(text).to_bytes(2, "big") + text.encode()


def test_openssl_s_client_with_the_engine_talks_mqtt_to_mosquitto(
        bridge_unix: BridgeClient, mosquitto_factory, local_ca) -> None:
    """A host TLS client authenticates to a broker with the board's key: the CSR is
    signed through the engine, the local CA issues the certificate, and `openssl
    s_client -engine pkcs11` makes the CertificateVerify signature on the board for
    a mosquitto that requires client certificates and takes their CN as the user.
    The MQTT bytes go through s_client: CONNECT -> CONNACK, PUBLISH QoS 1 -> PUBACK."""
    from harness.mosquitto import TLSListener

    c = bridge_unix
    keypairgen(c)
    csr = c.home / "board.csr"
    c.run("openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", KEY_URI,
          "-subj", "/CN=board-over-s-client", "-out", str(csr))
    issued = local_ca.sign_csr(csr.read_bytes())
    server = local_ca.issue_server(("localhost",))
    broker = mosquitto_factory(plain=False, allow_anonymous=False, tls=TLSListener(
        cafile=local_ca.root_path, certfile=server.cert_path, keyfile=server.key_path))
    mqtt = (_mqtt(0x10, _utf8("MQTT") + b"\x04\x02\x00\x3c" + _utf8("s-client"))
            + _mqtt(0x32, _utf8("board/hello") + b"\x00\x01" + b"signed on the board")
            + _mqtt(0xE0, b""))          # DISCONNECT: the broker closes, s_client ends
    proc = c.run("openssl", "s_client", "-engine", "pkcs11", "-keyform", "engine", "-key", KEY_URI,
                 "-cert", str(issued.cert_path), "-CAfile", str(local_ca.root_path),
                 "-verify_return_error", "-servername", "localhost", "-quiet",
                 "-connect", f"127.0.0.1:{broker.tls_port}", input=mqtt)
    assert proc.stdout == b"\x20\x02\x00\x00" + b"\x40\x02\x00\x01", proc.stdout  # CONNACK 0, PUBACK 1
    broker.wait_for_log(r"New client connected from 127\.0\.0\.1:\d+ as s-client .*u'board-over-s-client'")


def test_root_recipe_printed_by_install_module_reaches_the_board(unix_pty, tmp_path: Path) -> None:
    """As root p11-kit reads no ~/.config/pkcs11 (programs running as root skip user
    config): install-module says how root reaches the board instead, and that recipe,
    p11-kit-client.so with P11_KIT_SERVER_ADDRESS, lists the token."""
    import os
    import shlex

    from harness.bridge import P11BRIDGE
    from p11bridge.cli import client_path, remote_address

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "P11_KIT"))}
    env["HOME"] = str(home)
    proc = subprocess.run([str(P11BRIDGE), "install-module", "--device", str(unix_pty.pty)],
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    module = home / ".config" / "pkcs11" / "modules" / "micropython-token.module"
    if os.getuid() == 0:
        recipe = proc.stdout.split("P11_KIT_SERVER_ADDRESS=", 1)[1]
        address = shlex.split(recipe.split(" \\\n", 1)[0])[0]
        client = recipe.split("--module ", 1)[1].split()[0]
        assert address == remote_address(module) and client == client_path()
    else:
        assert "P11_KIT_SERVER_ADDRESS" not in proc.stdout      # a user's module file just works
        address, client = remote_address(module), client_path()
    env["P11_KIT_SERVER_ADDRESS"] = address
    out = subprocess.run(["pkcs11-tool", "--module", str(client), "-L"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "token label        : MicroPython PKCS#11 token" in out.stdout
