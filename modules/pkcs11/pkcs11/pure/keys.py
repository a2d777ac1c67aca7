# Key and certificate parsing (PEM or DER) into the backend contract's dicts.
# Error messages name the problem, never the key bytes.
from .. import der as a
from . import p256

_INT = a.INTEGER
_SEQ = a.SEQUENCE


def _top(der, what):
    # children of the outer SEQUENCE, which must span the whole input
    try:
        s, e = a.expect(der, 0, len(der), _SEQ, what)
    except ValueError:
        raise ValueError("not a DER " + what)
    if e != len(der):
        raise ValueError("trailing data after " + what)
    return a.children(der, s, e)


def _pem_or_der(data, labels, what):
    if not a.is_pem(data):
        if isinstance(data, str):
            raise ValueError("no PEM block found for " + what)
        return bytes(data), None
    for label, der in a.pem_blocks(data):
        if label == "ENCRYPTED PRIVATE KEY" and "PRIVATE KEY" in labels:
            raise ValueError("encrypted private keys are not supported")
        if label in labels:
            return der, label
    raise ValueError("no " + what + " PEM block found")


def _curve(der, t, s, e):
    # t/s/e: an ECParameters element; only the P-256 named curve is accepted
    if t == a.OID:
        v = der[s:e]
        if v == a.OID_P256:
            return
        raise ValueError("unsupported EC curve " + a.oid_str(v))
    raise ValueError("explicit EC parameters are not supported (use a named curve)")


def _ec_private(der, s, e, outer_curve):
    # SEC1 ECPrivateKey in der[s:e] (value of the SEQUENCE)
    c = a.children(der, s, e)
    if len(c) < 2 or c[0][0] != _INT or a.small_int(der, c[0][2], c[0][3]) != 1 \
            or c[1][0] != a.OCTET_STRING:
        raise ValueError("malformed EC private key")
    q = None
    seen_curve = outer_curve
    for t, h, vs, ve in c[2:]:
        if t == 0xA0:
            pt, ps, pe = a.read(der, vs, ve)
            _curve(der, pt, ps, pe)
            seen_curve = True
        elif t == 0xA1:
            bs, be = a.expect(der, vs, ve, a.BIT_STRING, "EC public key BIT STRING")
            if be - bs < 2 or der[bs]:
                raise ValueError("malformed EC public key")
            q = der[bs + 1:be]
    if not seen_curve:
        raise ValueError("EC private key without curve parameters")
    d = der[c[1][2]:c[1][3]]
    if len(d) > 32:
        raise ValueError("EC private key is not a P-256 key")
    d = bytes(32 - len(d)) + d
    p256.scalar(d)  # range check
    derived = p256.public(d)
    if q is not None and p256.encode_point(*p256.decode_point(q)) != derived:
        raise ValueError("EC private key: public point does not match the private scalar")
    return {"type": "ec", "d": d, "q": derived}


_RSA_NAMES = ("n", "e", "d", "p", "q", "dp", "dq", "qinv")


def _rsa_private(der, s, e):
    c = a.children(der, s, e)
    if len(c) != 9 or any(x[0] != _INT for x in c):
        raise ValueError("malformed RSA private key (multi-prime keys are not supported)")
    if a.small_int(der, c[0][2], c[0][3]) != 0:
        raise ValueError("unsupported RSA private key version")
    k = {"type": "rsa"}
    for i in range(8):
        k[_RSA_NAMES[i]] = a.uint(der, c[i + 1][2], c[i + 1][3])
    n = int.from_bytes(k["n"], "big")
    if not n & 1 or int.from_bytes(k["e"], "big") < 3 or \
            int.from_bytes(k["p"], "big") * int.from_bytes(k["q"], "big") != n:
        raise ValueError("inconsistent RSA private key")
    return k


def _alg(der, t, s, e):
    # AlgorithmIdentifier -> (oid bytes, (tag, start, end) of parameters or None)
    if t != _SEQ:
        raise ValueError("malformed AlgorithmIdentifier")
    c = a.children(der, s, e)
    if not c or c[0][0] != a.OID:
        raise ValueError("malformed AlgorithmIdentifier")
    oid = der[c[0][2]:c[0][3]]
    return oid, (c[1][0], c[1][2], c[1][3]) if len(c) > 1 else None


def parse_private_key(data):
    der, label = _pem_or_der(data, ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"),
                             "private key")
    c = _top(der, "private key")
    if len(c) >= 2 and c[0][0] == _SEQ and c[1][0] == a.OCTET_STRING:
        raise ValueError("encrypted private keys are not supported")
    if len(c) < 2 or c[0][0] != _INT:
        raise ValueError("not a private key (PKCS#8, SEC1 or PKCS#1 expected)")
    t1 = c[1][0]
    if t1 == _SEQ:
        # PKCS#8 PrivateKeyInfo / OneAsymmetricKey
        if len(c) < 3 or c[2][0] != a.OCTET_STRING or \
                a.small_int(der, c[0][2], c[0][3]) > 1:
            raise ValueError("malformed PKCS#8 private key")
        oid, params = _alg(der, c[1][0], c[1][2], c[1][3])
        inner = der[c[2][2]:c[2][3]]
        if oid == a.OID_EC_PUBLIC_KEY:
            if params is None:
                raise ValueError("EC private key without curve parameters")
            _curve(der, *params)
            s, e = a.expect(inner, 0, len(inner), _SEQ, "EC private key")
            return _ec_private(inner, s, e, True)
        if oid == a.OID_RSA or oid == a.OID_RSA_PSS:
            s, e = a.expect(inner, 0, len(inner), _SEQ, "RSA private key")
            return _rsa_private(inner, s, e)
        raise ValueError("unsupported private key algorithm " + a.oid_str(oid))
    if t1 == a.OCTET_STRING and label != "RSA PRIVATE KEY":
        return _ec_private(der, c[0][1], len(der), False)
    if t1 == _INT and label != "EC PRIVATE KEY":
        return _rsa_private(der, c[0][1], len(der))
    raise ValueError("not a private key (PKCS#8, SEC1 or PKCS#1 expected)")


def _spki(der, s, e, strict=True):
    # SubjectPublicKeyInfo value in der[s:e]. Not strict: a key of another
    # type or curve gives None instead of an error.
    c = a.children(der, s, e)
    if len(c) != 2 or c[1][0] != a.BIT_STRING:
        raise ValueError("malformed SubjectPublicKeyInfo")
    oid, params = _alg(der, c[0][0], c[0][2], c[0][3])
    bs, be = c[1][2], c[1][3]
    if be - bs < 2 or der[bs]:
        raise ValueError("malformed public key BIT STRING")
    try:
        if oid == a.OID_EC_PUBLIC_KEY:
            if params is None:
                raise ValueError("EC public key without curve parameters")
            _curve(der, *params)
        elif oid != a.OID_RSA and oid != a.OID_RSA_PSS:
            raise ValueError("unsupported public key algorithm " + a.oid_str(oid))
    except ValueError:
        if strict:
            raise
        return None
    if oid == a.OID_EC_PUBLIC_KEY:
        return {"type": "ec", "q": p256.encode_point(*p256.decode_point(der[bs + 1:be]))}
    return _rsa_public(der, bs + 1, be)


def _rsa_public(der, s, e):
    s, e = a.expect(der, s, e, _SEQ, "RSA public key")
    c = a.children(der, s, e)
    if len(c) != 2 or c[0][0] != _INT or c[1][0] != _INT:
        raise ValueError("malformed RSA public key")
    return {"type": "rsa", "n": a.uint(der, c[0][2], c[0][3]),
            "e": a.uint(der, c[1][2], c[1][3])}


def parse_public_key(data):
    der, label = _pem_or_der(data, ("PUBLIC KEY", "RSA PUBLIC KEY"), "public key")
    if label == "RSA PUBLIC KEY":
        return _rsa_public(der, 0, len(der))
    c = _top(der, "public key")
    if not c:
        raise ValueError("malformed SubjectPublicKeyInfo")
    return _spki(der, c[0][1], len(der))


def _time(der, t, s, e):
    v = der[s:e]
    if t == a.UTC_TIME and len(v) == 13:
        v = (b"19" if v[:2] >= b"50" else b"20") + v
    elif t != a.GENERALIZED_TIME or len(v) != 15:
        raise ValueError("unsupported certificate time format")
    if v[14] != 0x5A or any(not 0x30 <= x <= 0x39 for x in v[:14]):
        raise ValueError("malformed certificate time")
    return v.decode()


def parse_certificate(data):
    der, label = _pem_or_der(data, ("CERTIFICATE", "TRUSTED CERTIFICATE"), "certificate")
    c = _top(der, "certificate")
    if len(c) != 3 or c[0][0] != _SEQ:
        raise ValueError("malformed certificate")
    tbs = a.children(der, c[0][2], c[0][3])
    i = 1 if tbs and tbs[0][0] == 0xA0 else 0
    if len(tbs) < i + 6:
        raise ValueError("malformed certificate")
    ser, alg, iss, val, sub, spki = tbs[i:i + 6]
    if ser[0] != _INT or iss[0] != _SEQ or val[0] != _SEQ or sub[0] != _SEQ \
            or spki[0] != _SEQ:
        raise ValueError("malformed certificate")
    v = a.children(der, val[2], val[3])
    if len(v) != 2:
        raise ValueError("malformed certificate validity")
    # a certificate with another key type (e.g. a P-384 root CA) is still
    # parsed; its public_key is None
    pk = _spki(der, spki[2], spki[3], False)
    return {
        "der": der,
        "subject": der[sub[1]:sub[3]],
        "issuer": der[iss[1]:iss[3]],
        "serial": der[ser[1]:ser[3]],
        "not_before": _time(der, v[0][0], v[0][2], v[0][3]),
        "not_after": _time(der, v[1][0], v[1][2], v[1][3]),
        "public_key": pk,
    }
