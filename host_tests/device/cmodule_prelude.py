# Prelude of the _pkcs11 C module tests: set `out`; bytes travel as {"hex": ...}.
import _pkcs11 as P
import json

def x(s):
    return bytes.fromhex(s)

def rd(name):
    with open(name, 'rb') as f:
        return f.read()

def enc(v):
    if isinstance(v, (bytes, bytearray)):
        return {'hex': bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [enc(i) for i in v]
    if isinstance(v, dict):
        return {k: enc(w) for k, w in v.items()}
    return v

def call(f, *args):
    try:
        return enc(f(*args))
    except Exception as e:
        return {'error': type(e).__name__, 'msg': str(e)}

out = None
