# Runs first in every token snippet: `ckr(f, *args)` -> "OK" or the CKR name.
import pkcs11, json
from pkcs11.constants import *
from pkcs11 import errors
p11 = pkcs11.C_GetFunctionList()
P256 = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"
def ckr(f, *a, **k):
    try:
        f(*a, **k)
        return "OK"
    except errors.PKCS11Error as e:
        return errors.name(e.rv)
