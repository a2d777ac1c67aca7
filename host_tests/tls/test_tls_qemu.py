"""TLS client authentication through the token on the emulated Cortex-M3 (qemu MPS2-AN385).

The board has no network, so the server runs on the board too: an mbedTLS server context
that requires a client certificate and verifies the CertificateVerify signature, joined
to p11tls's client by an in-memory stream (the client's reads drive the server). This
exercises the C hook as linked for a microcontroller (arm-none-eabi, --wrap), with the
token's key generated on the board, a CSR built there, and the certificate from the host CA.
"""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

pytestmark = pytest.mark.qemu

# Until the token's default root on a board stops being "/pkcs11", a directory of that
# name in the current directory (first on sys.path) would be imported instead of the
# frozen `pkcs11` package: look in .frozen first.
PATH_FIX = "import sys\nsys.path.remove('')\nsys.path.append('')\n"

KEYGEN = PATH_FIX + """
import pkcs11, p11csr, binascii
with pkcs11.open_session(rw=True) as s:
    pub, key = s.generate_keypair()
    print("csr", binascii.hexlify(p11csr.make_csr(s, key, "CN=qemu-device")).decode())
"""

STORE = PATH_FIX + """
import pkcs11
from pkcs11.constants import *
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], CKF_SERIAL_SESSION | CKF_RW_SESSION)
for label, name in ((b"Device Cert", "device.der"), (b"Root Cert", "root.der"),
                    (b"Other Cert", "other.der")):
    with open(name, "rb") as f:
        p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                               (CKA_TOKEN, True), (CKA_LABEL, label), (CKA_VALUE, f.read()),
                               (CKA_TRUSTED, label == b"Root Cert")])
p11.C_Finalize()
print("stored")
"""

LOOPBACK = PATH_FIX + """
import io, gc, time, tls, p11tls


def load(name):
    with open(name, "rb") as f:
        return f.read()


class End(io.IOBase):
    # One end of an in-memory non-blocking stream; reading an empty inbox runs `pump`.
    def __init__(self, inbox, outbox, pump=None):
        self.inbox = inbox
        self.outbox = outbox
        self.pump = pump
        self.eof = False

    def readinto(self, buf):
        if not self.inbox[0] and self.pump is not None:
            self.pump()
        data = self.inbox[0]
        if not data:
            return 0 if self.eof else None
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        self.inbox[0] = data[n:]
        return n

    def write(self, b):
        self.outbox[0] += bytes(b)
        return len(b)

    def ioctl(self, req, arg):
        return 0

    def close(self):
        pass


class Server:
    # mbedTLS server: client certificate required and verified, echoes data reversed.
    def __init__(self):
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(load("server.der"), load("server.keyder"))
        ctx.verify_mode = tls.CERT_REQUIRED
        ctx.load_verify_locations(load("root.der"))
        c2s = [b""]
        s2c = [b""]
        self.client_end = End(s2c, c2s, self.pump)
        self.ssl = ctx.wrap_socket(End(c2s, s2c), server_side=True, do_handshake_on_connect=False)
        self.error = None

    def pump(self):
        if self.error is not None:
            return
        try:
            data = self.ssl.read(64)
            if data:
                self.ssl.write(bytes(reversed(data)))
        except Exception as e:
            # never raise into the client's handshake: end its stream instead
            self.error = e
            self.client_end.eof = True


gc.collect()
free = gc.mem_free()
t0 = time.ticks_ms()
server = Server()
try:
    c = p11tls.wrap_socket(server.client_end, "localhost", key_label={key_label!r},
                           cert_label={cert_label!r})
    print("handshake ms", time.ticks_diff(time.ticks_ms(), t0))
    c.write(b"olleh")
    print("reply", c.read(5))
    gc.collect()
    print("heap held by both TLS ends", free - gc.mem_free())
except Exception as e:
    print("client error", type(e).__name__, e)
print("server error", server.error)
"""

IMPORT_RSA = PATH_FIX + """
import pkcs11
from pkcs11.constants import *
from pkcs11 import crypto
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], CKF_SERIAL_SESSION | CKF_RW_SESSION)
with open("rsa.key", "rb") as f:
    k = crypto.parse_private_key(f.read())
import os
os.remove("rsa.key")
p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_RSA), (CKA_TOKEN, True),
    (CKA_LABEL, b"RSA Key"), (CKA_SIGN, True), (CKA_MODULUS, k["n"]), (CKA_PUBLIC_EXPONENT, k["e"]),
    (CKA_PRIVATE_EXPONENT, k["d"]), (CKA_PRIME_1, k["p"]), (CKA_PRIME_2, k["q"]),
    (CKA_EXPONENT_1, k["dp"]), (CKA_EXPONENT_2, k["dq"]), (CKA_COEFFICIENT, k["qinv"])])
k = None
with open("rsa.der", "rb") as f:
    p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                           (CKA_TOKEN, True), (CKA_LABEL, b"RSA Cert"), (CKA_VALUE, f.read())])
p11.C_Finalize()
print("imported")
"""


def script(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_mutual_tls_through_the_token_on_the_board(qemu_board, local_ca, tmp_path):
    server = local_ca.issue_server()
    assert server.key is not None
    files = {
        "server.der": server.cert_der,
        "server.keyder": server.key.private_bytes(serialization.Encoding.DER,
                                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                                  serialization.NoEncryption()),
        "root.der": local_ca.root_der,
    }
    # EC: key generated on the board, CSR built and signed there, certificate from the host CA.
    out = qemu_board.run_file(script(tmp_path, "keygen.py", KEYGEN))
    csr_der = bytes.fromhex(out.split("csr ", 1)[1].split()[0])
    assert x509.load_der_x509_csr(csr_der).is_signature_valid
    files["device.der"] = local_ca.sign_csr(csr_der).cert_der
    # RSA-2048: made on the host and imported (the seed's way).
    rsa_id = local_ca.issue_client("qemu-rsa", "rsa")
    files["rsa.key"] = rsa_id.key_pem
    files["rsa.der"] = rsa_id.cert_der
    files["other.der"] = local_ca.issue_client("qemu-other", "rsa").cert_der
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        qemu_board.cp_to(tmp_path / name, name)
    assert "stored" in qemu_board.run_file(script(tmp_path, "store.py", STORE))
    assert "imported" in qemu_board.run_file(script(tmp_path, "import.py", IMPORT_RSA))

    for key_label, cert_label in (("Device Priv TLS Key", "Device Cert"), ("RSA Key", "RSA Cert")):
        out = qemu_board.run_file(script(tmp_path, "loopback.py", LOOPBACK.format(
            key_label=key_label, cert_label=cert_label)), timeout=300)
        assert "reply b'hello'" in out, out
        assert "server error None" in out, out
        print(key_label, [line for line in out.splitlines() if " ms" in line or "heap" in line])
    # Negative control: the board's server really checks the token's signature against the
    # certificate (an RSA certificate for another key is refused).
    out = qemu_board.run_file(script(tmp_path, "loopback.py", LOOPBACK.format(
        key_label="RSA Key", cert_label="Other Cert")), timeout=300)
    assert "client error TLSError" in out, out
    # (VERIFY_FAILED, or PUBLIC_FAILED when the signature is larger than the other modulus)
    assert re.search(r"server error \(-\d+, 'MBEDTLS_ERR_RSA_(VERIFY|PUBLIC)_FAILED", out), out
