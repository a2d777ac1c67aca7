"""pkcs11.pure.backend on the emulated Cortex-M3 board (32-bit, ~137 KB heap): its
signatures verify on the host, and a P-256 signature needs only a few KB of heap."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed, decode_dss_signature, encode_dss_signature)

from harness.qemu import QemuBoard

pytestmark = pytest.mark.qemu


def last_json(out: str):
    return json.loads(out.replace("\r", "").strip().splitlines()[-1])


def test_pure_signatures_on_cortex_m3(qemu_board: QemuBoard) -> None:
    eck = ec.generate_private_key(ec.SECP256R1())
    d = eck.private_numbers().private_value.to_bytes(32, "big")
    digest = hashlib.sha256(b"qemu pure").digest()
    host_sig = decode_dss_signature(eck.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    host_raw = b"".join(x.to_bytes(32, "big") for x in host_sig)
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pn = rk.private_numbers()
    parts = [pn.public_numbers.n, pn.public_numbers.e, pn.d, pn.p, pn.q, pn.dmp1, pn.dmq1, pn.iqmp]
    key = "(" + ", ".join(f"H('{x.to_bytes((x.bit_length() + 7) // 8, 'big').hex()}')"
                          for x in parts) + ")"
    out = qemu_board.exec(f"""
import json, gc
from pkcs11.pure import backend as b
from pkcs11 import der as asn1
H = bytes.fromhex
d = H('{d.hex()}')
q = b.ec_public(d)
dg = H('{digest.hex()}')
key = {key}
print(json.dumps([q.hex(), b.ec_sign(d, dg).hex(), b.ec_verify(q, dg, H('{host_raw.hex()}')),
                  b.ec_verify(q, bytes([dg[0] ^ 1]) + dg[1:], H('{host_raw.hex()}')),
                  b.rsa_sign_pkcs1(key, asn1.digest_info('sha256', dg)).hex(),
                  b.rsa_sign_pss(key, dg, 'sha256', 32).hex()]))
""", timeout=300)
    q, sig, ok, bad, rsa_sig, pss_sig = last_json(out)
    pub = eck.public_key().public_numbers()
    assert q == "04" + pub.x.to_bytes(32, "big").hex() + pub.y.to_bytes(32, "big").hex()
    raw = bytes.fromhex(sig)
    eck.public_key().verify(
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert (ok, bad) == (True, False)
    rk.public_key().verify(bytes.fromhex(rsa_sig), digest, padding.PKCS1v15(),
                           Prehashed(hashes.SHA256()))
    rk.public_key().verify(bytes.fromhex(pss_sig), digest,
                           padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                           Prehashed(hashes.SHA256()))


def test_ec_sign_fits_in_a_few_kb_of_heap(qemu_board: QemuBoard) -> None:
    # Fill the heap with small blocks until only `kb` KB are free, then sign.
    out = qemu_board.exec("""
import gc, json
from pkcs11.pure import backend as b
d = bytes(31) + b'\\x07'
dg = bytes(range(32))
ref = b.ec_sign(d, dg)
def sign_with_free(kb):
    gc.collect()
    ballast = []
    try:
        while gc.mem_free() > kb * 1024 + 512:
            ballast.append(bytearray(480))
    except MemoryError:
        pass
    try:
        return b.ec_sign(d, dg) == ref
    except MemoryError:
        return False
    finally:
        ballast = None
        gc.collect()
print(json.dumps([sign_with_free(10), sign_with_free(1)]))
""", timeout=300)
    with_10kb, with_1kb = last_json(out)
    assert with_10kb is True
    # the squeeze is real: with 1 KB free the same call runs out of memory
    assert with_1kb is False
