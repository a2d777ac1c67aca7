"""The C signing hook (_p11tls) on the unix firmware, against `openssl s_server`.

These tests drive the hook directly with signers written in the test (backed by the
pure-Python crypto and a host-made key), to pin down what mbedTLS hands the token:
the digest of the negotiated suite's hash, a DigestInfo for RSA, failures kept per
ticket, and ordinary keys left alone. Connections through the real token are in
test_tls_token.py.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from harness.pki import LocalCA
from harness.unix import FirmwareError, UnixFirmware

SHA256_SUITE = "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"
SHA384_SUITE = "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"

# Device-side helpers: a context with the given key, one request/response over -rev.
PRELUDE = """
import socket, tls, gc, _p11tls, p11tls
from pkcs11.pure import keys, p256, rsa

def load(name):
    with open(name, "rb") as f:
        return f.read()

def context(key_der, cipher=None, cert="client.der"):
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    ctx.load_verify_locations(load("root.der"))
    ctx.load_cert_chain(load(cert), key_der)
    if cipher:
        ctx.set_ciphers([cipher])
    return ctx

def talk(ctx, port, line=b"hello token\\n"):
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    try:
        ss = ctx.wrap_socket(s, server_hostname="localhost")
    except Exception:
        s.close()
        raise
    ss.write(line)
    got = ss.read(len(line))
    ss.close()
    return got

def real_signer(kind, record):
    k = keys.parse_private_key(load("client.key"))
    if kind == "ec":
        def sign(h):
            record.append(h)
            return p256.sign(k["d"], h)
    else:
        key = tuple(k[x] for x in ("n", "e", "d", "p", "q", "dp", "dq", "qinv"))
        def sign(info):
            record.append(info)
            return rsa.sign_pkcs1(key, info)
    return sign, k

def reference(kind, ticket, k):
    if kind == "ec":
        return p11tls.reference_key(ticket)
    return p11tls.reference_key(ticket, k["n"], k["e"])
"""


def setup_files(fw: UnixFirmware, ca: LocalCA, key_type: str = "ec") -> None:
    client = ca.issue_client(f"hook-{key_type}", key_type)
    (fw.work_dir / "root.der").write_bytes(ca.root_der)
    (fw.work_dir / "client.der").write_bytes(client.cert_der)
    (fw.work_dir / "client.key").write_bytes(client.key_pem)
    assert client.key is not None
    (fw.work_dir / "client.keyder").write_bytes(client.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))


@pytest.fixture
def server(openssl_server, local_ca: LocalCA):
    # TLS 1.2: the hook's own error codes reach the caller there; TLS 1.3 reports
    # any signing failure as its handshake failure (see test_..._under_tls13 below).
    cert = local_ca.issue_server()
    return openssl_server(cert.cert_path, cert.key_path, local_ca.root_path, extra=("-tls1_2",))


@pytest.fixture
def server13(openssl_server, local_ca: LocalCA):
    cert = local_ca.issue_server()
    return openssl_server(cert.cert_path, cert.key_path, local_ca.root_path, extra=("-tls1_3",))


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
@pytest.mark.parametrize("suite,hash_name,digest_len", [
    (SHA256_SUITE, "SHA256", 32), (SHA384_SUITE, "SHA384", 48), (SHA256_SUITE, "SHA512", 64)])
def test_hook_signs_the_digest_it_is_given(unix_fw, local_ca, openssl_server, key_type, suite,
                                           hash_name, digest_len):
    # The server allows one hash; mbedTLS (tls-cv-hash.patch) signs with it, whatever the suite.
    cert = local_ca.issue_server()
    server = openssl_server(cert.cert_path, cert.key_path, local_ca.root_path,
                            sigalgs=("ECDSA+" if key_type == "ec" else "RSA+") + hash_name)
    setup_files(unix_fw, local_ca, key_type)
    out = unix_fw.run(PRELUDE + f"""
record = []
sign, k = real_signer({key_type!r}, record)
t = _p11tls.register(sign)
print(talk(context(reference({key_type!r}, t, k), {suite!r}), {server.port}))
print("inputs", [len(x) for x in record])
print("input", record[0].hex())
_p11tls.unregister(t)
""")
    assert "b'nekot olleh\\n'" in out
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith("input"))
    data = bytes.fromhex(lines["input"])
    if key_type == "ec":
        assert lines["inputs"] == f"[{digest_len}]"
    else:
        # The token gets the DER DigestInfo of the suite's hash (not a hard-coded SHA-256).
        oid_last = {"SHA256": 1, "SHA384": 2, "SHA512": 3}[hash_name]
        prefix = bytes([0x30, 17 + digest_len, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                        0x65, 0x03, 0x04, 0x02, oid_last, 0x05, 0x00, 0x04, digest_len])
        assert lines["inputs"] == f"[{19 + digest_len}]"
        assert data.startswith(prefix)
    assert server.wait_for("Verification: OK")
    assert f"Hash used: {hash_name}" in server.output
    assert f"Peer certificate: CN = hook-{key_type}" in server.output
    assert ("Signature type: ECDSA" if key_type == "ec" else "Signature type: RSA") in server.output


def test_ordinary_key_is_signed_by_mbedtls(unix_fw, local_ca, server):
    """A key without the magic goes to the real mbedTLS signer (the wrap passes it on)."""
    setup_files(unix_fw, local_ca, "ec")
    out = unix_fw.run(PRELUDE + f"""
print(talk(context(load("client.keyder")), {server.port}))
""")
    assert "b'nekot olleh\\n'" in out
    assert server.wait_for("Verification: OK")


def test_unknown_ticket_is_refused_without_signing(unix_fw, local_ca, server):
    """A reference key whose signer is gone fails the handshake; the dummy is never used."""
    setup_files(unix_fw, local_ca, "ec")
    out = unix_fw.run(PRELUDE + f"""
def never(h):
    raise AssertionError("called")
t = _p11tls.register(never)
ctx = context(p11tls.reference_key(t))
_p11tls.unregister(t)
try:
    talk(ctx, {server.port})
except OSError as e:
    print("code", e.args[0], e.args[0] == _p11tls.ERR_UNKNOWN_TICKET)
print("last", _p11tls.last_error(t))
""")
    assert "code -15616 True" in out
    assert "last None" in out
    # The server got no CertificateVerify it could accept.
    server.wait_for("ERROR", timeout=3)
    assert "Verification: OK" not in server.output


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_signer_failure_fails_handshake_and_is_kept(unix_fw, local_ca, server, key_type):
    """An exception in the signer never unwinds through mbedTLS: the handshake fails with
    an mbedTLS code, the exception is kept for its ticket, and the interpreter carries on
    (the next connection in the same process works)."""
    setup_files(unix_fw, local_ca, key_type)
    out = unix_fw.run(PRELUDE + f"""
class TokenSaysNo(Exception):
    pass
def refuse(data):
    raise TokenSaysNo("CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)")
record = []
sign, k = real_signer({key_type!r}, record)
bad = _p11tls.register(refuse)
try:
    talk(context(reference({key_type!r}, bad, k)), {server.port})
    print("connected?!")
except OSError as e:
    want = _p11tls.ERR_EC_SIGNER if {key_type!r} == "ec" else _p11tls.ERR_RSA_SIGNER
    print("code-ok", e.args[0] == want)
err = _p11tls.last_error(bad)
print("kept", type(err).__name__, err)
_p11tls.unregister(bad)
print("after-unregister", _p11tls.last_error(bad))
good = _p11tls.register(sign)
print(talk(context(reference({key_type!r}, good, k)), {server.port}))
""")
    assert "connected?!" not in out
    assert "code-ok True" in out
    assert "kept TokenSaysNo CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)" in out
    assert "after-unregister None" in out
    assert "b'nekot olleh\\n'" in out
    assert server.wait_for("Verification: OK")


def test_signer_result_of_wrong_size_is_an_error(unix_fw, local_ca, server):
    setup_files(unix_fw, local_ca, "ec")
    out = unix_fw.run(PRELUDE + f"""
t = _p11tls.register(lambda h: b"short")
try:
    talk(context(p11tls.reference_key(t)), {server.port})
except OSError as e:
    print("failed", e.args[0] == _p11tls.ERR_EC_SIGNER)
e = _p11tls.last_error(t)
print(type(e).__name__, e)
""")
    assert "failed True" in out
    assert "ValueError TLS signer returned 5 bytes, expected 64" in out


def test_registry_keeps_the_signer_alive(unix_fw, local_ca, server):
    """Only the registry references the signer closure; a GC before the handshake
    must not free it."""
    setup_files(unix_fw, local_ca, "ec")
    out = unix_fw.run(PRELUDE + f"""
def make():
    record = []
    sign, k = real_signer("ec", record)
    return _p11tls.register(lambda h: sign(bytes(h)))
t = make()
ctx = context(p11tls.reference_key(t))
junk = [bytearray(64) for _ in range(2000)]
junk = None
gc.collect()
print(talk(ctx, {server.port}))
""")
    assert "b'nekot olleh\\n'" in out


def test_register_needs_a_callable(unix_fw):
    with pytest.raises(FirmwareError, match="TypeError: signer must be callable"):
        unix_fw.run("import _p11tls\n_p11tls.register(b'not callable')\n")


def test_registry_lives_in_sys_modules_only_while_needed(unix_fw, local_ca, server):
    setup_files(unix_fw, local_ca, "ec")
    out = unix_fw.run(PRELUDE + f"""
import sys
record = []
sign, k = real_signer("ec", record)
print("before", "_p11tls_signers" in sys.modules)
a = _p11tls.register(sign)
b = _p11tls.register(sign)
print("tickets", len(a), a != b, "_p11tls_signers" in sys.modules)
print(talk(context(p11tls.reference_key(b)), {server.port}))
_p11tls.unregister(a)
print("one left", "_p11tls_signers" in sys.modules)
_p11tls.unregister(b)
_p11tls.unregister(b)
print("after", "_p11tls_signers" in sys.modules)
""")
    assert "before False" in out
    assert "tickets 16 True True" in out
    assert "b'nekot olleh\\n'" in out
    assert "one left True" in out
    assert "after False" in out


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_unknown_ticket_and_signer_failure_under_tls13(unix_fw, local_ca, server13, key_type):
    """The TLS 1.3 CertificateVerify (mbedtls_pk_sign_ext, RSA-PSS for RSA keys) goes
    through the same hook: a reference key whose signer is gone fails the handshake
    without signing with the dummy, and a signer's exception is kept for its ticket."""
    setup_files(unix_fw, local_ca, key_type)
    out = unix_fw.run(PRELUDE + f"""
class TokenSaysNo(Exception):
    pass
def refuse(*data):   # RSA-PSS signers also get the salt length
    raise TokenSaysNo("CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)")
record = []
sign, k = real_signer({key_type!r}, record)
gone = _p11tls.register(refuse)
ctx = context(reference({key_type!r}, gone, k))
_p11tls.unregister(gone)
try:
    talk(ctx, {server13.port})
    print("connected?!")
except OSError as e:
    print("gone fails", type(e).__name__)
bad = _p11tls.register(refuse)
try:
    talk(context(reference({key_type!r}, bad, k)), {server13.port})
    print("connected?!")
except OSError as e:
    print("refused fails", type(e).__name__)
err = _p11tls.last_error(bad)
print("kept", type(err).__name__, err)
""")
    assert "connected?!" not in out
    assert "gone fails OSError" in out and "refused fails OSError" in out
    assert "kept TokenSaysNo CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)" in out
    assert "Verification: OK" not in server13.output
