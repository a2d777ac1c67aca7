"""The C-shaped PKCS#11 function list: `pkcs11.C_GetFunctionList()`.

Each C_* method checks its arguments, then delegates to the token state
(token.py), the attribute rules and key usage (objects.py) and the mechanisms
(mechanisms.py).  Failures raise pkcs11.errors.PKCS11Error with `.rv`.

Python shapes of the C calls:
  handles, slots, flags, mechanisms, attribute types   int
  templates        list of (type, value) pairs (a dict also works); values are
                   bool, int or bytes
  mechanism        CKM_X, or (CKM_X, parameter); RSA-PSS: (CKM_RSA_PKCS_PSS,
                   (CKM_SHA256, CKG_MGF1_SHA256, 32))
  C_GetAttributeValue(h, obj, [types]) -> list of values.  If some value is
                   unavailable it raises (CKR_ATTRIBUTE_SENSITIVE or
                   CKR_ATTRIBUTE_TYPE_INVALID) with `.values` = the list, None
                   in the unavailable slots, every other value filled.
  C_GetInfo/C_GetSlotInfo/C_GetTokenInfo/C_GetMechanismInfo/C_GetSessionInfo
                   return dicts keyed by the CK_*_INFO field names.

Output buffers (C_Sign, C_SignFinal, C_Digest, C_DigestFinal), the Python
form of PKCS#11's two-call convention:
  C_Sign(h, data)                    -> bytes; ends the operation
  C_Sign(h, data, length_only=True)  -> the output length (int); the
                                        operation stays active (the C "NULL
                                        buffer" length query)
  C_Sign(h, data, out)               out: a bytearray or memoryview.  Large
                                        enough: the signature is written to
                                        out[:n], n returned, operation ended.
                                        Too small: raises CKR_BUFFER_TOO_SMALL
                                        with `.length` = n needed, and the
                                        operation stays active.
Every other outcome of C_Sign (success or error) ends the operation, as the
standard says.  C_SignUpdate/C_SignFinal work for the mechanisms that hash
(CKM_ECDSA_SHA*, CKM_SHA*_RSA_PKCS, CKM_SHA*_RSA_PKCS_PSS); for the raw ones
C_SignUpdate raises CKR_FUNCTION_NOT_SUPPORTED and ends the operation.
C_Verify(h, data, signature) returns None or raises CKR_SIGNATURE_INVALID /
CKR_SIGNATURE_LEN_RANGE.

One slot (id 0) holds the token.  At most one cryptographic operation
(sign, verify or digest) and one search per session at a time.
"""

from micropython import const

from . import crypto, mechanisms, objects
from .errors import error
from .token import PIN_MAX, PIN_MIN, Token, pad

_SLOT = const(0)
_CKF_TOKEN_PRESENT = const(0x1)
_CKF_RW_SESSION = const(0x2)
_CKF_SERIAL_SESSION = const(0x4)
_CKR_SLOT_ID_INVALID = const(0x3)
_CKR_ARGUMENTS_BAD = const(0x7)
_CKR_FUNCTION_NOT_SUPPORTED = const(0x54)
_CKR_KEY_HANDLE_INVALID = const(0x60)
_CKR_MECHANISM_INVALID = const(0x70)
_CKR_MECHANISM_PARAM_INVALID = const(0x71)
_CKR_OPERATION_ACTIVE = const(0x90)
_CKR_OPERATION_NOT_INITIALIZED = const(0x91)
_CKR_BUFFER_TOO_SMALL = const(0x150)
_CKR_RANDOM_SEED_NOT_SUPPORTED = const(0x120)
_CKR_CRYPTOKI_NOT_INITIALIZED = const(0x190)
_CKR_CRYPTOKI_ALREADY_INITIALIZED = const(0x191)

_MANUFACTURER = b"pkcs11 for MicroPython"
VERSION = (0, 1)


def _data(b):
    if isinstance(b, (bytes, bytearray, memoryview)):
        return b
    raise error(_CKR_ARGUMENTS_BAD, "data must be bytes")


class FunctionList:
    """The PKCS#11 functions as methods (see the module docstring)."""

    def __init__(self):
        self._t = None

    def __repr__(self):
        return "<pkcs11 function list>"

    # -- general ------------------------------------------------------------

    def _tok(self):
        t = self._t
        if t is None:
            raise error(_CKR_CRYPTOKI_NOT_INITIALIZED, "call C_Initialize first")
        return t

    def _slot(self, slot):
        t = self._tok()
        if slot != _SLOT or type(slot) is not int:
            raise error(_CKR_SLOT_ID_INVALID)
        return t

    def C_Initialize(self, init_args=None):
        if init_args is not None and not isinstance(init_args, dict):
            raise error(_CKR_ARGUMENTS_BAD, "init_args is None or a dict")
        if self._t is not None:
            raise error(_CKR_CRYPTOKI_ALREADY_INITIALIZED)
        self._t = Token(_SLOT)

    def C_Finalize(self, *reserved):
        if reserved:
            raise error(_CKR_ARGUMENTS_BAD, "C_Finalize takes no argument")
        self._tok().close_all()
        self._t = None

    def C_GetInfo(self):
        self._tok()
        return {"cryptokiVersion": (2, 40), "manufacturerID": pad(_MANUFACTURER, 32),
                "flags": 0, "libraryDescription": pad(b"PKCS#11 token on flash", 32),
                "libraryVersion": VERSION}

    def C_GetSlotList(self, token_present=False):
        self._tok()
        return [_SLOT]

    def C_GetSlotInfo(self, slot):
        self._slot(slot)
        return {"slotDescription": pad(b"MicroPython flash token slot", 64),
                "manufacturerID": pad(_MANUFACTURER, 32), "flags": _CKF_TOKEN_PRESENT,
                "hardwareVersion": (0, 0), "firmwareVersion": VERSION}

    def C_GetTokenInfo(self, slot):
        t = self._slot(slot)
        from . import config
        total, free = t.space()
        return {"label": pad(t.label(), 32), "manufacturerID": pad(_MANUFACTURER, 32),
                "model": pad(b"flash token", 16), "serialNumber": pad(t.serial(), 16),
                "flags": t.flags(), "ulMaxSessionCount": config.get("max_sessions"),
                "ulSessionCount": t.session_count(), "ulMaxRwSessionCount": config.get("max_sessions"),
                "ulRwSessionCount": t.session_count(True), "ulMaxPinLen": PIN_MAX, "ulMinPinLen": PIN_MIN,
                "ulTotalPublicMemory": total, "ulFreePublicMemory": free,
                "ulTotalPrivateMemory": total, "ulFreePrivateMemory": free,
                "hardwareVersion": (0, 0), "firmwareVersion": VERSION, "utcTime": b" " * 16}

    def C_GetMechanismList(self, slot):
        self._slot(slot)
        return mechanisms.mechanism_list()

    def C_GetMechanismInfo(self, slot, mech):
        self._slot(slot)
        i = mechanisms.info(mech) if type(mech) is int else None
        if i is None:
            raise error(_CKR_MECHANISM_INVALID)
        return i

    def C_InitToken(self, slot, so_pin, label=b""):
        t = self._slot(slot)
        label = objects.check_value(3, 2, label)    # CKA_LABEL rules: bytes, <= 32
        t.init_token(so_pin, label)

    def C_InitPIN(self, h, pin):
        t = self._tok()
        t.init_pin(t.session(h), pin)

    def C_SetPIN(self, h, old_pin, new_pin):
        """Change the PIN of the logged-in user (the SO's when the SO is logged
        in).  Extension: on a token without a user PIN, C_SetPIN(h, b"", pin)
        in a R/W session sets the first user PIN."""
        t = self._tok()
        t.set_pin(t.session(h), old_pin, new_pin)

    # -- sessions -----------------------------------------------------------

    def C_OpenSession(self, slot, flags=_CKF_SERIAL_SESSION):
        t = self._slot(slot)
        if type(flags) is not int:
            raise error(_CKR_ARGUMENTS_BAD, "flags must be an int")
        return t.open_session(flags)

    def C_CloseSession(self, h):
        self._tok().close_session(h)

    def C_CloseAllSessions(self, slot):
        self._slot(slot).close_all()

    def C_GetSessionInfo(self, h):
        t = self._tok()
        s = t.session(h)
        return {"slotID": s.slot, "state": t.state(s),
                "flags": _CKF_SERIAL_SESSION | (_CKF_RW_SESSION if s.rw else 0), "ulDeviceError": 0}

    def C_Login(self, h, user_type, pin):
        t = self._tok()
        t.do_login(t.session(h), user_type, pin)

    def C_Logout(self, h):
        t = self._tok()
        t.session(h)
        t.do_logout()

    # -- objects ------------------------------------------------------------

    def C_CreateObject(self, h, template):
        t = self._tok()
        s = t.session(h)
        return t.add(s, objects.new_object(template, crypto))

    def C_DestroyObject(self, h, obj):
        t = self._tok()
        t.destroy(t.session(h), obj)

    def C_GetAttributeValue(self, h, obj, types):
        t = self._tok()
        t.session(h)
        if not isinstance(types, (list, tuple)):
            raise error(_CKR_ARGUMENTS_BAD, "give a list of attribute types")
        o = t.obj(obj)
        # the RAM index answers the common questions (class, label, id, key
        # type) without reading the record from flash
        a = o.attrs if o.owner or objects.index_covers(types) else t.attrs(o)
        values, rv = objects.read(a, types)
        if rv:
            raise error(rv, values=values)
        return values

    def C_SetAttributeValue(self, h, obj, template):
        t = self._tok()
        t.set_attrs(t.session(h), obj, template)

    def C_FindObjectsInit(self, h, template=()):
        t = self._tok()
        t.find_init(t.session(h), template)

    def C_FindObjects(self, h, max_count=1):
        t = self._tok()
        s = t.session(h)
        if type(max_count) is not int or max_count < 0:
            raise error(_CKR_ARGUMENTS_BAD, "max_count must be an int >= 0")
        return t.find(s, max_count)

    def C_FindObjectsFinal(self, h):
        t = self._tok()
        t.find_final(t.session(h))

    # -- operations ---------------------------------------------------------

    def _idle(self, h):
        t = self._tok()
        s = t.session(h)
        if s.op is not None:
            raise error(_CKR_OPERATION_ACTIVE, "another operation is active")
        return t, s

    def _op(self, h, kind):
        s = self._tok().session(h)
        op = s.op
        if op is None or op.kind != kind:
            raise error(_CKR_OPERATION_NOT_INITIALIZED, "call C_%sInit first" % kind)
        return s, op

    def _init(self, h, kind, mechanism, key=None):
        """C_DigestInit / C_SignInit / C_VerifyInit: the session's new operation,
        after the mechanism check and (sign, verify) the key usage checks."""
        t, s = self._idle(h)
        m, param = mechanisms.usable(mechanism, kind)
        if kind != "Digest":
            a = t.attrs(t.obj(key, _CKR_KEY_HANDLE_INVALID))
            key = objects.key_material(a, kind, mechanisms.key_type(m))
        s.op = mechanisms.Operation(kind, m, param, key)

    def _output(self, s, op, out, length_only, compute):
        n = op.length()
        if length_only:
            return n
        if out is not None:
            if not isinstance(out, (bytearray, memoryview)):
                s.op = None
                raise error(_CKR_ARGUMENTS_BAD, "out must be a bytearray or memoryview")
            if len(out) < n:
                raise error(_CKR_BUFFER_TOO_SMALL, "%d bytes needed" % n, length=n)
        s.op = None
        r = compute()
        if out is None:
            return r
        try:
            out[:n] = r
        except TypeError:
            raise error(_CKR_ARGUMENTS_BAD, "out is read-only")
        return n

    def _single(self, h, kind):
        s, op = self._op(h, kind)
        if op.multi:
            raise error(_CKR_OPERATION_ACTIVE, "a multi-part operation is active: call C_%sFinal" %
                        kind)
        return s, op

    def _update(self, h, kind, data):
        s, op = self._op(h, kind)
        if not op.can_update():
            s.op = None
            raise error(_CKR_FUNCTION_NOT_SUPPORTED, "this mechanism is single-part only")
        try:
            op.update(_data(data))
        except Exception:
            s.op = None
            raise

    def C_DigestInit(self, h, mechanism):
        self._init(h, "Digest", mechanism)

    def C_Digest(self, h, data, out=None, length_only=False):
        s, op = self._single(h, "Digest")
        return self._output(s, op, out, length_only, lambda: op.digest(_data(data)))

    def C_DigestUpdate(self, h, data):
        self._update(h, "Digest", data)

    def C_DigestFinal(self, h, out=None, length_only=False):
        s, op = self._op(h, "Digest")
        return self._output(s, op, out, length_only, op.digest)

    def C_SignInit(self, h, mechanism, key):
        self._init(h, "Sign", mechanism, key)

    def C_Sign(self, h, data, out=None, length_only=False):
        s, op = self._single(h, "Sign")
        return self._output(s, op, out, length_only, lambda: op.sign(_data(data)))

    def C_SignUpdate(self, h, data):
        self._update(h, "Sign", data)

    def C_SignFinal(self, h, out=None, length_only=False):
        s, op = self._op(h, "Sign")
        if not op.can_update():
            s.op = None
            raise error(_CKR_FUNCTION_NOT_SUPPORTED, "this mechanism is single-part only")
        return self._output(s, op, out, length_only, op.sign)

    def C_VerifyInit(self, h, mechanism, key):
        self._init(h, "Verify", mechanism, key)

    def C_Verify(self, h, data, signature):
        s, op = self._single(h, "Verify")
        s.op = None
        op.verify(_data(data), _data(signature))

    def C_VerifyUpdate(self, h, data):
        self._update(h, "Verify", data)

    def C_VerifyFinal(self, h, signature):
        s, op = self._op(h, "Verify")
        s.op = None
        if not op.can_update():
            raise error(_CKR_FUNCTION_NOT_SUPPORTED, "this mechanism is single-part only")
        op.verify(None, _data(signature))

    # -- keys and random ----------------------------------------------------

    def C_GenerateKeyPair(self, h, mechanism, public_template, private_template):
        """EC P-256 only (CKM_EC_KEY_PAIR_GEN); returns (public, private) handles.
        A public template without CKA_TOKEN takes the private template's CKA_TOKEN
        (config public_key_follows_private, FreeRTOS's provisioning relies on it),
        or makes a session object when that is off or the private template has none."""
        t = self._tok()
        s = t.session(h)
        param = mechanisms.usable(mechanism, "GenerateKeyPair")[1]
        if param is not None:
            raise error(_CKR_MECHANISM_PARAM_INVALID)
        pub, priv = objects.keypair_attrs(public_template, private_template, crypto.ec_generate)
        return t.add_keypair(s, pub, priv)

    def C_GenerateRandom(self, h, length):
        self._tok().session(h)
        if type(length) is not int or length < 0:
            raise error(_CKR_ARGUMENTS_BAD, "length must be an int >= 0")
        return crypto.random_bytes(length)

    def C_SeedRandom(self, h, seed):
        self._tok().session(h)
        raise error(_CKR_RANDOM_SEED_NOT_SUPPORTED)

    # -- extensions ---------------------------------------------------------

    def is_initialized(self):
        """True between C_Initialize and C_Finalize."""
        return self._t is not None

    def session_count(self):
        """The number of open sessions (0 before C_Initialize)."""
        t = self._t
        return 0 if t is None else t.session_count()

    def erase_token(self, slot=0):
        """Vendor extension: destroy every object and PIN of the token, the only
        way out of a damaged token record (C_InitToken needs the SO PIN, which a
        damaged record cannot check).  Every session must be closed."""
        self._slot(slot).erase()

    def corrupted_objects(self):
        """[(handle, reason)] of records that failed their integrity check at
        C_Initialize or since.  They are hidden from C_FindObjects, give
        CKR_DEVICE_ERROR when used, and C_DestroyObject removes them."""
        return self._tok().corrupted()


_fl = None


def function_list():
    global _fl
    if _fl is None:
        _fl = FunctionList()
    return _fl
