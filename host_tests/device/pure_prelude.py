# The pure backend under test, and err(f, *a): a ValueError as its text.
import json
from pkcs11.pure import backend as b
from pkcs11 import der as asn1
H = bytes.fromhex
def err(f, *a):
    try:
        f(*a)
    except ValueError as e:
        return 'ValueError: ' + str(e)
    return None
