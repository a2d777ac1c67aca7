"""Attribute rules: which attributes each object kind has, their types,
defaults, sensitivity and modifiability; template checks; visibility; key
usage (which key may sign or verify with which mechanism's key type).

Supported objects (C_CreateObject / C_GenerateKeyPair):
  CKO_DATA
  CKO_CERTIFICATE, CKC_X_509: CKA_VALUE (DER, or PEM converted to DER) required;
      CKA_ISSUER, CKA_SERIAL_NUMBER are taken from the certificate (a template
      value that differs -> CKR_TEMPLATE_INCONSISTENT); CKA_SUBJECT defaults to
      the certificate's subject and is stored as given otherwise (the standard
      leaves its consistency to the application; FreeRTOS's provisioning code
      passes b"TestSubject"); CKA_START_DATE and CKA_END_DATE default to its
      validity dates.
  CKO_PRIVATE_KEY / CKO_PUBLIC_KEY, CKK_EC: P-256 only (CKA_EC_PARAMS is the
      10-byte DER OID; another valid OID -> CKR_CURVE_NOT_SUPPORTED).  Private:
      CKA_VALUE (the scalar, <= 32 bytes) required; CKA_EC_POINT is derived and
      readable (extension).  Public: CKA_EC_POINT as DER OCTET STRING (67 bytes;
      a bare 65-byte point is accepted and stored as DER).
  CKO_PRIVATE_KEY / CKO_PUBLIC_KEY, CKK_RSA: 2048-bit modulus only (any other
      size -> CKR_ATTRIBUTE_VALUE_INVALID, as C_CreateObject defines no
      CKR_KEY_SIZE_RANGE); private keys need all eight CRT components and
      p*q must equal n (else CKR_TEMPLATE_INCONSISTENT).
Private keys default to CKA_PRIVATE, CKA_SENSITIVE, CKA_SIGN TRUE and
CKA_EXTRACTABLE FALSE.  Imported keys get CKA_LOCAL, CKA_ALWAYS_SENSITIVE and
CKA_NEVER_EXTRACTABLE FALSE (their value existed outside the token); generated
ones record their history truthfully.
"""

from micropython import const

from .errors import error

# the package's own copies of the numbers it uses (checked against the
# standard header by host_tests/test_token_constants.py)
_CKO_DATA = const(0)
_CKO_CERTIFICATE = const(1)
_CKO_PUBLIC_KEY = const(2)
_CKO_PRIVATE_KEY = const(3)
_CKK_RSA = const(0)
_CKK_EC = const(3)
_CKC_X_509 = const(0)
_CKA_CLASS = const(0x0)
_CKA_TOKEN = const(0x1)
_CKA_PRIVATE = const(0x2)
_CKA_LABEL = const(0x3)
_CKA_APPLICATION = const(0x10)
_CKA_VALUE = const(0x11)
_CKA_OBJECT_ID = const(0x12)
_CKA_CERTIFICATE_TYPE = const(0x80)
_CKA_ISSUER = const(0x81)
_CKA_SERIAL_NUMBER = const(0x82)
_CKA_TRUSTED = const(0x86)
_CKA_CERTIFICATE_CATEGORY = const(0x87)
_CKA_KEY_TYPE = const(0x100)
_CKA_SUBJECT = const(0x101)
_CKA_ID = const(0x102)
_CKA_SENSITIVE = const(0x103)
_CKA_ENCRYPT = const(0x104)
_CKA_DECRYPT = const(0x105)
_CKA_WRAP = const(0x106)
_CKA_UNWRAP = const(0x107)
_CKA_SIGN = const(0x108)
_CKA_SIGN_RECOVER = const(0x109)
_CKA_VERIFY = const(0x10A)
_CKA_VERIFY_RECOVER = const(0x10B)
_CKA_DERIVE = const(0x10C)
_CKA_START_DATE = const(0x110)
_CKA_END_DATE = const(0x111)
_CKA_MODULUS = const(0x120)
_CKA_MODULUS_BITS = const(0x121)
_CKA_PUBLIC_EXPONENT = const(0x122)
_CKA_PRIVATE_EXPONENT = const(0x123)
_CKA_PRIME_1 = const(0x124)
_CKA_PRIME_2 = const(0x125)
_CKA_EXPONENT_1 = const(0x126)
_CKA_EXPONENT_2 = const(0x127)
_CKA_COEFFICIENT = const(0x128)
_CKA_EXTRACTABLE = const(0x162)
_CKA_LOCAL = const(0x163)
_CKA_NEVER_EXTRACTABLE = const(0x164)
_CKA_ALWAYS_SENSITIVE = const(0x165)
_CKA_KEY_GEN_MECHANISM = const(0x166)
_CKA_MODIFIABLE = const(0x170)
_CKA_COPYABLE = const(0x171)
_CKA_DESTROYABLE = const(0x172)
_CKA_EC_PARAMS = const(0x180)
_CKA_EC_POINT = const(0x181)
_CKA_ALWAYS_AUTHENTICATE = const(0x202)
_CKA_WRAP_WITH_TRUSTED = const(0x210)
_CKM_EC_KEY_PAIR_GEN = const(0x1040)
_CKR_ATTRIBUTE_READ_ONLY = const(0x10)
_CKR_ATTRIBUTE_SENSITIVE = const(0x11)
_CKR_ATTRIBUTE_TYPE_INVALID = const(0x12)
_CKR_ATTRIBUTE_VALUE_INVALID = const(0x13)
_CKR_ACTION_PROHIBITED = const(0x1B)
_CKR_ARGUMENTS_BAD = const(0x7)
_CKR_KEY_HANDLE_INVALID = const(0x60)
_CKR_KEY_TYPE_INCONSISTENT = const(0x63)
_CKR_KEY_FUNCTION_NOT_PERMITTED = const(0x68)
_CKR_TEMPLATE_INCOMPLETE = const(0xD0)
_CKR_TEMPLATE_INCONSISTENT = const(0xD1)
_CKR_CURVE_NOT_SUPPORTED = const(0x140)

CK_UNAVAILABLE_INFORMATION = 0xFFFFFFFF
# DER OID 1.2.840.10045.3.1.7 (prime256v1 / secp256r1)
P256_PARAMS = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"
LABEL_MAX = const(32)
RSA_BITS = (2048,)

# attribute flags: value kind in the low 2 bits, then rules
_B = const(0)        # bool
_I = const(1)        # int (CK_ULONG)
_Y = const(2)        # bytes
_REQ = const(4)      # required in a creation template
_SENS = const(8)     # secret: hidden when CKA_SENSITIVE or not CKA_EXTRACTABLE
_MOD = const(16)     # may be changed by C_SetAttributeValue
_RO = const(32)      # set by the token only: in a template -> CKR_ATTRIBUTE_READ_ONLY
_DRV = const(64)     # derived by the token: a template value must agree
_DATE = const(128)   # CK_DATE: empty or 8 ASCII digits

# (type, flags) pairs, flattened
_COMMON = (_CKA_CLASS, _I | _REQ, _CKA_TOKEN, _B, _CKA_PRIVATE, _B, _CKA_MODIFIABLE, _B,
           _CKA_LABEL, _Y | _MOD, _CKA_COPYABLE, _B, _CKA_DESTROYABLE, _B)
_DATA = (_CKA_APPLICATION, _Y | _MOD, _CKA_OBJECT_ID, _Y | _MOD, _CKA_VALUE, _Y | _MOD)
_CERT = (_CKA_CERTIFICATE_TYPE, _I | _REQ, _CKA_TRUSTED, _B, _CKA_CERTIFICATE_CATEGORY, _I,
         _CKA_START_DATE, _Y | _MOD | _DATE, _CKA_END_DATE, _Y | _MOD | _DATE,
         _CKA_SUBJECT, _Y | _DRV, _CKA_ID, _Y | _MOD, _CKA_ISSUER, _Y | _DRV,
         _CKA_SERIAL_NUMBER, _Y | _DRV, _CKA_VALUE, _Y | _REQ)
_KEY = (_CKA_KEY_TYPE, _I | _REQ, _CKA_ID, _Y | _MOD, _CKA_START_DATE, _Y | _MOD | _DATE,
        _CKA_END_DATE, _Y | _MOD | _DATE, _CKA_DERIVE, _B | _MOD, _CKA_LOCAL, _B | _RO,
        _CKA_KEY_GEN_MECHANISM, _I | _RO)
_PUB = (_CKA_SUBJECT, _Y | _MOD, _CKA_ENCRYPT, _B | _MOD, _CKA_VERIFY, _B | _MOD,
        _CKA_VERIFY_RECOVER, _B | _MOD, _CKA_WRAP, _B | _MOD, _CKA_TRUSTED, _B)
_PUB_EC = (_CKA_EC_PARAMS, _Y | _REQ, _CKA_EC_POINT, _Y | _REQ)
_PUB_RSA = (_CKA_MODULUS, _Y | _REQ, _CKA_MODULUS_BITS, _I | _DRV, _CKA_PUBLIC_EXPONENT, _Y | _REQ)
_PRIV = (_CKA_SUBJECT, _Y | _MOD, _CKA_SENSITIVE, _B | _MOD, _CKA_DECRYPT, _B | _MOD,
         _CKA_SIGN, _B | _MOD, _CKA_SIGN_RECOVER, _B | _MOD, _CKA_UNWRAP, _B | _MOD,
         _CKA_EXTRACTABLE, _B | _MOD, _CKA_ALWAYS_SENSITIVE, _B | _RO,
         _CKA_NEVER_EXTRACTABLE, _B | _RO, _CKA_WRAP_WITH_TRUSTED, _B,
         _CKA_ALWAYS_AUTHENTICATE, _B)
_PRIV_EC = (_CKA_EC_PARAMS, _Y | _REQ, _CKA_VALUE, _Y | _REQ | _SENS, _CKA_EC_POINT, _Y | _DRV)
_PRIV_RSA = (_CKA_MODULUS, _Y | _REQ, _CKA_PUBLIC_EXPONENT, _Y | _REQ,
             _CKA_PRIVATE_EXPONENT, _Y | _REQ | _SENS, _CKA_PRIME_1, _Y | _REQ | _SENS,
             _CKA_PRIME_2, _Y | _REQ | _SENS, _CKA_EXPONENT_1, _Y | _REQ | _SENS,
             _CKA_EXPONENT_2, _Y | _REQ | _SENS, _CKA_COEFFICIENT, _Y | _REQ | _SENS)

# the attributes kept in RAM for token objects (everything else is read from
# the record when needed, so key material is not resident between uses)
INDEX = (_CKA_CLASS, _CKA_TOKEN, _CKA_PRIVATE, _CKA_LABEL, _CKA_ID, _CKA_KEY_TYPE,
         _CKA_CERTIFICATE_TYPE)


# values stored encrypted at rest (store.SEALED) in private-key records and in
# every CKA_PRIVATE object's record
_SECRET_VALUES = (_CKA_VALUE, _CKA_PRIVATE_EXPONENT, _CKA_PRIME_1, _CKA_PRIME_2,
                  _CKA_EXPONENT_1, _CKA_EXPONENT_2, _CKA_COEFFICIENT)


def secret_types(attrs):
    """The attribute types of `attrs` to encrypt at rest (issue 10, finding 4)."""
    if attrs.get(_CKA_CLASS) in (_CKO_PRIVATE_KEY, 4) or attrs.get(_CKA_PRIVATE):
        return [t for t in _SECRET_VALUES if t in attrs]
    return ()


def tables(cls, ktype):
    """The attribute tables of an object kind; None when unsupported."""
    if cls == _CKO_DATA:
        return (_COMMON, _DATA)
    if cls == _CKO_CERTIFICATE:
        return (_COMMON, _CERT)
    if cls == _CKO_PRIVATE_KEY:
        if ktype == _CKK_EC:
            return (_COMMON, _KEY, _PRIV, _PRIV_EC)
        if ktype == _CKK_RSA:
            return (_COMMON, _KEY, _PRIV, _PRIV_RSA)
    elif cls == _CKO_PUBLIC_KEY:
        if ktype == _CKK_EC:
            return (_COMMON, _KEY, _PUB, _PUB_EC)
        if ktype == _CKK_RSA:
            return (_COMMON, _KEY, _PUB, _PUB_RSA)
    return None


def flags_of(tabs, t):
    """The flags of attribute t in these tables; None when t does not apply."""
    for tab in tabs:
        for i in range(0, len(tab), 2):
            if tab[i] == t:
                return tab[i + 1]
    return None


def tables_for(attrs):
    return tables(attrs[_CKA_CLASS], attrs.get(_CKA_KEY_TYPE))


def _bytes_like(v):
    return isinstance(v, (bytes, bytearray, memoryview))


def check_value(t, flags, v):
    """The value normalized for storage, or CKR_ATTRIBUTE_VALUE_INVALID."""
    kind = flags & 3
    if kind == _B:
        if v is True or v is False:
            return v
    elif kind == _I:
        if type(v) is int and 0 <= v <= 0xFFFFFFFFFFFFFFFF:
            return v
    elif _bytes_like(v):
        v = bytes(v)
        if len(v) > 0xFFFF:
            raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "attribute 0x%x is too long" % t)
        if t == _CKA_LABEL and len(v) > LABEL_MAX:
            raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "a label has at most 32 bytes")
        if flags & _DATE and v and (len(v) != 8 or not v.isdigit()):
            raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "a date is 8 digits YYYYMMDD")
        return v
    raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "wrong value type for attribute 0x%x" % t)


def template_dict(template):
    """A template (list of (type, value) pairs, or a dict) as a dict; duplicates
    -> CKR_TEMPLATE_INCONSISTENT, malformed -> CKR_ARGUMENTS_BAD or
    CKR_ATTRIBUTE_TYPE_INVALID."""
    if isinstance(template, dict):
        template = template.items()
    elif not isinstance(template, (list, tuple)):
        raise error(_CKR_ARGUMENTS_BAD, "a template is a list of (type, value) pairs")
    d = {}
    for item in template:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise error(_CKR_ARGUMENTS_BAD, "a template is a list of (type, value) pairs")
        t, v = item
        if type(t) is not int:
            raise error(_CKR_ATTRIBUTE_TYPE_INVALID, "an attribute type is an int")
        if t in d:
            raise error(_CKR_TEMPLATE_INCONSISTENT, "attribute 0x%x given twice" % t)
        d[t] = v
    return d


def _kind(t, name, allowed):
    if t is None:
        raise error(_CKR_TEMPLATE_INCOMPLETE, name + " missing")
    if type(t) is not int:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, name + " must be an int")
    if t not in allowed:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "unsupported " + name)
    return t


def _check_template(tabs, tmpl):
    out = {}
    for t, v in tmpl.items():
        f = flags_of(tabs, t)
        if f is None:
            raise error(_CKR_ATTRIBUTE_TYPE_INVALID, "attribute 0x%x does not apply" % t)
        if f & _RO:
            raise error(_CKR_ATTRIBUTE_READ_ONLY, "attribute 0x%x is set by the token" % t)
        out[t] = check_value(t, f, v)
    for tab in tabs:
        for i in range(0, len(tab), 2):
            if tab[i + 1] & _REQ and tab[i] not in out:
                raise error(_CKR_TEMPLATE_INCOMPLETE, "attribute 0x%x is required" % tab[i])
    return out


def _default(attrs, t, v):
    if t not in attrs:
        attrs[t] = v


def _agree(attrs, t, v):
    if t in attrs and attrs[t] != v:
        raise error(_CKR_TEMPLATE_INCONSISTENT, "attribute 0x%x disagrees with the key or certificate" % t)
    attrs[t] = v


def _strip(b):
    i = 0
    while i < len(b) - 1 and b[i] == 0:
        i += 1
    return b[i:] if i else b


def _ec_params(p):
    if p == P256_PARAMS:
        return
    if len(p) >= 2 and p[0] == 6 and p[1] == len(p) - 2:
        raise error(_CKR_CURVE_NOT_SUPPORTED, "only P-256 keys are supported")
    raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "CKA_EC_PARAMS is not a DER OID")


def ec_point_der(q):
    """DER OCTET STRING around a 65-byte uncompressed point (67 bytes)."""
    return b"\x04\x41" + q


def ec_point_raw(p):
    """The 65-byte point from CKA_EC_POINT (DER, or already raw); None if malformed."""
    if len(p) == 67 and p[0] == 4 and p[1] == 65 and p[2] == 4:
        return p[2:]
    if len(p) == 65 and p[0] == 4:
        return p
    return None


def _rsa_modulus(n):
    n = _strip(n)
    if (len(n) * 8) not in RSA_BITS or not n[0] & 0x80:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "RSA keys must have a 2048-bit modulus")
    return n


def _common_defaults(attrs, private):
    _default(attrs, _CKA_TOKEN, False)
    _default(attrs, _CKA_PRIVATE, private)
    _default(attrs, _CKA_MODIFIABLE, True)
    _default(attrs, _CKA_LABEL, b"")
    _default(attrs, _CKA_COPYABLE, True)
    _default(attrs, _CKA_DESTROYABLE, True)


def _key_defaults(attrs, local):
    for t in (_CKA_ID, _CKA_START_DATE, _CKA_END_DATE, _CKA_SUBJECT):
        _default(attrs, t, b"")
    _default(attrs, _CKA_DERIVE, False)
    attrs[_CKA_LOCAL] = local
    attrs[_CKA_KEY_GEN_MECHANISM] = _CKM_EC_KEY_PAIR_GEN if local else CK_UNAVAILABLE_INFORMATION


def _private_defaults(attrs, local):
    _common_defaults(attrs, True)
    _key_defaults(attrs, local)
    _default(attrs, _CKA_SENSITIVE, True)
    _default(attrs, _CKA_EXTRACTABLE, False)
    _default(attrs, _CKA_SIGN, True)
    for t in (_CKA_DECRYPT, _CKA_SIGN_RECOVER, _CKA_UNWRAP, _CKA_WRAP_WITH_TRUSTED,
              _CKA_ALWAYS_AUTHENTICATE):
        _default(attrs, t, False)
    if attrs[_CKA_ALWAYS_AUTHENTICATE]:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "CKA_ALWAYS_AUTHENTICATE is not supported")
    attrs[_CKA_ALWAYS_SENSITIVE] = local and attrs[_CKA_SENSITIVE]
    attrs[_CKA_NEVER_EXTRACTABLE] = local and not attrs[_CKA_EXTRACTABLE]


def _public_defaults(attrs, local):
    _common_defaults(attrs, False)
    _key_defaults(attrs, local)
    _default(attrs, _CKA_VERIFY, True)
    for t in (_CKA_ENCRYPT, _CKA_VERIFY_RECOVER, _CKA_WRAP, _CKA_TRUSTED):
        _default(attrs, t, False)


def _cert(attrs, crypto):
    if attrs[_CKA_CERTIFICATE_TYPE] != _CKC_X_509:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "only X.509 certificates are supported")
    try:
        c = crypto.parse_certificate(attrs[_CKA_VALUE])
    except (ValueError, IndexError, TypeError):
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "CKA_VALUE is not an X.509 certificate")
    attrs[_CKA_VALUE] = c["der"]
    _default(attrs, _CKA_SUBJECT, c["subject"])
    _agree(attrs, _CKA_ISSUER, c["issuer"])
    _agree(attrs, _CKA_SERIAL_NUMBER, c["serial"])
    _default(attrs, _CKA_START_DATE, c["not_before"][:8].encode())
    _default(attrs, _CKA_END_DATE, c["not_after"][:8].encode())
    _common_defaults(attrs, False)
    _default(attrs, _CKA_ID, b"")
    _default(attrs, _CKA_TRUSTED, False)
    _default(attrs, _CKA_CERTIFICATE_CATEGORY, 0)


def _ec_private(attrs, crypto):
    _ec_params(attrs[_CKA_EC_PARAMS])
    d = _strip(attrs[_CKA_VALUE])
    if len(d) > 32:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "a P-256 private value has 32 bytes")
    d = bytes(32 - len(d)) + d
    try:
        q = crypto.ec_public(d)
    except ValueError:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "the private value is out of range")
    attrs[_CKA_VALUE] = d
    if _CKA_EC_POINT in attrs and ec_point_raw(attrs[_CKA_EC_POINT]) != q:
        raise error(_CKR_TEMPLATE_INCONSISTENT, "CKA_EC_POINT does not match CKA_VALUE")
    attrs[_CKA_EC_POINT] = ec_point_der(q)


def _ec_public(attrs, crypto):
    _ec_params(attrs[_CKA_EC_PARAMS])
    q = ec_point_raw(attrs[_CKA_EC_POINT])
    if q is None or not crypto.ec_check_point(q):
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "CKA_EC_POINT is not a P-256 point")
    attrs[_CKA_EC_POINT] = ec_point_der(q)


def _rsa_private(attrs):
    n = _rsa_modulus(attrs[_CKA_MODULUS])
    attrs[_CKA_MODULUS] = n
    for t in (_CKA_PUBLIC_EXPONENT, _CKA_PRIVATE_EXPONENT, _CKA_PRIME_1, _CKA_PRIME_2,
              _CKA_EXPONENT_1, _CKA_EXPONENT_2, _CKA_COEFFICIENT):
        attrs[t] = _strip(attrs[t])
    e = int.from_bytes(attrs[_CKA_PUBLIC_EXPONENT], "big")
    if e < 3 or not e & 1:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "bad RSA public exponent")
    p = int.from_bytes(attrs[_CKA_PRIME_1], "big")
    q = int.from_bytes(attrs[_CKA_PRIME_2], "big")
    if p * q != int.from_bytes(n, "big"):
        raise error(_CKR_TEMPLATE_INCONSISTENT, "the RSA primes do not match the modulus")


def _rsa_public(attrs):
    n = _rsa_modulus(attrs[_CKA_MODULUS])
    attrs[_CKA_MODULUS] = n
    attrs[_CKA_PUBLIC_EXPONENT] = _strip(attrs[_CKA_PUBLIC_EXPONENT])
    e = int.from_bytes(attrs[_CKA_PUBLIC_EXPONENT], "big")
    if e < 3 or not e & 1:
        raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "bad RSA public exponent")
    _agree(attrs, _CKA_MODULUS_BITS, len(n) * 8)


def new_object(template, crypto, local=False):
    """C_CreateObject's rules: the complete attribute dict of a new object."""
    tmpl = template_dict(template)
    cls = _kind(tmpl.get(_CKA_CLASS), "CKA_CLASS",
                (_CKO_DATA, _CKO_CERTIFICATE, _CKO_PUBLIC_KEY, _CKO_PRIVATE_KEY))
    ktype = None
    if cls == _CKO_PUBLIC_KEY or cls == _CKO_PRIVATE_KEY:
        ktype = _kind(tmpl.get(_CKA_KEY_TYPE), "CKA_KEY_TYPE", (_CKK_EC, _CKK_RSA))
    tabs = tables(cls, ktype)
    attrs = _check_template(tabs, tmpl)
    if cls == _CKO_DATA:
        _common_defaults(attrs, False)
        for t in (_CKA_APPLICATION, _CKA_OBJECT_ID, _CKA_VALUE):
            _default(attrs, t, b"")
    elif cls == _CKO_CERTIFICATE:
        _cert(attrs, crypto)
    elif cls == _CKO_PRIVATE_KEY:
        if ktype == _CKK_EC:
            _ec_private(attrs, crypto)
        else:
            _rsa_private(attrs)
        _private_defaults(attrs, local)
    else:
        if ktype == _CKK_EC:
            _ec_public(attrs, crypto)
        else:
            _rsa_public(attrs)
        _public_defaults(attrs, local)
    return attrs


def keypair_attrs(pub_template, priv_template, gen):
    """C_GenerateKeyPair (EC P-256): both attribute dicts.  The templates are
    checked first; only then is gen() -> (d, q) called."""
    pub = template_dict(pub_template)
    priv = template_dict(priv_template)
    for tmpl, cls in ((pub, _CKO_PUBLIC_KEY), (priv, _CKO_PRIVATE_KEY)):
        if tmpl.get(_CKA_CLASS, cls) != cls or tmpl.get(_CKA_KEY_TYPE, _CKK_EC) != _CKK_EC:
            raise error(_CKR_TEMPLATE_INCONSISTENT, "CKA_CLASS/CKA_KEY_TYPE disagree with the mechanism")
        tmpl[_CKA_CLASS] = cls
        tmpl[_CKA_KEY_TYPE] = _CKK_EC
    if _CKA_EC_POINT in pub or _CKA_VALUE in priv or _CKA_EC_POINT in priv:
        raise error(_CKR_TEMPLATE_INCONSISTENT, "the key values are generated, not given")
    params = pub.get(_CKA_EC_PARAMS, priv.get(_CKA_EC_PARAMS))
    if params is None:
        raise error(_CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is required")
    if priv.get(_CKA_EC_PARAMS, params) != params:
        raise error(_CKR_TEMPLATE_INCONSISTENT, "the two templates name different curves")
    pub[_CKA_EC_PARAMS] = priv[_CKA_EC_PARAMS] = params
    # FreeRTOS's provisioning code leaves CKA_TOKEN out of the public template
    # and finds the public key after a restart (corePKCS11 stores every object):
    # with config public_key_follows_private, such a public key is a token
    # object when the private key is. An explicit CKA_TOKEN is kept.
    if _CKA_TOKEN not in pub and _CKA_TOKEN in priv:
        from . import config
        if config.get("public_key_follows_private"):
            pub[_CKA_TOKEN] = priv[_CKA_TOKEN]
    # placeholders, replaced by the generated values below
    pub[_CKA_EC_POINT] = b""
    priv[_CKA_VALUE] = b""
    pa = _check_template(tables(_CKO_PUBLIC_KEY, _CKK_EC), pub)
    ka = _check_template(tables(_CKO_PRIVATE_KEY, _CKK_EC), priv)
    _ec_params(pa[_CKA_EC_PARAMS])
    _public_defaults(pa, True)
    _private_defaults(ka, True)
    d, q = gen()
    pa[_CKA_EC_POINT] = ka[_CKA_EC_POINT] = ec_point_der(q)
    ka[_CKA_VALUE] = d
    return pa, ka


_RSA_PRIVATE = (_CKA_MODULUS, _CKA_PUBLIC_EXPONENT, _CKA_PRIVATE_EXPONENT, _CKA_PRIME_1,
                _CKA_PRIME_2, _CKA_EXPONENT_1, _CKA_EXPONENT_2, _CKA_COEFFICIENT)


def key_material(attrs, kind, key_type):
    """Key usage for C_SignInit (kind "Sign") and C_VerifyInit ("Verify"): the
    object must be a private (sign) or public (verify) key of the mechanism's
    key type whose CKA_SIGN / CKA_VERIFY is set.  Returns what the crypto
    backend takes: the EC scalar or point, or the RSA (n, e[, d, p, q, dp,
    dq, qinv]) components."""
    cls = attrs[_CKA_CLASS]
    sign = kind == "Sign"
    if cls != _CKO_PRIVATE_KEY and cls != _CKO_PUBLIC_KEY:
        raise error(_CKR_KEY_HANDLE_INVALID, "the object is not a key")
    if cls != (_CKO_PRIVATE_KEY if sign else _CKO_PUBLIC_KEY) or attrs[_CKA_KEY_TYPE] != key_type:
        raise error(_CKR_KEY_TYPE_INCONSISTENT, "key and mechanism do not match")
    if not attrs.get(_CKA_SIGN if sign else _CKA_VERIFY):
        raise error(_CKR_KEY_FUNCTION_NOT_PERMITTED, "the key may not C_%s" % kind)
    if key_type == _CKK_RSA:
        if sign:
            return tuple(attrs[x] for x in _RSA_PRIVATE)
        return (attrs[_CKA_MODULUS], attrs[_CKA_PUBLIC_EXPONENT])
    if sign:
        return attrs[_CKA_VALUE]
    return ec_point_raw(attrs[_CKA_EC_POINT])


def hidden(attrs, flags):
    """Is this attribute's value secret in this object?"""
    return flags & _SENS and (attrs.get(_CKA_SENSITIVE, True) or not attrs.get(_CKA_EXTRACTABLE, False))


def read(attrs, types):
    """C_GetAttributeValue's rules: (values, rv); None where unavailable."""
    tabs = tables_for(attrs)
    values = []
    rv = 0
    for t in types:
        f = flags_of(tabs, t) if type(t) is int else None
        if f is None or t not in attrs:
            values.append(None)
            rv = rv or _CKR_ATTRIBUTE_TYPE_INVALID
        elif hidden(attrs, f):
            values.append(None)
            rv = rv or _CKR_ATTRIBUTE_SENSITIVE
        else:
            values.append(attrs[t])
    return values, rv


def update(attrs, template):
    """C_SetAttributeValue's rules: the new attribute dict (attrs is untouched)."""
    tmpl = template_dict(template)
    if not attrs.get(_CKA_MODIFIABLE, True):
        raise error(_CKR_ACTION_PROHIBITED, "the object is not modifiable")
    tabs = tables_for(attrs)
    new = dict(attrs)
    for t, v in tmpl.items():
        f = flags_of(tabs, t)
        if f is None:
            raise error(_CKR_ATTRIBUTE_TYPE_INVALID, "attribute 0x%x does not apply" % t)
        if not f & _MOD:
            raise error(_CKR_ATTRIBUTE_READ_ONLY, "attribute 0x%x cannot be changed" % t)
        v = check_value(t, f, v)
        if t == _CKA_SENSITIVE and attrs[t] and not v:
            raise error(_CKR_ATTRIBUTE_READ_ONLY, "CKA_SENSITIVE can only be turned on")
        if t == _CKA_EXTRACTABLE and not attrs[t] and v:
            raise error(_CKR_ATTRIBUTE_READ_ONLY, "CKA_EXTRACTABLE can only be turned off")
        new[t] = v
    return new


def search_template(template):
    """A C_FindObjectsInit template as a dict of normalized values."""
    tmpl = template_dict(template)
    for t, v in tmpl.items():
        if _bytes_like(v):
            tmpl[t] = bytes(v)
        elif not (v is True or v is False or type(v) is int):
            raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "wrong value type for attribute 0x%x" % t)
    return tmpl


def matches(attrs, tmpl, tabs=None):
    """Does an object (full attrs) match the search template?  Secret values
    never match, so a search cannot be used to guess them."""
    for t, v in tmpl.items():
        if t not in attrs:
            return False
        a = attrs[t]
        if type(a) is not type(v) or a != v:
            return False
        if tabs is None:
            tabs = tables_for(attrs)
        f = flags_of(tabs, t)
        if f is None or hidden(attrs, f):
            return False
    return True


def index_of(attrs):
    """The small subset of a token object's attributes kept in RAM."""
    return {t: attrs[t] for t in INDEX if t in attrs}


def index_covers(tmpl):
    for t in tmpl:
        if t not in INDEX:
            return False
    return True
