# p11csr: PKCS#10 certificate signing requests built on the device and signed
# inside the token (C_Sign), for a key that never leaves it.
#
#   import p11csr
#   der = p11csr.make_csr(session, key_handle, "CN=my-thing")
#   print(p11csr.pem(der))          # ready for `aws iot create-certificate-from-csr`
#
# EC P-256 keys are signed with CKM_ECDSA_SHA256 (ecdsa-with-SHA256), RSA keys
# with CKM_SHA256_RSA_PKCS (sha256WithRSAEncryption). The public key comes from
# `pub` if given, else from the private key (CKA_EC_POINT, which this token
# adds, or CKA_PUBLIC_KEY_INFO), else from the public key object with the same
# CKA_ID (or labelled "Device Pub TLS Key").

from micropython import const
import pkcs11
from pkcs11.pure import asn1

PUB_LABEL = "Device Pub TLS Key"

_CKA_CLASS = const(0x0)
_CKA_LABEL = const(0x3)
_CKA_KEY_TYPE = const(0x100)
_CKA_ID = const(0x102)
_CKA_MODULUS = const(0x120)
_CKA_PUBLIC_EXPONENT = const(0x122)
_CKA_PUBLIC_KEY_INFO = const(0x129)
_CKA_EC_POINT = const(0x181)
_CKO_PUBLIC_KEY = const(2)
_CKK_RSA = const(0)
_CKK_EC = const(3)
_CKM_SHA256_RSA_PKCS = const(0x40)
_CKM_ECDSA_SHA256 = const(0x1044)

# DER (tag included) of the algorithm identifiers used here.
_EC_KEY_ALG = b"\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"
_RSA_KEY_ALG = b"\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"
_ECDSA_SHA256 = b"\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02"
_SHA256_RSA = b"\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b\x05\x00"


def parse_subject(subject):
    """'CN=thing,O=Org' (or [('CN', 'thing'), ...]) -> [(attr, value), ...]."""
    if not isinstance(subject, str):
        return list(subject)
    rdns = []
    for part in subject.split(","):
        k, sep, v = part.partition("=")
        if not sep or not k.strip() or not v.strip():
            raise ValueError("subject must look like 'CN=name,O=org': %r" % (subject,))
        rdns.append((k.strip(), v.strip()))
    return rdns


def _attr(p11, h, obj, attr):
    try:
        v = p11.C_GetAttributeValue(h, obj, [attr])[0]
    except pkcs11.PKCS11Error:
        return None
    return v or None


def _ec_point(p11, h, key, pub):
    if pub is None:
        # This token also exposes CKA_EC_POINT on EC private keys (an extension).
        q = _attr(p11, h, key, _CKA_EC_POINT)
        if q:
            return _point(q), None
        info = _attr(p11, h, key, _CKA_PUBLIC_KEY_INFO)
        if info:
            return None, info
        kid = _attr(p11, h, key, _CKA_ID)
        tmpl = [(_CKA_CLASS, _CKO_PUBLIC_KEY)]
        tmpl.append((_CKA_ID, kid) if kid else (_CKA_LABEL, PUB_LABEL.encode()))
        p11.C_FindObjectsInit(h, tmpl)
        try:
            found = p11.C_FindObjects(h, 2)
        finally:
            p11.C_FindObjectsFinal(h)
        if len(found) != 1:
            raise ValueError("cannot find the key's public half: pass pub=<public key handle>")
        pub = found[0]
    return _point(p11.C_GetAttributeValue(h, pub, [_CKA_EC_POINT])[0]), None


def _point(q):
    # CKA_EC_POINT is the DER OCTET STRING around the point (04 41 04 X Y).
    if len(q) == 67 and q[0] == 0x04 and q[1] == 65:
        q = q[2:]
    if len(q) != 65 or q[0] != 0x04:
        raise ValueError("not an uncompressed P-256 point")
    return q


def _handle(obj):
    # an object handle, or a pkcs11 key object (.handle)
    return obj if isinstance(obj, int) else obj.handle


def make_csr(session, key, subject, pub=None):
    """DER PKCS#10 request for the token key `key` with the given subject,
    signed by the token. session: a session handle or pkcs11.Session; key and
    pub: object handles or pkcs11 key objects."""
    p11 = pkcs11.C_GetFunctionList()
    h = session if isinstance(session, int) else session.h
    key = _handle(key)
    if pub is not None:
        pub = _handle(pub)
    name = asn1.name(parse_subject(subject))
    ktype = p11.C_GetAttributeValue(h, key, [_CKA_KEY_TYPE])[0]
    if ktype == _CKK_EC:
        q, spki = _ec_point(p11, h, key, pub)
        if spki is None:
            spki = asn1.seq(_EC_KEY_ALG, asn1.bit_string(q))
        mech, alg = _CKM_ECDSA_SHA256, _ECDSA_SHA256
    elif ktype == _CKK_RSA:
        n, e = p11.C_GetAttributeValue(h, key, [_CKA_MODULUS, _CKA_PUBLIC_EXPONENT])
        spki = asn1.seq(_RSA_KEY_ALG, asn1.bit_string(asn1.seq(asn1.integer(n), asn1.integer(e))))
        mech, alg = _CKM_SHA256_RSA_PKCS, _SHA256_RSA
    else:
        raise ValueError("only EC P-256 and RSA keys can make a CSR")
    # CertificationRequestInfo: version 0, subject, key, no attributes ([0] empty).
    info = asn1.seq(asn1.integer(0), name, spki, b"\xa0\x00")
    p11.C_SignInit(h, mech, key)
    sig = p11.C_Sign(h, info)
    if ktype == _CKK_EC:
        sig = asn1.ecdsa_raw_to_der(sig)
    return asn1.seq(info, alg, asn1.bit_string(sig))


def pem(der):
    """PEM text ('-----BEGIN CERTIFICATE REQUEST-----' ...) of a DER request."""
    return asn1.pem_encode(der, "CERTIFICATE REQUEST")
