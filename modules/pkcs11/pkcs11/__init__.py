"""pkcs11: a PKCS#11 token for MicroPython (keys and certificates on flash).

    import pkcs11
    from pkcs11.constants import *
    p11 = pkcs11.C_GetFunctionList()        # the C-shaped API (pkcs11.api)
    p11.C_Initialize()
    ...
    with pkcs11.open_session(rw=True) as session:   # the Pythonic layer
        key = session.get_key(object_class=CKO_PRIVATE_KEY, label=pkcs11.LABEL_DEVICE_PRIVATE_KEY)

Importing this package is cheap: the submodules load on first use.
Names available here: C_GetFunctionList, PKCS11Error, open_session, Session,
NoSuchKey, MultipleObjectsReturned, configure, and the FreeRTOS labels
LABEL_DEVICE_PRIVATE_KEY, LABEL_DEVICE_PUBLIC_KEY, LABEL_DEVICE_CERTIFICATE,
LABEL_ROOT_CERTIFICATE, LABEL_CODE_VERIFICATION_KEY, LABEL_JITP_CERTIFICATE,
LABEL_CLAIM_CERTIFICATE, LABEL_CLAIM_PRIVATE_KEY (pkcs11.labels).
"""

__version__ = "0.1.0"


def C_GetFunctionList():
    """The PKCS#11 function list (one per process)."""
    from .api import function_list
    return function_list()


def __getattr__(name):
    if name in ("PKCS11Error", "NoSuchKey", "MultipleObjectsReturned"):
        from . import errors
        return getattr(errors, name)
    if name in ("open_session", "Session"):
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
