"""Token state between C_Initialize and C_Finalize: sessions, login state and
PINs, the object table, active operations.

Login model:
  * A fresh token has no user PIN: no login is needed and CKA_PRIVATE objects
    are usable by every session (the FreeRTOS call sequence works unchanged).
    C_Login(CKU_USER) with config "default_user_pin" ("0000", corePKCS11's
    default, which FreeRTOS code sends on every session) succeeds on such a
    token; any other PIN gets CKR_USER_PIN_NOT_INITIALIZED.
  * Once a user PIN exists (C_InitToken + SO login + C_InitPIN, or C_SetPIN
    with an empty old PIN on a token that has none, see api.C_SetPIN),
    CKA_PRIVATE objects are hidden from C_FindObjects and refused with
    CKR_USER_NOT_LOGGED_IN until C_Login(CKU_USER).
  * PINs are stored as salted PBKDF2-HMAC-SHA256 verifiers, never in clear
    (P = PBKDF2(PIN, salt); the record holds salt + HMAC(P, "pin verifier");
    HMAC(P, "pin kek") wraps the user key).
  * Encryption at rest (store.py): secret values are sealed under the device
    key; a CKA_PRIVATE object's also under a random user key once a user PIN
    exists.  The user key is kept in the token record only wrapped under the
    user PIN's KEK and the SO PIN's KEK (so C_InitPIN by the SO keeps the
    objects when the SO PIN existed before the user key was made), and is in
    RAM only while a user or SO is logged in.  Wrong
    PINs are counted on flash; after config "max_pin_failures" in a row the PIN
    is locked (CKR_PIN_LOCKED; C_InitPIN by the SO unlocks the user PIN).
  * A damaged token record (token.rec) puts the token in an error state: login
    fails with CKR_DEVICE_ERROR and private objects stay hidden; C_InitToken
    starts afresh.
Threads: the changes of shared state (sessions, objects, login, PINs) are
serialized by a lock; a session itself should be used by one thread at a time
(each thread opens its own, as PKCS#11 applications do).
Object handles: token objects keep the number in their file name (stable
across C_Finalize/C_Initialize and restarts); session objects get handles
from 0x10000000 up and live in RAM until their session closes.
"""

from micropython import const

from . import config, objects
from .errors import error
from .devkey import hmac_sha256
from .store import CorruptRecord, Store

_CKU_SO = const(0)
_CKU_USER = const(1)
_CKS_RO_PUBLIC_SESSION = const(0)
_CKS_RO_USER_FUNCTIONS = const(1)
_CKS_RW_PUBLIC_SESSION = const(2)
_CKS_RW_USER_FUNCTIONS = const(3)
_CKS_RW_SO_FUNCTIONS = const(4)
_CKF_RW_SESSION = const(0x2)
_CKF_SERIAL_SESSION = const(0x4)
_CKF_RNG = const(0x1)
_CKF_LOGIN_REQUIRED = const(0x4)
_CKF_USER_PIN_INITIALIZED = const(0x8)
_CKF_TOKEN_INITIALIZED = const(0x400)
_CKF_USER_PIN_COUNT_LOW = const(0x10000)
_CKF_USER_PIN_FINAL_TRY = const(0x20000)
_CKF_USER_PIN_LOCKED = const(0x40000)
_CKF_SO_PIN_COUNT_LOW = const(0x100000)
_CKF_SO_PIN_FINAL_TRY = const(0x200000)
_CKF_SO_PIN_LOCKED = const(0x400000)
_CKA_TOKEN = const(0x1)
_CKA_PRIVATE = const(0x2)
_CKA_DESTROYABLE = const(0x172)
_CKA_TRUSTED = const(0x86)
_CKR_ATTRIBUTE_READ_ONLY = const(0x10)
_CKR_ACTION_PROHIBITED = const(0x1B)
_CKR_DEVICE_ERROR = const(0x30)
_CKR_DEVICE_MEMORY = const(0x31)
_CKR_OBJECT_HANDLE_INVALID = const(0x82)
_CKR_OPERATION_ACTIVE = const(0x90)
_CKR_OPERATION_NOT_INITIALIZED = const(0x91)
_CKR_PIN_INCORRECT = const(0xA0)
_CKR_PIN_LEN_RANGE = const(0xA2)
_CKR_PIN_LOCKED = const(0xA4)
_CKR_SESSION_COUNT = const(0xB1)
_CKR_SESSION_HANDLE_INVALID = const(0xB3)
_CKR_SESSION_PARALLEL_NOT_SUPPORTED = const(0xB4)
_CKR_SESSION_READ_ONLY = const(0xB5)
_CKR_SESSION_EXISTS = const(0xB6)
_CKR_SESSION_READ_ONLY_EXISTS = const(0xB7)
_CKR_SESSION_READ_WRITE_SO_EXISTS = const(0xB8)
_CKR_USER_ALREADY_LOGGED_IN = const(0x100)
_CKR_USER_NOT_LOGGED_IN = const(0x101)
_CKR_USER_PIN_NOT_INITIALIZED = const(0x102)
_CKR_USER_TYPE_INVALID = const(0x103)
_CKR_USER_ANOTHER_ALREADY_LOGGED_IN = const(0x104)
_CKR_ARGUMENTS_BAD = const(0x7)

# token record fields
_M_LABEL = const(1)
_M_SERIAL = const(2)
_M_SO = const(3)          # salt (16) + PBKDF2 hash (32)
_M_SO_ITER = const(4)
_M_USER = const(5)
_M_USER_ITER = const(6)
_M_SO_FAIL = const(7)
_M_USER_FAIL = const(8)
_M_UWRAP_U = const(9)     # nonce (16) + user key XOR HMAC(user PIN KEK, nonce)
_M_UWRAP_S = const(10)    # the same under the SO PIN's KEK

SESSION_OBJECT_BASE = const(0x10000000)
PIN_MIN = const(4)
PIN_MAX = const(64)
DEFAULT_LABEL = b"MicroPython PKCS#11 token"


def pad(b, n):
    """Blank-padded fixed-size field (CK_TOKEN_INFO style)."""
    return (b + b" " * n)[:n]


class Obj:
    """A handle's object.  Token objects keep only the `objects.INDEX`
    attributes in RAM (`attrs`); session objects keep all of them."""

    def __init__(self, handle, attrs, owner=0, bad=None):
        self.handle = handle
        self.attrs = attrs
        self.owner = owner      # creating session's handle; 0 for token objects
        self.bad = bad          # why the record is unusable, None when fine

    def __repr__(self):
        return "<pkcs11 object %d>" % self.handle


class SessionState:
    """One open session's state (the Pythonic layer's Session is pythonic.Session)."""

    def __init__(self, handle, slot, rw):
        self.handle = handle
        self.slot = slot
        self.rw = rw
        self.find = None        # pending handles while C_FindObjects* is active
        self.op = None          # active mechanisms.Operation (sign/verify/digest)

    def __repr__(self):
        return "<pkcs11 session %d>" % self.handle


try:
    from _thread import allocate_lock as _new_lock

    def _locked(method):
        """Serialize the token-state changes between threads (one lock per Token)."""
        def locked(self, *args):
            with self._lock:
                return method(self, *args)
        return locked
except ImportError:
    # no threads on this firmware: nothing to serialize, no wrappers to pay for
    def _new_lock():
        return None

    def _locked(method):
        return method


def _pin_bytes(pin):
    if isinstance(pin, str):
        return pin.encode()
    if isinstance(pin, (bytes, bytearray, memoryview)):
        return bytes(pin)
    raise error(_CKR_ARGUMENTS_BAD, "a PIN is bytes or str")


class Token:
    def __init__(self, slot):
        self.slot = slot
        self._lock = _new_lock()
        self.store = Store(config.token_dir())
        self.sessions = {}
        self.login = None
        self.objects = {}
        self.meta = {}
        self.broken = None      # why the token record is unusable
        self._uk = None         # the unlocked user key (32 bytes) while logged in
        self._so_kek = None     # the SO PIN's KEK while the SO is logged in
        self._next_session = 1
        self._next_sobj = SESSION_OBJECT_BASE
        self._next_token = 1
        self._load()

    # -- loading and the token record ---------------------------------------

    def _load(self):
        st = self.store
        try:
            meta = st.load_meta()
        except CorruptRecord as e:
            self.broken = "token record damaged (%s)" % e
            meta = None
        if meta is None and self.broken is None and st.scan():
            # objects without a token record: someone removed it (a PIN-less
            # token that still holds the keys must not come out of that)
            self.broken = "token record missing while objects exist"
        if meta is None and self.broken is None:
            from . import crypto
            meta = {_M_LABEL: DEFAULT_LABEL, _M_SERIAL: crypto.random_bytes(8).hex().encode()}
            try:
                st.ensure()
                st.save_meta(meta)
            except OSError:
                pass            # read-only storage: works until something is written
        self.meta = meta or {}
        top = 0
        handles = st.scan()
        for h in handles:
            try:
                self.objects[h] = Obj(h, objects.index_of(st.load(h)))
            except CorruptRecord as e:
                self.objects[h] = Obj(h, {}, bad=str(e))
            except (OSError, KeyError, ValueError):
                self.objects[h] = Obj(h, {}, bad="unreadable record")
            top = h
        self._next_token = top + 1
        if self.broken is None:
            st.reconcile(handles)

    def _save_meta(self, meta):
        try:
            self.store.ensure()
            self.store.save_meta(meta)
        except OSError as e:
            raise error(_CKR_DEVICE_MEMORY if e.args and e.args[0] == 28 else _CKR_DEVICE_ERROR,
                        "cannot write the token record")
        self.meta = meta

    def label(self):
        """The token label (CK_TOKEN_INFO.label, unpadded)."""
        return self.meta.get(_M_LABEL, b"")

    def serial(self):
        """The token serial number (CK_TOKEN_INFO.serialNumber, unpadded)."""
        return self.meta.get(_M_SERIAL, b"")

    def space(self):
        """(total, free) bytes of the token storage."""
        return self.store.space()

    def session_count(self, rw_only=False):
        if rw_only:
            return sum(1 for s in self.sessions.values() if s.rw)
        return len(self.sessions)

    def user_pin_set(self):
        return self.broken is not None or _M_USER in self.meta

    def can_see_private(self):
        return self.login == _CKU_USER or not self.user_pin_set()

    def corrupted(self):
        return [(o.handle, o.bad) for o in self.objects.values() if o.bad]

    def flags(self):
        m = self.meta
        f = _CKF_RNG | _CKF_TOKEN_INITIALIZED
        if self.user_pin_set():
            f |= _CKF_LOGIN_REQUIRED
        if _M_USER in m:
            f |= _CKF_USER_PIN_INITIALIZED
        lim = config.get("max_pin_failures")
        for key, low, final, locked in ((_M_USER_FAIL, _CKF_USER_PIN_COUNT_LOW, _CKF_USER_PIN_FINAL_TRY,
                                         _CKF_USER_PIN_LOCKED),
                                        (_M_SO_FAIL, _CKF_SO_PIN_COUNT_LOW, _CKF_SO_PIN_FINAL_TRY,
                                         _CKF_SO_PIN_LOCKED)):
            n = m.get(key, 0)
            if n >= lim:
                f |= locked
            elif n == lim - 1:
                f |= final | low
            elif n:
                f |= low
        return f

    # -- sessions -------------------------------------------------------------

    def session(self, h):
        s = self.sessions.get(h) if type(h) is int else None
        if s is None:
            raise error(_CKR_SESSION_HANDLE_INVALID)
        return s

    @_locked
    def open_session(self, flags):
        if not flags & _CKF_SERIAL_SESSION:
            raise error(_CKR_SESSION_PARALLEL_NOT_SUPPORTED, "CKF_SERIAL_SESSION is required")
        if len(self.sessions) >= config.get("max_sessions"):
            raise error(_CKR_SESSION_COUNT, "at most %d sessions" % config.get("max_sessions"))
        rw = bool(flags & _CKF_RW_SESSION)
        if not rw and self.login == _CKU_SO:
            raise error(_CKR_SESSION_READ_WRITE_SO_EXISTS)
        h = self._next_session
        self._next_session += 1
        self.sessions[h] = SessionState(h, self.slot, rw)
        return h

    @_locked
    def close_session(self, h):
        self._close(h)

    def _close(self, h):
        s = self.session(h)
        s.op = s.find = None
        del self.sessions[h]
        for o in [o for o in self.objects.values() if o.owner == h]:
            del self.objects[o.handle]
        if not self.sessions:
            self.login = None
            self._lock_keys()

    @_locked
    def close_all(self):
        for h in list(self.sessions):
            self._close(h)

    def state(self, s):
        if self.login == _CKU_SO:
            return _CKS_RW_SO_FUNCTIONS
        user = self.login == _CKU_USER
        if s.rw:
            return _CKS_RW_USER_FUNCTIONS if user else _CKS_RW_PUBLIC_SESSION
        return _CKS_RO_USER_FUNCTIONS if user else _CKS_RO_PUBLIC_SESSION

    # -- objects --------------------------------------------------------------

    def obj(self, h, invalid=_CKR_OBJECT_HANDLE_INVALID):
        """The object of handle h, usable by the current login state."""
        o = self.objects.get(h) if type(h) is int else None
        if o is None:
            raise error(invalid)
        if o.bad:
            raise error(_CKR_DEVICE_ERROR, "object %d: %s" % (h, o.bad))
        if o.attrs.get(_CKA_PRIVATE) and not self.can_see_private():
            raise error(_CKR_USER_NOT_LOGGED_IN, "object %d is private" % h)
        return o

    def attrs(self, o):
        """The full attributes of an object (token objects: read from flash)."""
        if o.owner:
            return o.attrs
        try:
            return self.store.load(o.handle)
        except CorruptRecord as e:
            o.bad = str(e)
        except (OSError, KeyError, ValueError):
            o.bad = "unreadable record"
        raise error(_CKR_DEVICE_ERROR, "object %d: %s" % (o.handle, o.bad))

    def _so_only(self):
        """True when a change needs the SO: the token has an SO PIN and the SO
        is not logged in."""
        return _M_SO in self.meta and self.login != _CKU_SO

    def _check_trusted(self, old, new):
        """CKA_TRUSTED is set only by the SO (or on a token with no SO PIN), and
        a trusted object (the provisioned CA) is changed or destroyed only by
        the SO (finding 8)."""
        if not self._so_only():
            return
        if old is not None and old.get(_CKA_TRUSTED):
            raise error(_CKR_ACTION_PROHIBITED, "a trusted object is changed only by the SO")
        if new is not None and new.get(_CKA_TRUSTED):
            raise error(_CKR_ATTRIBUTE_READ_ONLY, "CKA_TRUSTED is set only by the SO")

    def _check_write(self, s, attrs):
        if attrs.get(_CKA_TOKEN) and not s.rw:
            raise error(_CKR_SESSION_READ_ONLY, "token objects need a read/write session")
        if attrs.get(_CKA_PRIVATE) and not self.can_see_private():
            raise error(_CKR_USER_NOT_LOGGED_IN, "private objects need C_Login")

    def _save(self, h, attrs):
        try:
            self.store.ensure()
            self.store.save(h, attrs, objects.secret_types(attrs), bool(attrs.get(_CKA_PRIVATE)))
        except OSError as e:
            if e.args and e.args[0] == 28:
                raise error(_CKR_DEVICE_MEMORY, "the token storage is full")
            raise error(_CKR_DEVICE_ERROR, "cannot write the object record")
        except ValueError:
            raise error(_CKR_DEVICE_ERROR, "cannot encode the object record")

    @_locked
    def add(self, s, attrs):
        """Store a validated new object; returns its handle."""
        return self._add(s, attrs)

    @_locked
    def add_keypair(self, s, pub, priv):
        """Store a generated key pair (both or neither); returns the two handles."""
        self._check_write(s, pub)
        self._check_write(s, priv)
        hp = self._add(s, pub)
        try:
            hk = self._add(s, priv)
        except Exception:
            self._destroy(s, hp)
            raise
        return hp, hk

    def _add(self, s, attrs):
        self._check_write(s, attrs)
        self._check_trusted(None, attrs)
        if attrs[_CKA_TOKEN]:
            if sum(1 for o in self.objects.values() if not o.owner) >= config.get("max_objects"):
                raise error(_CKR_DEVICE_MEMORY, "at most %d token objects" % config.get("max_objects"))
            h = self._next_token
            self._save(h, attrs)
            self._next_token = h + 1
            self.objects[h] = Obj(h, objects.index_of(attrs))
        else:
            h = self._next_sobj
            self._next_sobj = h + 1
            self.objects[h] = Obj(h, attrs, owner=s.handle)
        return h

    @_locked
    def destroy(self, s, h):
        self._destroy(s, h)

    def _destroy(self, s, h):
        o = self.objects.get(h) if type(h) is int else None
        if o is None:
            raise error(_CKR_OBJECT_HANDLE_INVALID)
        if o.bad:
            # a damaged record can always be removed
            if not s.rw:
                raise error(_CKR_SESSION_READ_ONLY)
        else:
            o = self.obj(h)
            attrs = self.attrs(o)
            self._check_write(s, attrs)
            if not attrs.get(_CKA_DESTROYABLE, True):
                raise error(_CKR_ACTION_PROHIBITED, "the object is not destroyable")
            self._check_trusted(attrs, None)
        if not o.owner:
            try:
                self.store.delete(h)
            except OSError:
                raise error(_CKR_DEVICE_ERROR, "cannot remove the object record")
        del self.objects[h]

    @_locked
    def set_attrs(self, s, h, template):
        o = self.obj(h)
        attrs = self.attrs(o)
        new = objects.update(attrs, template)
        self._check_write(s, attrs)
        self._check_trusted(attrs, new)
        if o.owner:
            o.attrs = new
        else:
            self._save(h, new)
            o.attrs = objects.index_of(new)

    @_locked
    def find_init(self, s, template):
        if s.find is not None:
            raise error(_CKR_OPERATION_ACTIVE, "a search is active")
        tmpl = objects.search_template(template)
        quick = objects.index_covers(tmpl)
        see = self.can_see_private()
        found = []
        for h in sorted(self.objects):
            o = self.objects[h]
            a = o.attrs
            if o.bad or (a.get(_CKA_PRIVATE) and not see):
                continue
            if not objects.matches(a, {t: v for t, v in tmpl.items() if t in objects.INDEX}):
                continue
            if not quick:
                try:
                    a = self.attrs(o)
                except Exception:
                    continue
                if not objects.matches(a, tmpl):
                    continue
            found.append(h)
        s.find = found

    def find(self, s, n):
        if s.find is None:
            raise error(_CKR_OPERATION_NOT_INITIALIZED, "call C_FindObjectsInit first")
        out = s.find[:n]
        s.find = s.find[n:]
        return out

    def find_final(self, s):
        if s.find is None:
            raise error(_CKR_OPERATION_NOT_INITIALIZED, "no search is active")
        s.find = None

    # -- PINs and login -------------------------------------------------------

    def _hash_pin(self, pin, salt, iterations):
        from . import crypto
        return crypto.pbkdf2_sha256(pin, salt, iterations)

    def _new_pin(self, meta, field, iter_field, fail_field, pin):
        """Store a new PIN verifier in meta; returns the PIN's KEK."""
        from . import crypto
        if not PIN_MIN <= len(pin) <= PIN_MAX:
            raise error(_CKR_PIN_LEN_RANGE, "a PIN has %d to %d bytes" % (PIN_MIN, PIN_MAX))
        it = config.pin_iterations()
        salt = crypto.random_bytes(16)
        p = self._hash_pin(pin, salt, it)
        meta[field] = salt + hmac_sha256(p, b"pin verifier")
        meta[iter_field] = it
        meta[fail_field] = 0
        return hmac_sha256(p, b"pin kek")

    @staticmethod
    def _wrap(uk, kek):
        from . import crypto
        nonce = crypto.random_bytes(16)
        pad = hmac_sha256(kek, nonce)
        return nonce + bytes(uk[i] ^ pad[i] for i in range(32))

    @staticmethod
    def _unwrap(w, kek):
        if not w or len(w) != 48 or kek is None:
            return None
        pad = hmac_sha256(kek, w[:16])
        return bytes(w[16 + i] ^ pad[i] for i in range(32))

    def _unlock(self, uk):
        self._uk = uk
        self.store.set_user_key(uk)

    def _lock_keys(self):
        self._uk = None
        self._so_kek = None
        self.store.set_user_key(None)

    def _reseal_private(self):
        """Rewrite the private objects' records so their secret values are
        sealed under the (new) user key too."""
        for h in sorted(self.objects):
            o = self.objects[h]
            if o.owner or o.bad or not o.attrs.get(_CKA_PRIVATE):
                continue
            try:
                attrs = self.store.load(h)
            except Exception:
                continue
            if any(attrs.get(t) is None for t in objects.secret_types(attrs)):
                continue        # sealed under a user key we do not hold
            self._save(h, attrs)

    def _check_pin(self, field, iter_field, fail_field, pin):
        """Check a PIN against its stored hash.  The failure count is raised on
        flash *before* the check and cleared after a success, so a power cut at
        any point of an attempt cannot give a free guess; a right and a wrong
        PIN make the same two writes (finding 5)."""
        from . import crypto
        self._reload_meta()
        m = self.meta
        fails = m.get(fail_field, 0)
        if fails >= config.get("max_pin_failures"):
            raise error(_CKR_PIN_LOCKED)
        charged = dict(m)
        charged[fail_field] = fails + 1
        self._save_meta(charged)
        rec = m[field]
        p = self._hash_pin(pin, rec[:16], m.get(iter_field, 1000))
        ok = crypto.equal(hmac_sha256(p, b"pin verifier"), rec[16:])
        after = dict(m)
        after[fail_field] = 0 if ok else fails + 1
        self._save_meta(after)
        if not ok:
            raise error(_CKR_PIN_INCORRECT)
        return hmac_sha256(p, b"pin kek")

    def _reload_meta(self):
        """Re-read the token record (another process may have changed the PINs
        or the failure count since this one loaded it; finding 10)."""
        if self.broken:
            return
        try:
            meta = self.store.load_meta()
        except CorruptRecord as e:
            self.broken = "token record damaged (%s)" % e
            raise error(_CKR_DEVICE_ERROR, self.broken)
        except OSError:
            return
        if meta is not None:
            self.meta = meta

    def _verify(self, user_type, pin):
        """Check the PIN; returns its KEK."""
        if user_type == _CKU_USER:
            return self._check_pin(_M_USER, _M_USER_ITER, _M_USER_FAIL, pin)
        return self._check_pin(_M_SO, _M_SO_ITER, _M_SO_FAIL, pin)

    @_locked
    def do_login(self, s, user_type, pin):
        if user_type != _CKU_SO and user_type != _CKU_USER:
            raise error(_CKR_USER_TYPE_INVALID)
        pin = _pin_bytes(pin)
        self._reload_meta()
        if self.login == user_type:
            raise error(_CKR_USER_ALREADY_LOGGED_IN)
        if self.login is not None:
            raise error(_CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
        if self.broken:
            raise error(_CKR_DEVICE_ERROR, self.broken)
        if user_type == _CKU_SO:
            if any(not x.rw for x in self.sessions.values()):
                raise error(_CKR_SESSION_READ_ONLY_EXISTS)
            if _M_SO not in self.meta:
                raise error(_CKR_USER_PIN_NOT_INITIALIZED, "no SO PIN: call C_InitToken first")
        elif _M_USER not in self.meta:
            # FreeRTOS-style code logs in with corePKCS11's default user PIN on
            # every session: accepted on a token without a user PIN (config
            # default_user_pin; None keeps CKR_USER_PIN_NOT_INITIALIZED for all).
            default = config.get("default_user_pin")
            from . import crypto
            if default is None or not crypto.equal(pin, _pin_bytes(default)):
                raise error(_CKR_USER_PIN_NOT_INITIALIZED)
            self.login = user_type
            return
        kek = self._verify(user_type, pin)
        if user_type == _CKU_SO:
            self._so_kek = kek
            self._unlock(self._unwrap(self.meta.get(_M_UWRAP_S), kek))
        else:
            self._unlock(self._unwrap(self.meta.get(_M_UWRAP_U), kek))
        self.login = user_type

    @_locked
    def do_logout(self):
        if self.login is None:
            raise error(_CKR_USER_NOT_LOGGED_IN)
        self.login = None
        self._lock_keys()
        for x in self.sessions.values():
            x.op = x.find = None

    @_locked
    def init_token(self, so_pin, label):
        so_pin = _pin_bytes(so_pin)
        if self.sessions:
            raise error(_CKR_SESSION_EXISTS, "close every session first")
        self._reload_meta()
        if self.broken:
            # the SO PIN cannot be checked against a damaged record: only an
            # erase (which destroys every key) starts afresh
            raise error(_CKR_DEVICE_ERROR, self.broken + ": erase the token (erase_token)")
        if _M_SO in self.meta:
            self._verify(_CKU_SO, so_pin)
        meta = {_M_LABEL: label or DEFAULT_LABEL,
                _M_SERIAL: self.meta.get(_M_SERIAL, b"0")}
        self._new_pin(meta, _M_SO, _M_SO_ITER, _M_SO_FAIL, so_pin)
        try:
            self.store.wipe()
        except OSError:
            raise error(_CKR_DEVICE_ERROR, "cannot remove the old objects")
        self.objects = {}
        self._save_meta(meta)
        self.broken = None

    @_locked
    def erase(self):
        """Destroy every object and the PINs (the way out of a damaged token)."""
        if self.sessions:
            raise error(_CKR_SESSION_EXISTS, "close every session first")
        from . import crypto
        try:
            self.store.erase()
        except OSError:
            raise error(_CKR_DEVICE_ERROR, "cannot remove the records")
        self.objects = {}
        self.login = None
        self.broken = None
        self.meta = {}
        self._save_meta({_M_LABEL: DEFAULT_LABEL, _M_SERIAL: crypto.random_bytes(8).hex().encode()})

    @_locked
    def init_pin(self, s, pin):
        pin = _pin_bytes(pin)
        if self.login != _CKU_SO or not s.rw:
            raise error(_CKR_USER_NOT_LOGGED_IN, "C_InitPIN needs an SO read/write session")
        self._reload_meta()
        meta = dict(self.meta)
        fresh = self._uk is None
        uk = self._uk or self._new_user_key()
        meta[_M_UWRAP_U] = self._wrap(uk, self._new_pin(meta, _M_USER, _M_USER_ITER, _M_USER_FAIL, pin))
        if fresh:
            meta[_M_UWRAP_S] = self._wrap(uk, self._so_kek)
        self._save_meta(meta)
        if fresh:
            self._unlock(uk)
            self._reseal_private()

    @staticmethod
    def _new_user_key():
        from . import crypto
        return crypto.random_bytes(32)

    @_locked
    def set_pin(self, s, old, new):
        old = _pin_bytes(old)
        new = _pin_bytes(new)
        if not s.rw:
            raise error(_CKR_SESSION_READ_ONLY)
        self._reload_meta()
        if self.broken:
            raise error(_CKR_DEVICE_ERROR, self.broken)
        if self.login == _CKU_SO:
            kek = self._verify(_CKU_SO, old)
            uk = self._unwrap(self.meta.get(_M_UWRAP_S), kek)
            meta = dict(self.meta)
            kek = self._new_pin(meta, _M_SO, _M_SO_ITER, _M_SO_FAIL, new)
            if uk is not None:
                meta[_M_UWRAP_S] = self._wrap(uk, kek)
            self._so_kek = kek
            self._save_meta(meta)
            return
        fresh = False
        if _M_USER in self.meta:
            uk = self._unwrap(self.meta.get(_M_UWRAP_U), self._verify(_CKU_USER, old))
        elif old:
            raise error(_CKR_PIN_INCORRECT, "the token has no user PIN yet: give b'' as the old PIN")
        else:
            uk = None
        if uk is None:
            uk = self._new_user_key()
            fresh = True
        meta = dict(self.meta)
        meta[_M_UWRAP_U] = self._wrap(uk, self._new_pin(meta, _M_USER, _M_USER_ITER, _M_USER_FAIL, new))
        self._save_meta(meta)
        if fresh:
            # the first user PIN: seal the private objects under the new user key
            self._unlock(uk)
            try:
                self._reseal_private()
            finally:
                if self.login != _CKU_USER:
                    self._lock_keys()
