"""The seed's sequences on the emulated Cortex-M3 board (qemu MPS2-AN385):
provisioning from openssl-made PEM files copied to the board's littlefs,
a qemu restart, then client authentication; signatures verified on the host.
Also measures the heap the token uses there (reported, not asserted)."""

from __future__ import annotations

import hashlib
import json

import pytest

from harness.qemu import QemuBoard
from harness.token_files import TokenKeys, cert_public_key, last_json, secret_patterns
from harness.token_files import verify_ecdsa_raw, verify_rsa_pkcs1_prehashed
from test_token_seed import CLIENT_AUTH, PROVISION, SEED_CLIENT_ORDER, SHA256_PREFIX

pytestmark = pytest.mark.qemu

HEAP = """
import gc, json
gc.collect(); a = gc.mem_alloc()
import pkcs11
gc.collect(); b = gc.mem_alloc()
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
gc.collect(); c = gc.mem_alloc()
h = p11.C_OpenSession(0, 6)
gc.collect(); d = gc.mem_alloc()
p11.C_FindObjectsInit(h, [(3, b"Device Priv TLS Key")])
k = p11.C_FindObjects(h, 1)[0]
p11.C_FindObjectsFinal(h)
gc.collect(); e = gc.mem_alloc()
p11.C_SignInit(h, MECH, k)
sig = p11.C_Sign(h, DATA)
gc.collect(); f = gc.mem_alloc()
# everything one C_SignInit + C_Sign allocates, garbage included (no collection)
sig = None
gc.collect(); gc.disable(); g = gc.mem_alloc()
p11.C_SignInit(h, MECH, k)
sig = p11.C_Sign(h, DATA)
churn = gc.mem_alloc() - g
gc.enable()
p11.C_CloseSession(h)
p11.C_Finalize()
print(json.dumps({"import pkcs11": b - a, "C_Initialize": c - b, "open session": d - c,
                  "find key": e - d, "one C_Sign": f - e, "C_SignInit+C_Sign allocations": churn,
                  "free after": gc.mem_free()}))
"""


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_seed_sequences_on_the_board(qemu_board: QemuBoard, token_keys: TokenKeys, kind: str,
                                     record_property) -> None:
    key, cert = ((token_keys.ec_sec1, token_keys.ec_cert) if kind == "ec"
                 else (token_keys.rsa_pkcs8, token_keys.rsa_cert))
    qemu_board.cp_to(key, "/device.key")
    qemu_board.cp_to(cert, "/device.crt")
    prov_out = qemu_board.exec('KEY = "/device.key"\nCERT = "/device.crt"\n' + PROVISION
                               + 'import os\nos.remove("/device.key")\n')
    prov = last_json(prov_out)
    assert prov["calls"] == ["C_GetFunctionList", "C_Initialize", "C_CreateObject", "C_CreateObject"]

    qemu_board.restart()        # the objects live on the board's flash image
    message = b"handshake transcript on the board"
    digest = hashlib.sha256(message).digest()
    auth_out = qemu_board.exec(f"DIGEST = {digest!r}\nSHA256_DIGESTINFO = {SHA256_PREFIX!r}\n" + CLIENT_AUTH)
    res = last_json(auth_out)
    assert res["calls"] == SEED_CLIENT_ORDER
    assert res["keys"] == [prov["key"]] and res["certs"] == [prov["cert"]]
    sig = bytes.fromhex(res["sig"])
    if kind == "ec":
        verify_ecdsa_raw(cert_public_key(cert), sig, digest)
    else:
        verify_rsa_pkcs1_prehashed(cert_public_key(cert), sig, digest)
    listing = qemu_board.exec("import os\nprint(os.listdir('/'), os.listdir('/pkcs11-token'))")
    assert "device.key" not in listing and "token.rec" in listing
    for pattern in secret_patterns(key):
        assert pattern.decode("latin-1") not in prov_out + auth_out

    mech, data = (0x1041, digest) if kind == "ec" else (0x1, SHA256_PREFIX + digest)
    heap = last_json(qemu_board.exec(f"MECH = {mech}\nDATA = {data!r}\n" + HEAP))
    record_property("heap", json.dumps(heap))
    print(f"\nqemu heap ({kind}):", json.dumps(heap))
    assert heap["one C_Sign"] >= 0 and heap["free after"] > 0
