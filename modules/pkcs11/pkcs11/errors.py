"""Errors: PKCS11Error and one subclass per CKR code.

Every failure of the C-shaped API raises a PKCS11Error (or a subclass); `.rv` is
the numeric CKR value and str(e) names it, e.g. "CKR_ATTRIBUTE_SENSITIVE (0x11)",
optionally followed by ": <detail>".  Details never contain attribute values.

Subclasses are named after the code in CamelCase (CKR_ATTRIBUTE_SENSITIVE ->
`AttributeSensitive`, CKR_PIN_INCORRECT -> `PinIncorrect`) and are created on
first use, so they cost no RAM until needed:

    from pkcs11 import errors
    try: ...
    except errors.AttributeSensitive as e: e.values   # partial C_GetAttributeValue result

Extra fields: `.values` (C_GetAttributeValue: the list with None where a value
is unavailable), `.length` (CKR_BUFFER_TOO_SMALL: the size needed).
"""

# "|<hex code> <name after CKR_>|" pairs: a constant string stays in the firmware image.
_TABLE = (
    "|"
    "0 OK|1 CANCEL|2 HOST_MEMORY|3 SLOT_ID_INVALID|5 GENERAL_ERROR|6 "
    "FUNCTION_FAILED|7 ARGUMENTS_BAD|8 NO_EVENT|9 NEED_TO_CREATE_THREADS|a "
    "CANT_LOCK|10 ATTRIBUTE_READ_ONLY|11 ATTRIBUTE_SENSITIVE|12 "
    "ATTRIBUTE_TYPE_INVALID|13 ATTRIBUTE_VALUE_INVALID|1b ACTION_PROHIBITED|20 "
    "DATA_INVALID|21 DATA_LEN_RANGE|30 DEVICE_ERROR|31 DEVICE_MEMORY|32 "
    "DEVICE_REMOVED|40 ENCRYPTED_DATA_INVALID|41 ENCRYPTED_DATA_LEN_RANGE|50 "
    "FUNCTION_CANCELED|51 FUNCTION_NOT_PARALLEL|54 FUNCTION_NOT_SUPPORTED|60 "
    "KEY_HANDLE_INVALID|62 KEY_SIZE_RANGE|63 KEY_TYPE_INCONSISTENT|64 "
    "KEY_NOT_NEEDED|65 KEY_CHANGED|66 KEY_NEEDED|67 KEY_INDIGESTIBLE|68 "
    "KEY_FUNCTION_NOT_PERMITTED|69 KEY_NOT_WRAPPABLE|6a KEY_UNEXTRACTABLE|70 "
    "MECHANISM_INVALID|71 MECHANISM_PARAM_INVALID|82 OBJECT_HANDLE_INVALID|90 "
    "OPERATION_ACTIVE|91 OPERATION_NOT_INITIALIZED|a0 PIN_INCORRECT|a1 "
    "PIN_INVALID|a2 PIN_LEN_RANGE|a3 PIN_EXPIRED|a4 PIN_LOCKED|b0 "
    "SESSION_CLOSED|b1 SESSION_COUNT|b3 SESSION_HANDLE_INVALID|b4 "
    "SESSION_PARALLEL_NOT_SUPPORTED|b5 SESSION_READ_ONLY|b6 SESSION_EXISTS|b7 "
    "SESSION_READ_ONLY_EXISTS|b8 SESSION_READ_WRITE_SO_EXISTS|c0 "
    "SIGNATURE_INVALID|c1 SIGNATURE_LEN_RANGE|d0 TEMPLATE_INCOMPLETE|d1 "
    "TEMPLATE_INCONSISTENT|e0 TOKEN_NOT_PRESENT|e1 TOKEN_NOT_RECOGNIZED|e2 "
    "TOKEN_WRITE_PROTECTED|f0 UNWRAPPING_KEY_HANDLE_INVALID|f1 "
    "UNWRAPPING_KEY_SIZE_RANGE|f2 UNWRAPPING_KEY_TYPE_INCONSISTENT|100 "
    "USER_ALREADY_LOGGED_IN|101 USER_NOT_LOGGED_IN|102 "
    "USER_PIN_NOT_INITIALIZED|103 USER_TYPE_INVALID|104 "
    "USER_ANOTHER_ALREADY_LOGGED_IN|105 USER_TOO_MANY_TYPES|110 "
    "WRAPPED_KEY_INVALID|112 WRAPPED_KEY_LEN_RANGE|113 "
    "WRAPPING_KEY_HANDLE_INVALID|114 WRAPPING_KEY_SIZE_RANGE|115 "
    "WRAPPING_KEY_TYPE_INCONSISTENT|120 RANDOM_SEED_NOT_SUPPORTED|121 "
    "RANDOM_NO_RNG|130 DOMAIN_PARAMS_INVALID|140 CURVE_NOT_SUPPORTED|150 "
    "BUFFER_TOO_SMALL|160 SAVED_STATE_INVALID|170 INFORMATION_SENSITIVE|180 "
    "STATE_UNSAVEABLE|190 CRYPTOKI_NOT_INITIALIZED|191 "
    "CRYPTOKI_ALREADY_INITIALIZED|1a0 MUTEX_BAD|1a1 MUTEX_NOT_LOCKED|1b0 "
    "NEW_PIN_MODE|1b1 NEXT_OTP|1c0 EXCEEDED_MAX_ITERATIONS|1c1 "
    "FIPS_SELF_TEST_FAILED|1c2 LIBRARY_LOAD_FAILED|1c3 PIN_TOO_WEAK|1c4 "
    "PUBLIC_KEY_INVALID|200 FUNCTION_REJECTED|80000000 VENDOR_DEFINED|")


class PKCS11Error(Exception):
    """A PKCS#11 call failed; `.rv` holds the CKR value."""

    rv = None
    values = None
    length = None

    def __init__(self, rv=None, detail=None, values=None, length=None):
        if rv is None:
            rv = self.rv
        self.rv = rv
        if values is not None:
            self.values = values
        if length is not None:
            self.length = length
        msg = "CKR_%s (0x%x)" % (name(rv), rv) if rv is not None else "PKCS#11 error"
        if detail:
            msg += ": " + detail
        super().__init__(msg)


class NoSuchKey(PKCS11Error):
    """session.get_key()/get_object(): nothing matches (python-pkcs11 name)."""


class MultipleObjectsReturned(PKCS11Error):
    """session.get_key()/get_object(): more than one object matches."""


def name(rv):
    """'ATTRIBUTE_SENSITIVE' for 0x11; 'VENDOR_DEFINED+0x..' or '0x..' when unknown."""
    i = _TABLE.find("|%x " % rv)
    if i < 0:
        if rv >= 0x80000000:
            return "VENDOR_DEFINED+0x%x" % (rv - 0x80000000)
        return "UNKNOWN_0x%x" % rv
    i = _TABLE.find(" ", i) + 1
    return _TABLE[i:_TABLE.find("|", i)]


def code(ckr_name):
    """The numeric value of 'CKR_PIN_INCORRECT' or 'PIN_INCORRECT'; None if unknown."""
    if ckr_name.startswith("CKR_"):
        ckr_name = ckr_name[4:]
    i = _TABLE.find(" %s|" % ckr_name)
    if i < 0:
        return None
    return int(_TABLE[_TABLE.rfind("|", 0, i) + 1:i], 16)


_classes = {}


def error_class(rv):
    """The PKCS11Error subclass for a CKR value (created once, then cached)."""
    cls = _classes.get(rv)
    if cls is None:
        n = name(rv)
        camel = "".join(w[0] + w[1:].lower() for w in n.split("_") if w)
        cls = type(camel, (PKCS11Error,), {"rv": rv})
        _classes[rv] = cls
    return cls


def error(rv, detail=None, values=None, length=None):
    """A ready-to-raise exception for rv: `raise error(CKR_X, "why")`."""
    return error_class(rv)(rv, detail, values, length)


def __getattr__(attr):
    # errors.AttributeSensitive -> the subclass for CKR_ATTRIBUTE_SENSITIVE
    if attr[:1].isupper():
        up = ""
        for ch in attr:
            if ch.isupper() and up:
                up += "_"
            up += ch.upper()
        rv = code(up)
        if rv is not None:
            return error_class(rv)
    raise AttributeError(attr)
