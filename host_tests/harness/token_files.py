"""Token test helpers: keys and certificates made by openssl (the seed's
commands), host-side signature checks with `cryptography`, and the MicroPython
prelude the token tests run on the firmware."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from .device_json import last_json, snippet  # noqa: F401  (re-exported for the token tests)

P11_PRELUDE = snippet("p11_prelude")

# The seed's TLS client authentication calls, in its order (FreeRTOS PKCS#11
# user guide, "Client Authentication").
SEED_CLIENT_ORDER = [
    "C_Initialize", "C_GetSlotList", "C_OpenSession",
    "C_FindObjectsInit", "C_FindObjects", "C_FindObjectsFinal", "C_GetAttributeValue",
    "C_FindObjectsInit", "C_FindObjects", "C_FindObjectsFinal", "C_GetAttributeValue",
    "C_GenerateRandom", "C_SignInit", "C_Sign", "C_CloseSession", "C_Finalize",
]



def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass
class TokenKeys:
    """PEM files in `dir`: keys in the forms the seed's openssl commands make,
    certificates for the EC and RSA device keys issued by a local test CA."""

    dir: Path
    ec_sec1: Path      # openssl ecparam -name prime256v1 -genkey (EC PARAMETERS + EC PRIVATE KEY)
    ec_pkcs8: Path     # openssl genpkey -algorithm EC ... (the seed's step 2)
    rsa_pkcs8: Path    # openssl genrsa 2048 (OpenSSL 3 writes PKCS#8)
    rsa_pkcs1: Path    # openssl genrsa -traditional 2048 (RSA PRIVATE KEY)
    ec_cert: Path      # certificate for ec_sec1
    rsa_cert: Path     # certificate for rsa_pkcs8
    ca_cert: Path

    def copy_to(self, dest: Path) -> None:
        for p in self.dir.glob("*.pem"):
            shutil.copy(p, dest / p.name)

    def private(self, path: Path):
        return serialization.load_pem_private_key(path.read_bytes(), None)


def make_token_keys(d: Path) -> TokenKeys:
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", "ec_sec1.pem", cwd=d)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-pkeyopt", "ec_param_enc:named_curve", "-outform", "PEM", "-out", "ec_pkcs8.pem", cwd=d)
    openssl("genrsa", "-out", "rsa_pkcs8.pem", "2048", cwd=d)
    openssl("genrsa", "-traditional", "-out", "rsa_pkcs1.pem", "2048", cwd=d)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca_key.pem", cwd=d)
    openssl("req", "-new", "-x509", "-key", "ca_key.pem", "-subj", "/CN=Token Test CA", "-days", "30",
            "-out", "ca_cert.pem", cwd=d)
    for key, name in (("ec_sec1.pem", "ec"), ("rsa_pkcs8.pem", "rsa")):
        openssl("req", "-new", "-key", key, "-subj", f"/CN=device-{name}/O=Token Tests",
                "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca_cert.pem", "-CAkey", "ca_key.pem",
                "-set_serial", "0x1234567890abcdef01" if name == "ec" else "77", "-days", "30",
                "-out", f"{name}_cert.pem", cwd=d)
    (d / "ca_key.pem").rename(d / "ca_key.secret")   # not copied to the firmware's folder
    return TokenKeys(d, d / "ec_sec1.pem", d / "ec_pkcs8.pem", d / "rsa_pkcs8.pem",
                     d / "rsa_pkcs1.pem", d / "ec_cert.pem", d / "rsa_cert.pem", d / "ca_cert.pem")


@pytest.fixture(scope="session")
def token_keys(tmp_path_factory: pytest.TempPathFactory) -> TokenKeys:
    """openssl-made keys and certificates (made once per test session)."""
    return make_token_keys(tmp_path_factory.mktemp("token-keys"))



def cert_public_key(pem: Path):
    return x509.load_pem_x509_certificate(pem.read_bytes()).public_key()


def verify_ecdsa_raw(pub: ec.EllipticCurvePublicKey, sig: bytes, digest: bytes,
                     algo: hashes.HashAlgorithm = hashes.SHA256()) -> None:
    """Raises InvalidSignature unless sig (r||s, 64 bytes) signs digest."""
    assert len(sig) == 64
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, digest, ec.ECDSA(utils.Prehashed(algo)))


def verify_rsa_pkcs1_prehashed(pub: rsa.RSAPublicKey, sig: bytes, digest: bytes,
                               algo: hashes.HashAlgorithm = hashes.SHA256()) -> None:
    pub.verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(algo))


def secret_patterns(key_path: Path) -> list[bytes]:
    """Byte strings that must never appear in the firmware's output: the
    private values of the key, raw and as hex (both cases)."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    nums = key.private_numbers()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ints = [nums.private_value]
        size = 32
    else:
        ints = [nums.d, nums.p, nums.q, nums.dmp1, nums.dmq1, nums.iqmp]
        size = 0
    out: list[bytes] = []
    for v in ints:
        raw = v.to_bytes(size or (v.bit_length() + 7) // 8, "big")
        out += [raw[:16], raw.hex()[:24].encode(), raw.hex()[:24].upper().encode()]
    return out
