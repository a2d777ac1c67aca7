"""Key, certificate and CSR files on the host, checked with `cryptography`
before anything is sent to the board. Messages never contain key material."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import Exit, ToolError

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)

_KEY_LABELS = {"PRIVATE KEY": "PKCS#8", "EC PRIVATE KEY": "SEC1", "RSA PRIVATE KEY": "PKCS#1"}
_NOT_A_KEY = {
    "CERTIFICATE": "a certificate: use import-cert (or import-ca)",
    "CERTIFICATE REQUEST": "a certificate request (CSR), not a key",
    "NEW CERTIFICATE REQUEST": "a certificate request (CSR), not a key",
    "PUBLIC KEY": "a public key only: import-key needs the private key",
    "RSA PUBLIC KEY": "a public key only: import-key needs the private key",
    "ENCRYPTED PRIVATE KEY": "an encrypted key",
}


def _fail(path: Path, why: str) -> ToolError:
    return ToolError(Exit.FILE_FORMAT, f"{path}: {why}")


def read_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except OSError as e:
        raise _fail(path, f"cannot read it ({e.strerror})") from None
    if not data.strip():
        raise _fail(path, "the file is empty")
    return data


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """[(label, whole PEM block)] in file order."""
    return [(m.group(1).decode(), m.group(0)) for m in _PEM.finditer(data)]


def key_id(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    """CKA_ID this tool gives a key pair and its certificate: SHA-1 of the
    uncompressed EC point (65 bytes) or of the RSA modulus (big-endian)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        raw = public_key.public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint)
    else:
        n = public_key.public_numbers().n
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return hashlib.sha1(raw).digest()


def describe_public_key(public_key: object) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC P-256" if public_key.curve.name == "secp256r1" else f"EC {public_key.curve.name}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    return type(public_key).__name__.replace("PublicKey", "").strip("_") or "unknown key type"


def spki_fingerprint(public_key: object) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# -- private keys ------------------------------------------------------------------


@dataclass
class PrivateKeyFile:
    path: Path
    der: bytes          # PKCS#8 DER, what is sent to the board (once)
    kind: str           # "EC P-256" | "RSA-2048"
    form: str           # "PKCS#8" | "SEC1" | "PKCS#1" (+ " DER")
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.public_key)

    def __repr__(self) -> str:  # never the key bytes
        return f"<PrivateKeyFile {self.path} {self.kind} {self.form}>"


def load_private_key(path: Path) -> PrivateKeyFile:
    data = read_file(path)
    blocks = pem_blocks(data)
    if blocks:
        keys = [(label, block) for label, block in blocks if label in _KEY_LABELS]
        if not keys:
            labels = [label for label, _ in blocks]
            for label in labels:
                if label in _NOT_A_KEY:
                    raise _fail(path, f"this is {_NOT_A_KEY[label]}"
                                + ("; decrypt it first: openssl pkey -in KEY -out PLAIN.key"
                                   if label == "ENCRYPTED PRIVATE KEY" else ""))
            raise _fail(path, f"no private key in it (PEM blocks: {', '.join(labels)})")
        if len(keys) > 1:
            raise _fail(path, f"{len(keys)} private keys in one file; give a file with one key")
        label, block = keys[0]
        form = _KEY_LABELS[label]
        if b"Proc-Type: 4,ENCRYPTED" in block:
            raise _fail(path, "the key is encrypted; decrypt it first: openssl pkey -in KEY -out PLAIN.key")
        try:
            key = serialization.load_pem_private_key(block, password=None)
        except TypeError:
            raise _fail(path, "the key is encrypted; decrypt it first: openssl pkey -in KEY -out PLAIN.key") from None
        except (ValueError, UnsupportedAlgorithm):
            raise _fail(path, f"the {label} block is not a valid {form} key") from None
    else:
        if data.lstrip()[:1] != b"\x30":
            raise _fail(path, "not a key: neither PEM (-----BEGIN ...) nor DER")
        try:
            key = serialization.load_der_private_key(data, password=None)
        except TypeError:
            raise _fail(path, "the key is encrypted; decrypt it first: openssl pkey -in KEY -out PLAIN.key") from None
        except (ValueError, UnsupportedAlgorithm):
            raise _fail(path, "not a private key in a DER form this tool reads (PKCS#8, SEC1, PKCS#1)") from None
        form = "DER"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name != "secp256r1":
            raise _fail(path, f"EC key on curve {key.curve.name}: the token takes P-256 (prime256v1) only")
        kind = "EC P-256"
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size != 2048:
            raise _fail(path, f"RSA-{key.key_size} key: the token takes RSA-2048 only")
        kind = "RSA-2048"
    else:
        raise _fail(path, f"{type(key).__name__.replace('PrivateKey', '').strip('_')} key: "
                    "the token takes EC P-256 and RSA-2048 keys only")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return PrivateKeyFile(path, der, kind, form, key.public_key())


# -- certificates --------------------------------------------------------------------


@dataclass
class CertificateFile:
    path: Path
    cert: x509.Certificate
    count: int          # certificates in the file (the first is the device's or the CA's)
    rest: tuple = ()    # the others, in file order (DER): a device certificate's intermediates

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def load_certificate(path: Path) -> CertificateFile:
    data = read_file(path)
    blocks = pem_blocks(data)
    if blocks:
        certs = [block for label, block in blocks if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE")]
        if not certs:
            labels = [label for label, _ in blocks]
            if any("PRIVATE KEY" in label for label in labels):
                raise _fail(path, "this is a private key: use import-key")
            if any("REQUEST" in label for label in labels):
                raise _fail(path, "this is a certificate request (CSR); AWS IoT turns it into "
                            "a certificate: aws iot create-certificate-from-csr")
            raise _fail(path, f"no certificate in it (PEM blocks: {', '.join(labels)})")
        try:
            cert = x509.load_pem_x509_certificate(certs[0])
            rest = tuple(x509.load_pem_x509_certificate(c).public_bytes(serialization.Encoding.DER)
                         for c in certs[1:])
        except ValueError:
            raise _fail(path, "a CERTIFICATE block is not a valid X.509 certificate") from None
        return CertificateFile(path, cert, len(certs), rest)
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise _fail(path, "not a certificate: neither PEM (-----BEGIN CERTIFICATE-----) nor DER X.509") from None
    return CertificateFile(path, cert, 1)


def certificate_summary(cert: x509.Certificate) -> dict[str, object]:
    """What `show` prints for a certificate (decoded on the host)."""
    pub = cert.public_key()
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        bc = None
    out: dict[str, object] = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "not_after": cert.not_valid_after_utc.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "sha256_fingerprint": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        "public_key": describe_public_key(pub),
        "self_signed": cert.subject == cert.issuer,
        "ca": bc,
    }
    if isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        out["key_id"] = key_id(pub).hex()
    return out


# -- subjects for CSRs ----------------------------------------------------------------

_SUBJECT_ATTRS = {"CN", "C", "L", "ST", "O", "OU", "SERIALNUMBER"}


def check_subject(subject: str) -> str:
    """'CN=thing,O=org' as p11csr.parse_subject reads it; ToolError(USAGE) otherwise."""
    parts = [p for p in subject.split(",")]
    if not subject.strip():
        raise ToolError(Exit.USAGE, "--subject is empty; give e.g. --subject \"CN=my-thing\"")
    if subject.startswith("/"):
        fixed = ",".join(p for p in subject.split("/") if p)
        raise ToolError(Exit.USAGE, f"--subject {subject!r} is openssl's form: write it as "
                        f"--subject {fixed!r}")
    for part in parts:
        k, sep, v = part.partition("=")
        k, v = k.strip(), v.strip()
        if not sep or not k or not v:
            raise ToolError(Exit.USAGE, f"--subject {subject!r}: each part is NAME=value, "
                            "separated by commas (values cannot contain commas)")
        if k.upper() not in _SUBJECT_ATTRS and not re.fullmatch(r"\d+(\.\d+)+", k):
            raise ToolError(Exit.USAGE, f"--subject: unknown attribute {k!r} "
                            f"(use {', '.join(sorted(_SUBJECT_ATTRS))} or a dotted OID)")
        if k.upper() == "C" and not re.fullmatch(r"[A-Za-z]{2}", v):
            raise ToolError(Exit.USAGE, "--subject: C= takes a two-letter country code")
    return subject


def csr_pem(der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"


def parse_hex_id(text: str) -> bytes:
    try:
        return binascii.unhexlify(text.replace(":", "").replace(" ", ""))
    except (binascii.Error, ValueError):
        raise ToolError(Exit.USAGE, f"--id {text!r} is not hex (e.g. --id 01 or --id a1:b2)") from None


def public_key_of(a: dict) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None:
    """The public key in a token key's attributes (CKA_EC_POINT, or CKA_MODULUS and
    CKA_PUBLIC_EXPONENT), None when they are missing or invalid."""
    try:
        if a.get(0x100) == 3 and a.get(0x181):
            q = a[0x181]
            if len(q) == 67 and q[0] == 0x04 and q[1] == 65:
                q = q[2:]
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(q))
        if a.get(0x100) == 0 and a.get(0x120) and a.get(0x122):
            n = int.from_bytes(a[0x120], "big")
            e = int.from_bytes(a[0x122], "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        return None
    return None
