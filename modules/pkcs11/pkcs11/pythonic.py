"""The Pythonic layer, in the style of python-pkcs11, over the C-shaped API.

    import pkcs11
    from pkcs11.constants import *
    with pkcs11.open_session(rw=True, user_pin=None) as session:
        key = session.import_pem(open("device.key", "rb").read())   # "Device Priv TLS Key"
        cert = session.import_pem(open("device.crt", "rb").read())  # "Device Cert"
        key = session.get_key(object_class=CKO_PRIVATE_KEY, label="Device Priv TLS Key")
        sig = key.sign(b"data")                      # CKM_ECDSA_SHA256 / CKM_SHA256_RSA_PKCS
        pub, priv = session.generate_keypair(label="My Key")
        ok = pub.verify(b"data", priv.sign(b"data"))
        cert[CKA_SUBJECT]; key.label; key.destroy()

get_key()/get_object() raise NoSuchKey when nothing matches and
MultipleObjectsReturned when several do.  Labels may be given as str or bytes.
Objects are typed: PrivateKey, PublicKey, Certificate, DataObject (all
Object); obj[CKA_X] reads an attribute, obj[CKA_X] = v changes it.
A session opened here initializes the library if needed, and finalizes it
again when it was the one that initialized it and no session is left.  It
makes the seed's calls in the seed's order: C_Initialize, C_GetSlotList,
C_OpenSession ... C_CloseSession, C_Finalize.  Session(handle=h) wraps a
session opened with the C-shaped API (it is never closed here).
"""

from micropython import const

from . import crypto, labels
from .api import function_list
from .errors import MultipleObjectsReturned, NoSuchKey, PKCS11Error, error
from .objects import P256_PARAMS, ec_point_der

_CKO_DATA = const(0)
_CKO_CERTIFICATE = const(1)
_CKO_PUBLIC_KEY = const(2)
_CKO_PRIVATE_KEY = const(3)
_CKK_RSA = const(0)
_CKK_EC = const(3)
_CKC_X_509 = const(0)
_CKU_USER = const(1)
_CKF_RW_SESSION = const(0x2)
_CKF_SERIAL_SESSION = const(0x4)
_CKA_CLASS = const(0x0)
_CKA_TOKEN = const(0x1)
_CKA_PRIVATE = const(0x2)
_CKA_LABEL = const(0x3)
_CKA_VALUE = const(0x11)
_CKA_CERTIFICATE_TYPE = const(0x80)
_CKA_KEY_TYPE = const(0x100)
_CKA_ID = const(0x102)
_CKA_SIGN = const(0x108)
_CKA_VERIFY = const(0x10A)
_CKA_MODULUS = const(0x120)
_CKA_PUBLIC_EXPONENT = const(0x122)
_CKA_PRIVATE_EXPONENT = const(0x123)
_CKA_PRIME_1 = const(0x124)
_CKA_PRIME_2 = const(0x125)
_CKA_EXPONENT_1 = const(0x126)
_CKA_EXPONENT_2 = const(0x127)
_CKA_COEFFICIENT = const(0x128)
_CKA_EC_PARAMS = const(0x180)
_CKA_EC_POINT = const(0x181)
_CKM_SHA256_RSA_PKCS = const(0x40)
_CKM_EC_KEY_PAIR_GEN = const(0x1040)
_CKM_ECDSA_SHA256 = const(0x1044)
_CKM_SHA256 = const(0x250)
_CKR_SIGNATURE_INVALID = const(0xC0)
_CKR_SIGNATURE_LEN_RANGE = const(0xC1)
_CKR_USER_ALREADY_LOGGED_IN = const(0x100)
_CKR_ATTRIBUTE_VALUE_INVALID = const(0x13)


def _b(v):
    return v.encode() if isinstance(v, str) else v


def _data(v, what):
    # PEM as str is fine; anything else but bytes-like gets a clear message
    if isinstance(v, str):
        return v.encode()
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError("%s: give the file's bytes or PEM text, e.g. open(path, 'rb').read(), "
                        "not %s" % (what, type(v).__name__))
    return v


class LabelTaken(PKCS11Error):
    """An object of that class with that label exists; pass replace=True to replace it."""


class KeyMismatch(PKCS11Error):
    """A certificate and the token's key it would pair with (same default labels,
    as TLS uses them) have different public keys; pass force=True to store anyway."""


def _same_public(pk, a):
    # pk: a parsed public key dict; a: [CKA_KEY_TYPE, CKA_EC_POINT, CKA_MODULUS, CKA_PUBLIC_EXPONENT]
    if pk is None:
        return False
    if pk["type"] == "ec":
        return a[0] == _CKK_EC and a[1] is not None and bytes(a[1]) == ec_point_der(pk["q"])
    return a[0] == _CKK_RSA and a[2] is not None and bytes(a[2]).lstrip(b"\0") == bytes(pk["n"]).lstrip(b"\0") \
        and bytes(a[3]).lstrip(b"\0") == bytes(pk["e"]).lstrip(b"\0")


class Object:
    """A token or session object seen through a Session."""

    def __init__(self, session, handle):
        self.session = session
        self.handle = handle

    def __getitem__(self, attr):
        return self.session.p11.C_GetAttributeValue(self.session.h, self.handle, [attr])[0]

    def __setitem__(self, attr, value):
        self.session.p11.C_SetAttributeValue(self.session.h, self.handle, [(attr, _b(value))])

    def get(self, *attrs):
        """Several attributes at once (a list)."""
        return self.session.p11.C_GetAttributeValue(self.session.h, self.handle, list(attrs))

    @property
    def label(self):
        return self[_CKA_LABEL]

    @property
    def id(self):
        return self[_CKA_ID]

    def destroy(self):
        self.session.p11.C_DestroyObject(self.session.h, self.handle)

    def __eq__(self, other):
        return isinstance(other, Object) and other.handle == self.handle

    def __hash__(self):
        return self.handle

    def __repr__(self):
        # the label and handle only: never a value
        try:
            label = self.label
        except PKCS11Error:
            label = None
        return "<%s %d label=%r>" % (type(self).__name__, self.handle, label)


class DataObject(Object):
    pass


class Certificate(Object):
    @property
    def der(self):
        return self[_CKA_VALUE]


class Key(Object):
    @property
    def key_type(self):
        return self[_CKA_KEY_TYPE]

    def _mech(self, mechanism, mechanism_param):
        if mechanism is None:
            mechanism = _CKM_ECDSA_SHA256 if self.key_type == _CKK_EC else _CKM_SHA256_RSA_PKCS
        if mechanism_param is not None:
            mechanism = (mechanism, mechanism_param)
        return mechanism


class PrivateKey(Key):
    def sign(self, data, mechanism=None, mechanism_param=None):
        """Sign data; the default mechanism hashes with SHA-256 (CKM_ECDSA_SHA256
        or CKM_SHA256_RSA_PKCS).  ECDSA signatures are raw r||s (64 bytes)."""
        p11 = self.session.p11
        p11.C_SignInit(self.session.h, self._mech(mechanism, mechanism_param), self.handle)
        return p11.C_Sign(self.session.h, data)


class PublicKey(Key):
    def verify(self, data, signature, mechanism=None, mechanism_param=None):
        """True when the signature is valid, False when it is not."""
        p11 = self.session.p11
        p11.C_VerifyInit(self.session.h, self._mech(mechanism, mechanism_param), self.handle)
        try:
            p11.C_Verify(self.session.h, data, signature)
        except PKCS11Error as e:
            if e.rv in (_CKR_SIGNATURE_INVALID, _CKR_SIGNATURE_LEN_RANGE):
                return False
            raise
        return True


_TYPES = {_CKO_DATA: DataObject, _CKO_CERTIFICATE: Certificate,
          _CKO_PUBLIC_KEY: PublicKey, _CKO_PRIVATE_KEY: PrivateKey}


def _kind(data):
    """'cert', 'public' or 'private' for PEM text, None for DER."""
    if b"-----BEGIN" not in data:
        return None
    if b"CERTIFICATE-----" in data:
        return "cert"
    if b"PRIVATE KEY-----" in data:
        return "private"
    if b"PUBLIC KEY-----" in data:
        return "public"
    return "unknown"


class Session:
    """An open session (a context manager)."""

    def __init__(self, rw=True, user_pin=None, handle=None):
        p11 = function_list()
        self.p11 = p11
        self._own = False
        self._opened = handle is None
        if handle is not None:
            self.h = handle
            return
        self._own = not p11.is_initialized()
        if self._own:
            p11.C_Initialize()
        self.h = 0
        try:
            self.h = p11.C_OpenSession(p11.C_GetSlotList(True)[0],
                                       _CKF_SERIAL_SESSION | (_CKF_RW_SESSION if rw else 0))
            if user_pin is not None:
                self.login(user_pin)
        except Exception:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<pkcs11 Session %d>" % self.h

    def close(self):
        p11 = self.p11
        if self.h and self._opened and p11.is_initialized():
            try:
                p11.C_CloseSession(self.h)
            except PKCS11Error:
                pass
        self.h = 0
        if self._own and p11.is_initialized() and not p11.session_count():
            p11.C_Finalize()
        self._own = False

    # -- login --------------------------------------------------------------

    def login(self, pin, user_type=_CKU_USER):
        try:
            self.p11.C_Login(self.h, user_type, pin)
        except PKCS11Error as e:
            if e.rv != _CKR_USER_ALREADY_LOGGED_IN:
                raise

    def logout(self):
        self.p11.C_Logout(self.h)

    def set_pin(self, old_pin, new_pin):
        self.p11.C_SetPIN(self.h, old_pin, new_pin)

    def init_pin(self, pin):
        """C_InitPIN: the SO (logged in: login(so_pin, 0)) sets a new user PIN;
        this unlocks a user PIN locked after too many wrong tries."""
        self.p11.C_InitPIN(self.h, pin)

    def token_info(self):
        return self.p11.C_GetTokenInfo(0)

    # -- objects ------------------------------------------------------------

    def object(self, handle):
        """The typed Object for a handle."""
        cls = self.p11.C_GetAttributeValue(self.h, handle, [_CKA_CLASS])[0]
        return _TYPES.get(cls, Object)(self, handle)

    def _template(self, attrs, object_class, key_type, label, id):
        t = []
        if attrs:
            t.extend(attrs.items() if isinstance(attrs, dict) else attrs)
        for a, v in ((_CKA_CLASS, object_class), (_CKA_KEY_TYPE, key_type),
                     (_CKA_LABEL, label), (_CKA_ID, id)):
            if v is not None:
                t.append((a, _b(v)))
        return t

    def _find(self, n, attrs, object_class, key_type, label, id):
        # C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal; the objects'
        # class is asked (C_GetAttributeValue) only when the search did not name it
        p11 = self.p11
        p11.C_FindObjectsInit(self.h, self._template(attrs, object_class, key_type, label, id))
        try:
            handles = p11.C_FindObjects(self.h, n)
        finally:
            p11.C_FindObjectsFinal(self.h)
        if object_class is None:
            return [self.object(h) for h in handles]
        cls = _TYPES.get(object_class, Object)
        return [cls(self, h) for h in handles]

    def find_objects(self, attrs=None, object_class=None, key_type=None, label=None, id=None):
        """All visible objects matching; attrs: a dict or list of (type, value)."""
        return self._find(1000, attrs, object_class, key_type, label, id)

    get_objects = find_objects

    def _none(self, what):
        # NoSuchKey, with a hint when private objects are hidden for want of a login
        msg = "no %s matches" % what
        try:
            if self.token_info()["flags"] & 0x4 and self.p11.C_GetSessionInfo(self.h)["state"] in (0, 2):
                msg += " (the token has a user PIN and this session is not logged in: private " \
                       "objects are hidden; open_session(user_pin=...) or session.login(pin))"
        except PKCS11Error:
            pass
        return NoSuchKey(None, msg)

    def get_object(self, attrs=None, object_class=None, key_type=None, label=None, id=None):
        """Exactly one matching object, else NoSuchKey / MultipleObjectsReturned."""
        found = self._find(2, attrs, object_class, key_type, label, id)
        if not found:
            raise self._none("object")
        if len(found) > 1:
            raise MultipleObjectsReturned(None, "several objects match")
        return found[0]

    def get_key(self, object_class=None, key_type=None, label=None, id=None):
        """Exactly one matching key (private or public unless object_class says)."""
        if object_class is None:
            found = [o for o in self.find_objects(None, None, key_type, label, id)
                     if isinstance(o, Key)]
            if not found:
                raise self._none("key")
            if len(found) > 1:
                raise MultipleObjectsReturned(None, "%d keys match" % len(found))
            return found[0]
        return self.get_object(None, object_class, key_type, label, id)

    def create_object(self, attrs):
        """C_CreateObject from a dict or list of (type, value); returns the Object."""
        return self.object(self.p11.C_CreateObject(self.h, self._template(attrs, None, None, None, None)))

    def _taken(self, pairs, replace):
        """The objects in the way of new ones [(class, label)]: LabelTaken unless
        replace (then the caller destroys them once the new object exists)."""
        old = []
        for cls, label in pairs:
            old.extend(self._find(16, None, cls, None, label, None))
        if old and not replace:
            raise LabelTaken(None, "the token already has %r; pass replace=True to replace it"
                             % (old[0].label,))
        return old

    def _check_pair(self, cert_pk, key_pk, force):
        """Refuse to leave the default certificate and key (the pair TLS uses)
        with different public keys: cert_pk is the certificate's public key,
        key_pk the key's (parsed dicts; None: read it from the token)."""
        if force:
            return
        if cert_pk is None:
            try:
                c = self.get_object(object_class=_CKO_CERTIFICATE, label=labels.LABEL_DEVICE_CERTIFICATE)
            except NoSuchKey:
                return
            cert_pk = crypto.parse_certificate(c[_CKA_VALUE])["public_key"]
            a = [_CKK_EC, ec_point_der(key_pk["q"]), None, None] if key_pk["type"] == "ec" \
                else [_CKK_RSA, None, key_pk["n"], key_pk["e"]]
            if not _same_public(cert_pk, a):
                raise KeyMismatch(None, "the token's %r is the certificate of another key: store its "
                                  "new certificate too (import_certificate(..., replace=True)), or "
                                  "pass force=True" % labels.LABEL_DEVICE_CERTIFICATE)
            return
        try:
            k = self.get_object(object_class=_CKO_PRIVATE_KEY, label=labels.LABEL_DEVICE_PRIVATE_KEY)
        except NoSuchKey:
            return          # no key yet: nothing to mismatch
        try:
            a = k.get(_CKA_KEY_TYPE, _CKA_EC_POINT, _CKA_MODULUS, _CKA_PUBLIC_EXPONENT)
        except PKCS11Error as e:
            a = e.values            # the attributes of the other key type are absent
            if a is None:
                raise
        if not _same_public(cert_pk, a):
            raise KeyMismatch(None, "this certificate is not for the token's %r (another public "
                              "key); pass force=True to store it anyway" % labels.LABEL_DEVICE_PRIVATE_KEY)

    def _replace(self, old):
        for o in old:
            o.destroy()

    def generate_keypair(self, key_type=_CKK_EC, label=None, public_label=None, id=b"",
                         store=True, private=True, replace=False, force=False):
        """An EC P-256 key pair made on the device: (PublicKey, PrivateKey).
        Labels default to the FreeRTOS device key labels. A taken label raises
        LabelTaken unless replace=True; replacing the device key while its
        certificate is stored raises KeyMismatch unless force=True."""
        if key_type != _CKK_EC:
            raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "only EC P-256 keys are generated")
        label = _b(label) if label is not None else labels.LABEL_DEVICE_PRIVATE_KEY
        if public_label is None:
            public_label = labels.LABEL_DEVICE_PUBLIC_KEY if label == labels.LABEL_DEVICE_PRIVATE_KEY else label
        old = self._taken(((_CKO_PRIVATE_KEY, label), (_CKO_PUBLIC_KEY, _b(public_label))), replace)
        if old and label == labels.LABEL_DEVICE_PRIVATE_KEY and not force:
            try:
                self.get_object(object_class=_CKO_CERTIFICATE, label=labels.LABEL_DEVICE_CERTIFICATE)
                raise KeyMismatch(None, "a new %r would not match the stored %r: destroy that "
                                  "certificate first, or pass force=True"
                                  % (label, labels.LABEL_DEVICE_CERTIFICATE))
            except NoSuchKey:
                pass
        pub_t = [(_CKA_TOKEN, store), (_CKA_LABEL, _b(public_label)), (_CKA_ID, _b(id)),
                 (_CKA_EC_PARAMS, P256_PARAMS), (_CKA_VERIFY, True)]
        priv_t = [(_CKA_TOKEN, store), (_CKA_LABEL, label), (_CKA_ID, _b(id)),
                  (_CKA_PRIVATE, private), (_CKA_SIGN, True)]
        hp, hk = self.p11.C_GenerateKeyPair(self.h, _CKM_EC_KEY_PAIR_GEN, pub_t, priv_t)
        self._replace(old)
        return PublicKey(self, hp), PrivateKey(self, hk)

    def import_key(self, data, label=None, id=b"", store=True, private=True, public_label=None,
                   replace=False, force=False):
        """A private key (PKCS#8, SEC1 or PKCS#1; PEM or DER) -> PrivateKey, or a
        public key (SubjectPublicKeyInfo) -> PublicKey.  With public_label, the
        public half of a private key is stored too (as a PublicKey object).
        A taken label raises LabelTaken unless replace=True; a device key that
        does not match the stored device certificate raises KeyMismatch unless
        force=True."""
        data = _data(data, "import_key")
        kind = _kind(data)
        if kind == "public":
            pk = crypto.parse_public_key(data)
            label = _b(label) if label is not None else labels.LABEL_DEVICE_PUBLIC_KEY
            old = self._taken(((_CKO_PUBLIC_KEY, label),), replace)
            o = self._import_public(pk, label, id, store)
            self._replace(old)
            return o
        try:
            k = crypto.parse_private_key(data)
        except ValueError as e:
            if kind is None:
                try:
                    return self._import_public(crypto.parse_public_key(data), label, id, store)
                except (ValueError, IndexError):
                    pass
            raise error(_CKR_ATTRIBUTE_VALUE_INVALID, "not a supported private key: %s (EC P-256 "
                        "or RSA; PKCS#8, SEC1 or PKCS#1, unencrypted)" % e)
        label = _b(label) if label is not None else labels.LABEL_DEVICE_PRIVATE_KEY
        pairs = [(_CKO_PRIVATE_KEY, label)]
        if public_label is not None:
            pairs.append((_CKO_PUBLIC_KEY, _b(public_label)))
        old = self._taken(pairs, replace)
        if label == labels.LABEL_DEVICE_PRIVATE_KEY:
            self._check_pair(None, {"type": "ec", "q": k["q"]} if k["type"] == "ec"
                             else {"type": "rsa", "n": k["n"], "e": k["e"]}, force)
        t = [(_CKA_CLASS, _CKO_PRIVATE_KEY), (_CKA_TOKEN, store), (_CKA_LABEL, label),
             (_CKA_ID, _b(id)), (_CKA_PRIVATE, private), (_CKA_SIGN, True)]
        if k["type"] == "ec":
            t += [(_CKA_KEY_TYPE, _CKK_EC), (_CKA_EC_PARAMS, P256_PARAMS), (_CKA_VALUE, k["d"])]
            pub = {"type": "ec", "q": k["q"]}
        else:
            t += [(_CKA_KEY_TYPE, _CKK_RSA)]
            for a, n in ((_CKA_MODULUS, "n"), (_CKA_PUBLIC_EXPONENT, "e"), (_CKA_PRIVATE_EXPONENT, "d"),
                         (_CKA_PRIME_1, "p"), (_CKA_PRIME_2, "q"), (_CKA_EXPONENT_1, "dp"),
                         (_CKA_EXPONENT_2, "dq"), (_CKA_COEFFICIENT, "qinv")):
                t.append((a, k[n]))
            pub = {"type": "rsa", "n": k["n"], "e": k["e"]}
        k = None
        h = self.p11.C_CreateObject(self.h, t)
        t = None
        if public_label is not None:
            self._import_public(pub, public_label, id, store)
        self._replace(old)
        return PrivateKey(self, h)

    def _import_public(self, k, label, id, store):
        label = _b(label) if label is not None else labels.LABEL_DEVICE_PUBLIC_KEY
        t = [(_CKA_CLASS, _CKO_PUBLIC_KEY), (_CKA_TOKEN, store), (_CKA_LABEL, label),
             (_CKA_ID, _b(id)), (_CKA_VERIFY, True)]
        if k["type"] == "ec":
            t += [(_CKA_KEY_TYPE, _CKK_EC), (_CKA_EC_PARAMS, P256_PARAMS), (_CKA_EC_POINT, ec_point_der(k["q"]))]
        else:
            t += [(_CKA_KEY_TYPE, _CKK_RSA), (_CKA_MODULUS, k["n"]), (_CKA_PUBLIC_EXPONENT, k["e"])]
        return PublicKey(self, self.p11.C_CreateObject(self.h, t))

    def import_certificate(self, data, label=None, id=b"", store=True, replace=False, force=False,
                           trusted=None):
        """An X.509 certificate (PEM or DER) -> Certificate ("Device Cert" by
        default).  A taken label raises LabelTaken unless replace=True; a
        "Device Cert" that is not for the token's "Device Priv TLS Key" raises
        KeyMismatch unless force=True.  trusted: CKA_TRUSTED (a trust anchor
        p11tls may use; set only by the SO on a token with an SO PIN); None:
        True for the root CA label ("Root Cert")."""
        data = _data(data, "import_certificate")
        label = _b(label) if label is not None else labels.LABEL_DEVICE_CERTIFICATE
        if trusted is None:
            trusted = label == labels.LABEL_ROOT_CERTIFICATE
        old = self._taken(((_CKO_CERTIFICATE, label),), replace)
        if label == labels.LABEL_DEVICE_CERTIFICATE and not force:
            self._check_pair(crypto.parse_certificate(data)["public_key"], None, force)
        t = [(_CKA_CLASS, _CKO_CERTIFICATE), (_CKA_CERTIFICATE_TYPE, _CKC_X_509),
             (_CKA_TOKEN, store), (_CKA_LABEL, label), (_CKA_ID, _b(id)), (_CKA_VALUE, data)]
        if trusted:
            t.append((0x86, True))      # CKA_TRUSTED
        c = Certificate(self, self.p11.C_CreateObject(self.h, t))
        self._replace(old)
        return c

    def import_pem(self, data, label=None, **kw):
        """A key or a certificate from PEM (DER works too): the object made.
        Without a label, the label follows what the PEM is: a CA certificate
        (issuer == subject) "Root Cert", another certificate "Device Cert", a
        private key "Device Priv TLS Key", a public key "Device Pub TLS Key"."""
        data = _data(data, "import_pem")
        kind = _kind(data)
        c = None
        if kind in ("cert", None):
            try:
                c = crypto.parse_certificate(data)
            except (ValueError, IndexError):
                if kind == "cert":
                    raise
        if c is not None:
            if label is None and c["issuer"] == c["subject"]:
                label = labels.LABEL_ROOT_CERTIFICATE
            c = None
            return self.import_certificate(data, label, **kw)
        return self.import_key(data, label, **kw)

    # -- crypto -------------------------------------------------------------

    def generate_random(self, n):
        return self.p11.C_GenerateRandom(self.h, n)

    def digest(self, data, mechanism=_CKM_SHA256):
        self.p11.C_DigestInit(self.h, mechanism)
        return self.p11.C_Digest(self.h, data)


def open_session(rw=True, user_pin=None):
    """A Session (use it in a `with` block): C_Initialize when needed,
    C_GetSlotList, C_OpenSession and, with user_pin, C_Login."""
    return Session(rw, user_pin)
