"""A local certificate authority: `make demo`'s stand-in for AWS IoT's CA (bench and tests use it too).

`LocalCA` makes a root CA, server certificates (for 127.0.0.1 / "localhost", or any
other name), client keys with certificates (EC P-256 or RSA-2048, for importing into
the token), and signs PKCS#10 requests the way `aws iot create-certificate-from-csr`
does: the request's signature is checked, the certificate carries the request's
public key and is issued by the CA. Everything is written to files as PEM, because
openssl and mosquitto read files.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class Issued:
    """A certificate (and, when made here, its private key) with their PEM files."""

    cert: x509.Certificate
    cert_path: Path
    key: PrivateKey | None = None
    key_path: Path | None = None

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        assert self.key is not None
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption())


def new_key(key_type: str = "ec") -> PrivateKey:
    """An EC P-256 ("ec") or RSA-2048 ("rsa") private key."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class LocalCA:
    """A root CA kept in `directory` (root.pem, root.key and everything it issues)."""

    def __init__(self, directory: Path, name: str = "Local Test Root CA") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = new_key("ec")
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.root = Issued(self.cert, self._write("root.pem", self.cert.public_bytes(
            serialization.Encoding.PEM)))
        self._count = 0

    @property
    def root_pem(self) -> bytes:
        return self.root.cert_pem

    @property
    def root_der(self) -> bytes:
        return self.root.cert_der

    @property
    def root_path(self) -> Path:
        return self.root.cert_path

    def _write(self, filename: str, data: bytes) -> Path:
        path = self.dir / filename
        path.write_bytes(data)
        return path

    def _issue(self, subject: x509.Name, public_key, *, server_names: tuple[str, ...] = (),
               client: bool = False, days: int = 365) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        if server_names:
            sans: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        if client:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def _stem(self, label: str) -> str:
        self._count += 1
        return f"{self._count:02d}-" + "".join(c if c.isalnum() else "_" for c in label)

    def issue_server(self, names: tuple[str, ...] = ("localhost", "127.0.0.1"),
                     key_type: str = "ec") -> Issued:
        """A server certificate whose subject CN is names[0] and SANs are all the names."""
        key = new_key(key_type)
        cert = self._issue(_name(names[0]), key.public_key(), server_names=names)
        stem = self._stem("server-" + names[0])
        issued = Issued(cert, self._write(stem + ".pem", cert.public_bytes(serialization.Encoding.PEM)),
                        key)
        issued.key_path = self._write(stem + ".key", issued.key_pem)
        return issued

    def issue_client(self, cn: str, key_type: str = "ec") -> Issued:
        """A client key made on the host (for importing into a token) and its certificate."""
        key = new_key(key_type)
        return self.certify(key, cn)

    def certify(self, key: PrivateKey, cn: str) -> Issued:
        """A client certificate for an existing key (e.g. to pair it with a wrong key)."""
        cert = self._issue(_name(cn), key.public_key(), client=True)
        stem = self._stem("client-" + cn)
        issued = Issued(cert, self._write(stem + ".pem", cert.public_bytes(serialization.Encoding.PEM)),
                        key)
        issued.key_path = self._write(stem + ".key", issued.key_pem)
        return issued

    def sign_csr(self, csr_data: bytes, days: int = 365) -> Issued:
        """Signs a PKCS#10 request (PEM or DER) like `aws iot create-certificate-from-csr`."""
        if csr_data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(csr_data)
        else:
            csr = x509.load_der_x509_csr(csr_data)
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        cert = self._issue(csr.subject, csr.public_key(), client=True, days=days)
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        stem = self._stem("csr-" + (str(cn[0].value) if cn else "device"))
        return Issued(cert, self._write(stem + ".pem", cert.public_bytes(serialization.Encoding.PEM)))
