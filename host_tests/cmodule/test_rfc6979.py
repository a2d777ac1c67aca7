"""Hedged ECDSA nonces in the C module (issue 10, finding 6): RFC 6979 with
32 bytes of DRBG output as the extra input k' (RFC 6979 section 3.6).

_pkcs11.ec_sign(d, digest, extra) takes k' from the caller (the test hook):
with extra=b"" it must give RFC 6979's own P-256 signatures (appendix A.2.5,
SHA-256); without it every signature gets fresh DRBG bytes."""

from __future__ import annotations

import ast
import hashlib

import pytest

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

# RFC 6979 A.2.5: P-256 key and the SHA-256 signatures of "sample" and "test".
X = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
UX = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
UY = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
VECTORS = {
    b"sample": ("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
                "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"),
    b"test": ("F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
              "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083"),
}

SNIPPET = """
import _pkcs11
d = %r
r = {}
r["pub"] = _pkcs11.ec_public(d)
for m, h in %r:
    r[m] = _pkcs11.ec_sign(d, h, b"")
h = %r
r["hedged"] = [_pkcs11.ec_sign(d, h) for _ in range(3)]
r["fixed"] = [_pkcs11.ec_sign(d, h, b"k" * 32) for _ in range(2)]
r["plain"] = _pkcs11.ec_sign(d, h, b"")
r["short"] = _pkcs11.ec_sign(d, h[:20])
r["long"] = _pkcs11.ec_sign(d, h + h[:16])
print(repr(r))
"""


def _verify(pub: ec.EllipticCurvePublicKey, sig: bytes, digest: bytes) -> None:
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    algo = {20: hashes.SHA1(), 32: hashes.SHA256(), 48: hashes.SHA384()}[len(digest)]
    pub.verify(der, digest, ec.ECDSA(utils.Prehashed(algo)))


def test_rfc6979_vectors_and_hedged_nonces(unix_fw):
    msgs = [(m, hashlib.sha256(m).digest()) for m in VECTORS]
    h = hashlib.sha256(b"hedged").digest()
    r = ast.literal_eval(unix_fw.run(SNIPPET % (X, msgs, h)).strip().splitlines()[-1])
    assert r["pub"].hex().upper() == "04" + UX + UY
    for m, (er, es) in VECTORS.items():
        assert r[m].hex().upper() == er + es, m
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), r["pub"])
    # hedged: valid, and a fresh nonce each time (r differs)
    for sig in r["hedged"]:
        _verify(pub, sig, h)
    assert len({sig[:32] for sig in r["hedged"]}) == 3
    # the extra input is mixed in: fixed k' is deterministic and not plain RFC 6979
    assert r["fixed"][0] == r["fixed"][1]
    _verify(pub, r["fixed"][0], h)
    assert r["fixed"][0][:32] not in {sig[:32] for sig in r["hedged"]} | {r["plain"][:32]}
    # short (SHA-1 length) and long (SHA-384 length) digests
    _verify(pub, r["short"], h[:20])
    _verify(pub, r["long"], h + h[:16])


@pytest.mark.qemu
def test_rfc6979_vectors_on_the_cortex_m_board(qemu_board):
    msgs = [(m, hashlib.sha256(m).digest()) for m in VECTORS]
    code = "import _pkcs11\nfor m, h in %r:\n    print(m, _pkcs11.ec_sign(%r, h, b'').hex())" % (msgs, X)
    out = qemu_board.exec(code)
    for m, (er, es) in VECTORS.items():
        assert f"{m!r} {(er + es).lower()}" in out, out
