"""The MicroPython code p11board runs on the board (through the raw REPL).

Every command sends one small script: parameters as Python literals, the
helpers below, then the command's body. The scripts use the token's Pythonic
layer (pkcs11.open_session, Session.find_objects/get_object, Object.get), not
session and search code of their own. The script prints its answer as one
line `\\x1eP11R<repr>` (result) or `\\x1eP11E<repr>` (error), and progress as
`\\x1eP11P<repr>`; anything else the board prints is ignored.

What never happens here, by construction:
  * no script asks the token for a secret attribute. `_get` is the only
    attribute reader; for private and secret keys it refuses CKA_VALUE and
    the RSA private parts before calling the token (and the token would answer
    CKR_ATTRIBUTE_SENSITIVE anyway);
  * a key file's bytes appear once, in `import_key`'s script, as the literal of
    a short-lived bytearray that is zeroed after the import, and nothing
    derived from them is printed.
"""

from __future__ import annotations

MARK = "\x1eP11"

# Attribute types never read from private or secret keys:
# CKA_VALUE, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1,
# CKA_EXPONENT_2, CKA_COEFFICIENT.
SECRET_ATTRIBUTES = (0x11, 0x123, 0x124, 0x125, 0x126, 0x127, 0x128)

CONFIG_FILE = "aws_clientcredential.json"

_HELPERS = r'''
import gc
def _o(k, v):
    print("\x1eP11" + k + repr(v))
def _session(rw):
    import pkcs11
    s = pkcs11.open_session(rw=rw)
    if PIN is not None:
        try:
            s.login(PIN)
        except Exception as e:
            _pin_failed(s, e)
            s.close()
            raise
    return s
def _pin_failed(s, e):
    # after a wrong or locked PIN: the token's PIN flags (tries left) and the limit
    if getattr(e, "rv", None) in (0xA0, 0xA4):
        from pkcs11 import config
        try:
            _o("F", (s.token_info()["flags"], config.get("max_pin_failures")))
        except Exception:
            pass
_SECRET = %r
def _get(o, types):
    # o: a pkcs11 Object; unavailable attributes come back as None
    import pkcs11
    if o[0] in (3, 4):
        for t in types:
            if t in _SECRET:
                raise ValueError("p11board never reads secret attributes")
    try:
        v = o.get(*types)
    except pkcs11.PKCS11Error as e:
        v = getattr(e, "values", None)
        if v is None:
            raise
    return dict(zip(types, v))
def _flags(s):
    return s.token_info()["flags"]
def _check_mount():
    # ESP32: a "token" partition that is not mounted means the records would
    # land on the general filesystem instead; say so.
    try:
        import esp32, p11boot
    except ImportError:
        return None
    if p11boot.find_partition() is None:
        return "no token partition"
    if not p11boot.is_mounted():
        from pkcs11 import config
        _o("P", "WARNING: the board's 'token' partition is not mounted at /token (see its boot"
           " messages); the token now lives in " + config.token_dir())
        return "not mounted"
    return "mounted"
''' % (SECRET_ATTRIBUTES,)

_RUN = r'''
try:
    _main()
except Exception as e:
    _o("E", (type(e).__name__, getattr(e, "rv", None), str(e)))
gc.collect()
'''


def script(body: str, epilogue: str = "", **params: object) -> str:
    """A complete script: parameters (as literals), helpers, the body defining
    `_main`, the runner, then `epilogue` (runs even when _main failed)."""
    lines = [f"{name} = {value!r}" for name, value in params.items()]
    if "PIN" not in params:
        lines.append("PIN = None")
    return "\n".join(lines) + "\n" + _HELPERS + body + _RUN + epilogue


# -- info ---------------------------------------------------------------------

INFO = r'''
def _main():
    import sys
    from pkcs11 import config, crypto
    r = {}
    with _session(False) as s:
        p = s.p11
        r["info"] = p.C_GetInfo()
        r["slot"] = p.C_GetSlotInfo(0)
        r["token"] = s.token_info()
        r["mechanisms"] = [(m, p.C_GetMechanismInfo(0, m)) for m in p.C_GetMechanismList(0)]
    r["token_partition"] = _check_mount()
    r["platform"] = sys.platform
    r["version"] = sys.version
    r["micropython"] = ".".join(str(v) for v in sys.implementation.version[:3])
    r["machine"] = getattr(sys.implementation, "_machine", "")
    r["token_dir"] = config.token_dir()
    r["backend"] = crypto.which("ec_sign")
    try:
        with open(config.token_dir() + "/" + CONFIG_FILE, "rb") as f:
            r["config"] = f.read(2048)
    except OSError:
        r["config"] = None
    gc.collect()
    r["mem_free"] = gc.mem_free()
    _o("R", r)
'''

# -- list ---------------------------------------------------------------------

# CLASS, LABEL, ID, KEY_TYPE, EC_PARAMS, MODULUS_BITS, CERTIFICATE_TYPE, PRIVATE, APPLICATION
LIST = r'''
def _main():
    _check_mount()
    out = []
    with _session(False) as s:
        # plain handles: one unreadable record must not hide the others
        p = s.p11
        p.C_FindObjectsInit(s.h, [])
        try:
            handles = p.C_FindObjects(s.h, 256)
        finally:
            p.C_FindObjectsFinal(s.h)
        for h in handles:
            try:
                o = s.object(h)
                a = _get(o, [0, 3, 0x102, 0x100, 0x180, 0x121, 0x80, 2, 0x10])
                if a[0] == 1 or (a[0] == 0):
                    v = _get(o, [0x11])[0x11]
                    a["size"] = len(v) if v is not None else None
                    v = None
                elif a[0x100] == 0 and not a[0x121]:
                    m = _get(o, [0x120])[0x120]
                    if m:
                        b = m[0]
                        n = 0
                        while b:
                            n += 1
                            b >>= 1
                        a[0x121] = (len(m) - 1) * 8 + n
                out.append((h, a))
            except Exception as e:
                out.append((h, {"error": str(e)}))
        r = {"objects": out, "flags": _flags(s)}
    _o("R", r)
'''

# -- show ---------------------------------------------------------------------

_COMMON = [0, 1, 2, 3, 0x170, 0x102]
_CERT = [0x80, 0x101, 0x81, 0x82, 0x86, 0x87, 0x11]
_KEY = [0x100, 0x10C, 0x163, 0x166, 0x180, 0x181, 0x120, 0x121, 0x122, 0x129]
_PRIVATE = [0x101, 0x103, 0x105, 0x107, 0x108, 0x109, 0x162, 0x164, 0x165, 0x202]
_PUBLIC = [0x101, 0x104, 0x106, 0x10A, 0x10B, 0x86]
_DATA = [0x10, 0x12]

# The attribute lists `show` asks for, by object class (none is secret).
SHOW_ATTRIBUTES = {
    0: _COMMON + _DATA,
    1: _COMMON + _CERT,
    2: _COMMON + _KEY + _PUBLIC,
    3: _COMMON + _KEY + _PRIVATE,
}

SHOW = r'''
def _main():
    out = []
    with _session(False) as s:
        for o in s.find_objects(object_class=CLASS, label=LABEL):
            c = o[0]
            a = _get(o, ATTRS.get(c, [0, 1, 2, 3]))
            if c == 0:
                v = _get(o, [0x11])[0x11]
                a["size"] = len(v) if v is not None else None
                v = None
            out.append((o.handle, a))
        r = {"objects": out, "flags": _flags(s)}
    _o("R", r)
'''

# -- find (for destroy and csr) -----------------------------------------------

# LABEL, ID (None: any); HANDLE: one object by its handle instead
FIND = r'''
def _main():
    out = []
    with _session(False) as s:
        if HANDLE is not None:
            try:
                found = [s.object(HANDLE)]
            except Exception:
                found = []
        else:
            found = s.find_objects(object_class=CLASS, label=LABEL, id=ID)
        for o in found:
            out.append((o.handle, _get(o, [0, 3, 0x100, 0x102])))
        r = {"objects": out, "flags": _flags(s)}
    _o("R", r)
'''

# HANDLES: [(handle, label)] as FIND saw them
DESTROY = r'''
def _main():
    done = []
    with _session(True) as s:
        for h, label in HANDLES:
            o = s.object(h)
            if _get(o, [3])[3] != label:
                raise ValueError("object %d is no longer labelled %r" % (h, label))
            o.destroy()
            done.append(h)
    _o("R", {"destroyed": done})
'''

# -- import ---------------------------------------------------------------------

# Objects in the way of a new one: (object, class, label) for every label/class pair;
# `_handles` makes them an answer for the host.
_TAKEN = r'''
def _taken(s, pairs):
    r = []
    for label, cls in pairs:
        for o in s.find_objects(object_class=cls, label=label):
            r.append((o, cls, label))
    return r
def _handles(taken):
    return [(o.handle, c, label) for o, c, label in taken]
'''

# Checked before a key is sent, so that its bytes do not travel for nothing.
TAKEN = _TAKEN + r'''
def _main():
    _check_mount()
    with _session(False) as s:
        _o("R", {"taken": _handles(_taken(s, PAIRS)), "flags": _flags(s)})
'''

IMPORT_KEY = _TAKEN + r'''
def _main():
    with _session(True) as s:
        pairs = [(LABEL, 3)]
        if PUBLIC_LABEL is not None:
            pairs.append((PUBLIC_LABEL, 2))
        old = _taken(s, pairs)
        if old and not REPLACE:
            _o("R", {"taken": _handles(old)})
            return
        _o("P", "storing the key in the token")
        try:
            k = s.import_key(_K, label=LABEL, id=ID, public_label=PUBLIC_LABEL, replace=True,
                             force=FORCE)
        except Exception as e:
            if type(e).__name__ != "KeyMismatch":
                raise
            _o("R", {"mismatch": str(e)})
            return
        _o("R", {"handle": k.handle, "replaced": len(old)})
'''

# Runs after IMPORT_KEY, whatever happened: the key bytes are zeroed.
# After import-key: zero the key buffer, then scrub the free heap, where copies
# made while parsing and storing the key are left (issue 10, finding 9): fill
# all free memory with zeroed blocks, large to small, until MemoryError, then
# let them go.
WIPE_KEY = r'''
for _i in range(len(_K)):
    _K[_i] = 0
_K = None
gc.collect()
def _scrub():
    hold = []
    for n in (4096, 256, 16):
        try:
            while True:
                hold.append(bytearray(n))
        except MemoryError:
            pass
    hold = None
_scrub()
gc.collect()
'''

IMPORT_CERT = _TAKEN + r'''
def _main():
    _check_mount()
    if SO_PIN is None:
        sess = _session(True)
    else:
        import pkcs11
        sess = pkcs11.open_session(rw=True)
        sess.login(SO_PIN, 0)
    with sess as s:
        old = _taken(s, [(LABEL, 1)])
        if old and not REPLACE:
            _o("R", {"taken": _handles(old)})
            return
        try:
            c = s.import_certificate(_C, label=LABEL, id=ID, replace=True, force=FORCE,
                                     trusted=TRUSTED)
        except Exception as e:
            if type(e).__name__ != "KeyMismatch":
                raise
            _o("R", {"mismatch": str(e)})
            return
        # the private key this certificate belongs to, if the token has it
        match = None
        for o in (s.find_objects(object_class=3, id=ID) if ID else ()):
            match = _get(o, [3])[3]
        _o("R", {"handle": c.handle, "replaced": len(old), "key": match})
'''

# The intermediate CA certificates of the device certificate LABEL, as p11tls
# reads them: LABEL + " CA 1" (its issuer), " CA 2"...; the old ones go first.
IMPORT_CHAIN = r'''
def _main():
    _check_mount()
    removed = 0
    with _session(True) as s:
        for i in range(1, MAX_CHAIN + 1):
            for o in s.find_objects(object_class=1, label=LABEL + (" CA %d" % i).encode()):
                o.destroy()
                removed += 1
        for i in range(len(_CHAIN)):
            s.import_certificate(_CHAIN[i], label=LABEL + (" CA %d" % (i + 1)).encode())
    _o("R", {"stored": len(_CHAIN), "removed": removed})
'''

GENERATE = _TAKEN + r'''
def _main():
    from pkcs11 import crypto
    _check_mount()
    with _session(True) as s:
        old = _taken(s, [(LABEL, 3), (PUBLIC_LABEL, 2)])
        if old and not REPLACE:
            _o("R", {"taken": _handles(old)})
            return
        _o("P", "generating an EC P-256 key pair in the token")
        try:
            pub, priv = s.generate_keypair(label=LABEL, public_label=PUBLIC_LABEL, id=ID or b"",
                                           replace=True, force=FORCE)
        except Exception as e:
            if type(e).__name__ != "KeyMismatch":
                raise
            _o("R", {"mismatch": str(e)})
            return
        q = pub[0x181]
        if not ID:
            h = crypto.hash_new("sha1")
            h.update(q[2:])
            kid = h.digest()
            pub[0x102] = kid
            priv[0x102] = kid
        _o("R", {"handle": priv.handle, "public_handle": pub.handle, "ec_point": q,
                 "id": priv[0x102], "replaced": len(old)})
'''

# -- CSR ----------------------------------------------------------------------

CSR = r'''
def _main():
    import p11csr
    import pkcs11
    with _session(False) as s:
        try:
            key = s.get_object(object_class=3, label=LABEL)
        except pkcs11.NoSuchKey:
            _o("R", {"keys": 0, "flags": _flags(s)})
            return
        except pkcs11.MultipleObjectsReturned:
            _o("R", {"keys": len(s.find_objects(object_class=3, label=LABEL)), "flags": _flags(s)})
            return
        a = _get(key, [0x100, 0x181, 0x120, 0x122])
        _o("P", "building the request and signing it in the token")
        der = p11csr.make_csr(s, key, SUBJECT)
        _o("R", {"csr": der, "key": a})
'''

# -- PINs and token initialization ---------------------------------------------

SET_PIN = r'''
def _main():
    import pkcs11
    s = pkcs11.open_session(rw=True)
    try:
        had = _flags(s) & (0x8 if not SO else 0x400)
        try:
            if SO:
                s.login(OLD, 0)
            s.set_pin(OLD, NEW)
        except Exception as e:
            _pin_failed(s, e)
            raise
    finally:
        s.close()
    _o("R", {"ok": True, "had": bool(had) or bool(SO)})
'''

# The SO sets a new user PIN (C_InitPIN): unlocks a locked user PIN, or sets a
# forgotten one; keys and certificates stay.
INIT_PIN = r'''
def _main():
    import pkcs11
    s = pkcs11.open_session(rw=True)
    try:
        try:
            s.login(SO_PIN, 0)
        except Exception as e:
            _pin_failed(s, e)
            raise
        before = _flags(s)
        s.p11.C_InitPIN(s.h, NEW)
        s.logout()
        after = _flags(s)
    finally:
        s.close()
    _o("R", {"before": before, "after": after})
'''

INIT_TOKEN = r'''
def _main():
    import pkcs11
    p = pkcs11.C_GetFunctionList()
    p.C_Initialize()
    try:
        p.C_InitToken(0, SO_PIN, LABEL_TOKEN)
        if USER_PIN is not None:
            h = p.C_OpenSession(0, 6)
            p.C_Login(h, 0, SO_PIN)
            p.C_InitPIN(h, USER_PIN)
            p.C_Logout(h)
            p.C_CloseSession(h)
        info = p.C_GetTokenInfo(0)
    finally:
        p.C_Finalize()
    _o("R", {"label": info["label"], "flags": info["flags"]})
'''

# -- client configuration -------------------------------------------------------

CONFIG_READ = r'''
def _main():
    from pkcs11 import config
    try:
        with open(config.token_dir() + "/" + CONFIG_FILE, "rb") as f:
            data = f.read(2048)
    except OSError:
        data = None
    _o("R", {"config": data, "token_dir": config.token_dir()})
'''

CONFIG_WRITE = r'''
def _main():
    from pkcs11 import config
    from pkcs11.store import Store, replace_file
    d = config.token_dir()
    Store(d).ensure()
    path = d + "/" + CONFIG_FILE
    replace_file(path, DATA)
    _o("R", {"path": path})
'''

# -- check (p11board check) ------------------------------------------------------

CHECK_READ = r'''
def _main():
    import pkcs11
    from pkcs11 import config
    r = {"token_dir": config.token_dir()}
    try:
        with open(config.token_dir() + "/" + CONFIG_FILE, "rb") as f:
            r["config"] = f.read(2048)
    except OSError:
        r["config"] = None
    with _session(False) as s:
        r["flags"] = _flags(s)
        keys = s.find_objects(object_class=3, label=KEY_LABEL)
        r["keys"] = len(keys)
        if len(keys) == 1:
            r["key"] = _get(keys[0], [0x100, 0x181, 0x120, 0x122])
        for name, label in (("cert", CERT_LABEL), ("ca", CA_LABEL)):
            found = s.find_objects(object_class=1, label=label)
            r[name + "s"] = len(found)
            if len(found) == 1:
                r[name] = found[0].der
    _o("R", r)
'''

CHECK_MQTT = r'''
def _main():
    import p11tls
    from mqtt import MQTTClient
    _o("P", "TLS to %s:%d as %r (server name %s)" % (HOST, PORT, THING, SERVER_NAME))
    c = MQTTClient(THING, p11tls.opener(HOST, PORT, server_hostname=SERVER_NAME, ca=SERVER_CA,
                                        pin=PIN), keepalive=60)
    c.connect()
    _o("P", "connected: the handshake was signed in the token, the broker accepted the certificate")
    topic = "check/%s" % THING
    c.subscribe(topic, qos=1)
    msg = b"p11board check"
    c.publish(topic, msg, qos=1)
    got = c.wait_msg(WAIT)
    c.disconnect()
    _o("R", {"topic": topic, "echo": got is not None and bytes(got[1]) == msg})
'''


# -- locked production mode -------------------------------------------------------

# Writes the lock marker (its path comes from the firmware: _pkcs11.lock_file()),
# after checking that the firmware can lock, that the marker sits in the token's
# directory, that the application exists and that the token holds a private key.
LOCK = r'''
def _main():
    import os
    from pkcs11 import config
    try:
        import _pkcs11
        path = _pkcs11.lock_file()
    except (ImportError, AttributeError):
        path = None
    if path is None:
        raise ValueError("this firmware has no locked mode (flash this project's qemu or ESP32 firmware)")
    d = path.rsplit("/", 1)[0]
    if config.token_dir() != d:
        raise ValueError("the token lives in %s, but this firmware keeps the lock marker in %s"
                         % (config.token_dir(), d))
    if not APP.startswith("frozen:"):
        try:
            os.stat(APP)
        except OSError:
            raise ValueError("no application %s on the board: copy it first" % APP)
    keys = 0
    with _session(False) as s:
        p = s.p11
        p.C_FindObjectsInit(s.h, [(0, 3)])
        try:
            keys = len(p.C_FindObjects(s.h, 8))
        finally:
            p.C_FindObjectsFinal(s.h)
    if not keys and not FORCE:
        raise ValueError("the token holds no private key: provision it first (or --force)")
    with open(path + ".tmp", "wb") as f:
        f.write(APP.encode() + b"\n")
    try:
        os.rename(path + ".tmp", path)
    except OSError:
        os.remove(path)
        os.rename(path + ".tmp", path)
    _o("R", {"path": path, "app": APP, "keys": keys})
'''
