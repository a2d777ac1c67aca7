# RSA signatures (PKCS#1 v1.5 type 1 and PSS) in pure MicroPython.
# Private operations use the CRT and check the result with the public
# exponent before returning it (a faulty or inconsistent key never yields a
# signature). pow() on big integers is not constant time: no side-channel
# resistance is claimed.
import os
from . import sha2
from ..der import HASH_LEN, bitlen


def random_bytes(n):
    """n bytes from the port's entropy source (os.urandom)."""
    f = getattr(os, "urandom", None)
    if f is None:
        raise OSError("no entropy source: os.urandom is missing on this port")
    if not isinstance(n, int) or n < 0:
        raise ValueError("random_bytes: bad length")
    return f(n) if n else b""


def _int(b):
    return int.from_bytes(b, "big")


def _modlen(n):
    # (bits, bytes) of the modulus
    bits = bitlen(n)
    return bits, (bits + 7) // 8


def _private(key, m):
    n, e, d, p, q, dp, dq, qi = [_int(x) if x else 0 for x in key]
    if n < 3 or not e:
        raise ValueError("RSA: incomplete key")
    if p and q:
        if not dp:
            dp = d % (p - 1)
        if not dq:
            dq = d % (q - 1)
        if not qi:
            qi = pow(q, p - 2, p)
        m1 = pow(m % p, dp, p)
        m2 = pow(m % q, dq, q)
        s = m2 + (qi * (m1 - m2) % p) * q
    elif d:
        s = pow(m, d, n)
    else:
        raise ValueError("RSA: incomplete key")
    if pow(s, e, n) != m:
        raise ValueError("RSA: private key is inconsistent")
    return s


def _pkcs1_em(data, k):
    if len(data) > k - 11:
        raise ValueError("RSA PKCS#1: data too long for the key")
    return b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data


def sign_pkcs1(key, data):
    n = _int(key[0])
    k = _modlen(n)[1]
    return _private(key, _int(_pkcs1_em(data, k))).to_bytes(k, "big")


def _public(n, e, sig):
    # m = sig^e mod n, or None if sig is not a valid representative
    n = _int(n)
    k = _modlen(n)[1]
    if len(sig) != k:
        return None, k
    s = _int(sig)
    if s >= n:
        return None, k
    return pow(s, _int(e), n), k


def verify_pkcs1(n, e, data, sig):
    m, k = _public(n, e, sig)
    if m is None or len(data) > k - 11:
        return False
    return m.to_bytes(k, "big") == _pkcs1_em(data, k)


def _mgf1(name, seed, n):
    out = b""
    c = 0
    while len(out) < n:
        out += sha2.digest(name, seed + c.to_bytes(4, "big"))
        c += 1
    return out[:n]


def _hlen(name, mhash):
    h = HASH_LEN.get(name)
    if h is None or name == "sha224":
        raise ValueError("RSA PSS: unsupported hash")
    if len(mhash) != h:
        raise ValueError("RSA PSS: hash length does not match the hash")
    return h


def _pss_h(name, mhash, salt):
    return sha2.digest(name, bytes(8) + mhash + salt)


def sign_pss(key, mhash, name, slen):
    hl = _hlen(name, mhash)
    n = _int(key[0])
    bits = _modlen(n)[0]
    em_len = (bits + 6) // 8  # ceil((bits - 1) / 8)
    if slen < 0 or em_len < hl + slen + 2:
        raise ValueError("RSA PSS: salt too long for the key")
    salt = random_bytes(slen)
    h = _pss_h(name, mhash, salt)
    db = bytearray(em_len - slen - hl - 2)
    db.append(1)
    db += salt
    mask = _mgf1(name, h, len(db))
    for i in range(len(db)):
        db[i] ^= mask[i]
    db[0] &= 0xFF >> (8 * em_len - (bits - 1))
    em = bytes(db) + h + b"\xbc"
    return _private(key, _int(em)).to_bytes((bits + 7) // 8, "big")


def verify_pss(n, e, mhash, name, slen, sig):
    hl = _hlen(name, mhash)
    m, k = _public(n, e, sig)
    if m is None or slen < 0:
        return False
    bits = _modlen(_int(n))[0]
    em_bits = bits - 1
    em_len = (em_bits + 7) // 8
    if m >> em_bits or em_len < hl + slen + 2:
        return False
    em = m.to_bytes(em_len, "big")
    if em[-1] != 0xBC:
        return False
    db = bytearray(em[:em_len - hl - 1])
    h = em[em_len - hl - 1:-1]
    if db[0] & ~(0xFF >> (8 * em_len - em_bits)) & 0xFF:
        return False
    mask = _mgf1(name, h, len(db))
    for i in range(len(db)):
        db[i] ^= mask[i]
    db[0] &= 0xFF >> (8 * em_len - em_bits)
    ps = len(db) - slen - 1
    for i in range(ps):
        if db[i]:
            return False
    if db[ps] != 1:
        return False
    return _pss_h(name, mhash, bytes(db[ps + 1:])) == h
