"""pkcs11: a PKCS#11 token for MicroPython (keys and certificates on flash).

    import pkcs11
    from pkcs11.constants import *
    p11 = pkcs11.C_GetFunctionList()        # the C-shaped API (pkcs11.api)
    p11.C_Initialize()
    ...
    with pkcs11.open_session(rw=True) as session:   # the Pythonic layer
        key = session.get_key(object_class=CKO_PRIVATE_KEY, label=pkcs11.LABEL_DEVICE_PRIVATE_KEY)

Importing this package is cheap: the submodules load on first use.
pkcs11.help() prints how to start. Names available here: C_GetFunctionList,
PKCS11Error, open_session, Session, NoSuchKey, MultipleObjectsReturned,
LabelTaken, KeyMismatch, configure, help, and the FreeRTOS labels
LABEL_DEVICE_PRIVATE_KEY, LABEL_DEVICE_PUBLIC_KEY, LABEL_DEVICE_CERTIFICATE,
LABEL_ROOT_CERTIFICATE, LABEL_CODE_VERIFICATION_KEY, LABEL_JITP_CERTIFICATE,
LABEL_CLAIM_CERTIFICATE, LABEL_CLAIM_PRIVATE_KEY (pkcs11.labels).
"""

__version__ = "0.1.0"


def C_GetFunctionList():
    """The PKCS#11 function list (one per process)."""
    from .api import function_list
    return function_list()


_H0 = """pkcs11: a PKCS#11 token (keys and certificates on flash). Start with:
    import pkcs11
    with pkcs11.open_session() as s:         # user_pin="..." when the token has one
        s.find_objects()                      # every object you may see
        key = s.get_key(label="Device Priv TLS Key")
        sig = key.sign(b"data")               # ECDSA P-256 / RSA with SHA-256
Names: open_session Session C_GetFunctionList PKCS11Error NoSuchKey
MultipleObjectsReturned LabelTaken KeyMismatch configure LABEL_DEVICE_PRIVATE_KEY
LABEL_DEVICE_PUBLIC_KEY LABEL_DEVICE_CERTIFICATE LABEL_ROOT_CERTIFICATE ...
Constants: from pkcs11.constants import *.  More: pkcs11.help("Session")"""
_H1 = """Session methods: find_objects(object_class=, label=, id=, key_type=)
get_object(...) get_key(...) -> one object (NoSuchKey / MultipleObjectsReturned)
import_pem(data, label=None, replace=False, force=False)   data: bytes or PEM text
import_key(data, ...) import_certificate(data, ...) generate_keypair(label=None, replace=False)
create_object(attrs) login(pin) logout() set_pin(old, new) init_pin(pin) token_info()
generate_random(n) digest(data) close()
Objects: obj.label obj.id obj[CKA_X] obj.destroy(); PrivateKey.sign(data);
PublicKey.verify(data, sig); Certificate.der"""


def help(name=None):
    """pkcs11.help(), pkcs11.help("Session"): what there is and how to start
    (MicroPython's help() shows no docstrings)."""
    if not isinstance(name, str) and name is not None:
        name = getattr(name, "__name__", None)
    # the dict is built only when asked; the texts are constants (flash on a board)
    h = {
        None: _H0,
        "open_session": "open_session(rw=True, user_pin=None) -> Session (use `with`)",
        "Session": _H1,
        "C_GetFunctionList": "C_GetFunctionList() -> the C-shaped API: p11.C_Initialize(), "
                             "p11.C_OpenSession(slot, flags), ... (README: 'Using the token')",
        "configure": "configure(root=None, max_objects=32, max_sessions=10, pin_iterations=1000, "
                     "max_pin_failures=10)",
    }
    print(h.get(name) or h[None])


def __getattr__(name):
    if name in ("PKCS11Error", "NoSuchKey", "MultipleObjectsReturned"):
        from . import errors
        return getattr(errors, name)
    if name in ("open_session", "Session", "LabelTaken", "KeyMismatch"):
        from . import pythonic
        return getattr(pythonic, name)
    if name == "configure":
        from .config import configure
        return configure
    if name.startswith("LABEL_"):
        from . import labels
        return getattr(labels, name)
    if not name.startswith("_"):
        # `from pkcs11 import crypto` asks here first: import the submodule
        try:
            return __import__("pkcs11." + name, None, None, (name,))
        except ImportError:
            pass
    raise AttributeError(name)
