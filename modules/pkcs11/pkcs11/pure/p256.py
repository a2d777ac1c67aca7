# NIST P-256 (secp256r1) ECDSA in pure MicroPython.
#
# Points are Jacobian (X, Y, Z) triples, Z == 0 is the point at infinity.
# Scalar multiplication uses signed 4-bit windows (a table of 8 points per
# base keeps the live heap small). Zero windows skip their addition, and
# big-integer arithmetic in an interpreter is not constant time anyway: this
# code does NOT resist timing or power side channels. Use the C module where
# that matters.
# Nonces are deterministic (RFC 6979 with HMAC-SHA256), so signing needs no
# random source and a weak RNG can never leak the key through k.
from micropython import const
from . import sha2

P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def _dbl(pt):
    # dbl-2001-b (a = -3)
    x, y, z = pt
    if not z or not y:
        return (1, 1, 0)
    p = P
    d = z * z % p
    g = y * y % p
    b = x * g % p
    a = 3 * (x - d) * (x + d) % p
    x3 = (a * a - 8 * b) % p
    z3 = ((y + z) * (y + z) - g - d) % p
    y3 = (a * (4 * b - x3) - 8 * g * g) % p
    return (x3, y3, z3)


def _add(p1, p2):
    # add-2007-bl, with the doubling and inverse cases handled
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if not z1:
        return p2
    if not z2:
        return p1
    p = P
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if not h:
        if not r:
            return _dbl(p1)
        return (1, 1, 0)
    i = 4 * h * h % p
    j = h * i % p
    r = 2 * r
    v = u1 * i % p
    x3 = (r * r - j - 2 * v) % p
    y3 = (r * (v - x3) - 2 * s1 * j) % p
    z3 = ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % p
    return (x3, y3, z3)


def _table(pt):
    # [inf, P, 2P, ..., 8P]
    t = [(1, 1, 0), pt]
    for i in range(2, 9):
        t.append(_dbl(t[i >> 1]) if not i & 1 else _add(t[i - 1], pt))
    return t


def _digits(k):
    # signed 4-bit windows, least significant first: k = sum d_i 16^i, -7 <= d_i <= 8
    out = bytearray(65)
    for i in range(65):
        d = k & 15
        k >>= 4
        if d > 8:
            d -= 16
            k += 1
        out[i] = d & 0xFF
    return out


def _pick(t, d):
    if d < 128:
        return t[d]
    x, y, z = t[256 - d]
    return (x, P - y, z)


def mul(k1, p1, k2=0, p2=None):
    """k1*p1 + k2*p2 (Jacobian in, Jacobian out); 0 <= k < 2^256.
    Signed 4-bit windows with a table of 8 points per base, interleaved."""
    t1 = _table(p1)
    d1 = _digits(k1)
    t2 = d2 = None
    if k2:
        t2 = _table(p2)
        d2 = _digits(k2)
    acc = (1, 1, 0)
    for i in range(64, -1, -1):
        acc = _dbl(_dbl(_dbl(_dbl(acc))))
        acc = _add(acc, _pick(t1, d1[i]))
        if t2:
            acc = _add(acc, _pick(t2, d2[i]))
    return acc


def affine(pt):
    x, y, z = pt
    if not z:
        raise ValueError("P-256: point at infinity")
    zi = pow(z, P - 2, P)
    zi2 = zi * zi % P
    return x * zi2 % P, y * zi2 * zi % P


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x + 3 * x - B) % P == 0


def decode_point(q):
    """(x, y) ints from an uncompressed (0x04) or compressed (0x02/0x03) point.
    Raises ValueError if malformed or not on the curve."""
    if len(q) == 65 and q[0] == 4:
        x = int.from_bytes(q[1:33], "big")
        y = int.from_bytes(q[33:], "big")
    elif len(q) == 33 and q[0] in (2, 3):
        x = int.from_bytes(q[1:], "big")
        if x >= P:
            raise ValueError("P-256: point not on curve")
        y = pow((x * x * x - 3 * x + B) % P, (P + 1) // 4, P)
        if (y ^ q[0]) & 1:
            y = P - y
    else:
        raise ValueError("P-256: point must be 65 bytes 0x04||X||Y")
    if not on_curve(x, y):
        raise ValueError("P-256: point not on curve")
    return x, y


def encode_point(x, y):
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def scalar(d):
    """int from a 32-byte private scalar; ValueError unless 1 <= d < n."""
    if len(d) != 32:
        raise ValueError("P-256: private key must be 32 bytes")
    k = int.from_bytes(d, "big")
    if not 0 < k < N:
        raise ValueError("P-256: private key out of range")
    return k


def public(d):
    x, y = affine(mul(scalar(d), (GX, GY, 1)))
    return encode_point(x, y)


def _e(digest):
    if not 20 <= len(digest) <= 64:
        raise ValueError("ECDSA: digest must be 20..64 bytes")
    return int.from_bytes(digest[:32], "big")


def _nonce(x, e):
    # RFC 6979 section 3.2 with HMAC-SHA256; qlen = hlen = 256
    h = sha2.hmac
    xb = x.to_bytes(32, "big")
    eb = (e % N).to_bytes(32, "big")
    v = b"\x01" * 32
    k = h("sha256", bytes(32), v + b"\x00" + xb + eb)
    v = h("sha256", k, v)
    k = h("sha256", k, v + b"\x01" + xb + eb)
    v = h("sha256", k, v)
    while True:
        v = h("sha256", k, v)
        t = int.from_bytes(v, "big")
        if 0 < t < N:
            return t
        k = h("sha256", k, v + b"\x00")
        v = h("sha256", k, v)


def sign(d, digest):
    x = scalar(d)
    e = _e(digest)
    k = _nonce(x, e)
    while True:
        r = affine(mul(k, (GX, GY, 1)))[0] % N
        s = pow(k, N - 2, N) * (e + r * x) % N
        if r and s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        k = (k + 1) % N or 1  # practically unreachable (probability ~2^-256)


def verify(q, digest, sig):
    """True if sig (r||s, 64 bytes) is valid for digest under point q.
    ValueError for a malformed point or digest; False for any bad signature."""
    if len(q) != 65:
        raise ValueError("P-256: point must be 65 bytes 0x04||X||Y")
    qx, qy = decode_point(q)
    e = _e(digest)
    if len(sig) != 64:
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    w = pow(s, N - 2, N)
    pt = mul(e * w % N, (GX, GY, 1), r * w % N, (qx, qy, 1))
    if not pt[2]:
        return False
    return affine(pt)[0] % N == r
