# p11csr: PKCS#10 certificate signing requests built on the device and signed
# inside the token (C_Sign), for a key that never leaves it.
#
#   import p11csr
#   request = p11csr.make_csr(session, key, "CN=my-thing")
#   print(p11csr.pem(request))          # ready for `aws iot create-certificate-from-csr`
#
# EC P-256 keys are signed with CKM_ECDSA_SHA256 (ecdsa-with-SHA256), RSA keys
# with CKM_SHA256_RSA_PKCS (sha256WithRSAEncryption). The public key comes from
# `pub` if given, else from the private key (CKA_EC_POINT, which this token
# adds, or CKA_PUBLIC_KEY_INFO), else from the public key object with the same
# CKA_ID (or labelled "Device Pub TLS Key"). The token is used through its
# Pythonic layer (pkcs11.pythonic); a session handle or object handle is
# wrapped, never closed.

from micropython import const
import pkcs11
from pkcs11 import der, labels
from pkcs11.objects import P256_PARAMS, ec_point_raw
from pkcs11.pythonic import PrivateKey, PublicKey, Session

PUB_LABEL = labels.LABEL_DEVICE_PUBLIC_KEY

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

# DER (tag included) of the algorithm identifiers used here (the EC key's is
# built from der.OID_EC_PUBLIC_KEY and the token's P256_PARAMS).
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


def _attr(obj, attr):
    try:
        v = obj[attr]
    except pkcs11.PKCS11Error:
        return None
    return v or None


def _ec_point(s, key, pub):
    if pub is None:
        # This token also exposes CKA_EC_POINT on EC private keys (an extension).
        q = _attr(key, _CKA_EC_POINT)
        if q:
            return _point(q), None
        info = _attr(key, _CKA_PUBLIC_KEY_INFO)
        if info:
            return None, info
        kid = _attr(key, _CKA_ID)
        try:
            if kid:
                pub = s.get_object(object_class=_CKO_PUBLIC_KEY, id=kid)
            else:
                pub = s.get_object(object_class=_CKO_PUBLIC_KEY, label=PUB_LABEL)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
            raise ValueError("cannot find the key's public half: pass pub=<public key handle>")
    return _point(pub[_CKA_EC_POINT]), None


def _point(q):
    # CKA_EC_POINT is the DER OCTET STRING around the point (04 41 04 X Y).
    q = ec_point_raw(q)
    if q is None:
        raise ValueError("not an uncompressed P-256 point")
    return q


def make_csr(session, key, subject, pub=None):
    """DER PKCS#10 request for the token key `key` with the given subject,
    signed by the token. session: a session handle or pkcs11.Session; key and
    pub: object handles or pkcs11 key objects."""
    if isinstance(session, int):
        session = Session(handle=session)
    if isinstance(key, int):
        key = PrivateKey(session, key)
    if isinstance(pub, int):
        pub = PublicKey(session, pub)
    name = der.name(parse_subject(subject))
    ktype = key.key_type
    if ktype == _CKK_EC:
        q, spki = _ec_point(session, key, pub)
        if spki is None:
            alg = der.seq(der.tlv(der.OID, der.OID_EC_PUBLIC_KEY), P256_PARAMS)
            spki = der.seq(alg, der.bit_string(q))
        mech, alg = _CKM_ECDSA_SHA256, _ECDSA_SHA256
    elif ktype == _CKK_RSA:
        n, e = key.get(_CKA_MODULUS, _CKA_PUBLIC_EXPONENT)
        spki = der.seq(_RSA_KEY_ALG, der.bit_string(der.seq(der.integer(n), der.integer(e))))
        mech, alg = _CKM_SHA256_RSA_PKCS, _SHA256_RSA
    else:
        raise ValueError("only EC P-256 and RSA keys can make a CSR")
    # CertificationRequestInfo: version 0, subject, key, no attributes ([0] empty).
    info = der.seq(der.integer(0), name, spki, b"\xa0\x00")
    sig = key.sign(info, mech)
    if ktype == _CKK_EC:
        sig = der.ecdsa_raw_to_der(sig)
    return der.seq(info, alg, der.bit_string(sig))


def pem(request):
    """PEM text ('-----BEGIN CERTIFICATE REQUEST-----' ...) of a DER request."""
    return der.pem_encode(request, "CERTIFICATE REQUEST")
