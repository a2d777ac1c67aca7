# Hashes for the pure backend. hashlib is used where the firmware has it
# (sha256 always; sha1 only on ports with TLS); SHA-1 and SHA-384/512 have a
# compact pure-Python fallback. The SHA-512 constants are computed on first
# use (fractional parts of square/cube roots of primes) instead of being
# stored, which keeps the frozen code small.
import hashlib
import struct

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_K512 = None
_IV = None


def _root(x, k, r):
    # floor(x ** (1/k)) by Newton's method from an overestimate r
    while True:
        y = ((k - 1) * r + x // r ** (k - 1)) // k
        if y >= r:
            return r
        r = y


def _consts():
    global _K512, _IV
    primes = []
    c = 2
    while len(primes) < 80:
        if all(c % q for q in primes if q * q <= c):
            primes.append(c)
        c += 1
    # kept as packed bytes (640) rather than 80 big ints: far less heap
    k = bytearray(640)
    for i in range(80):
        struct.pack_into(">Q", k, 8 * i, _root(primes[i] << 192, 3, 1 << 68) & _M64)
    _K512 = k
    _IV = [_root(p << 128, 2, 1 << 70) & _M64 for p in primes[:16]]


class _Hash:
    # subclasses set: _bs (block size), _lb (length-field bytes), _fmt, _out
    def __init__(self, data=None):
        self._buf = b""
        self._n = 0
        self._init()
        if data:
            self.update(data)

    def update(self, data):
        self._n += len(data)
        buf = self._buf + bytes(data)
        bs = self._bs
        i = 0
        while i + bs <= len(buf):
            self._block(buf[i:i + bs])
            i += bs
        self._buf = buf[i:]

    def digest(self):
        # digest() finalizes a copy of the state so update() may continue
        h, buf, n = list(self._h), self._buf, self._n
        bs = self._bs
        pad = b"\x80" + bytes((bs - self._lb - 1 - len(buf)) % bs)
        self.update(pad + (n * 8).to_bytes(self._lb, "big"))
        out = struct.pack(self._fmt, *self._h)[:self._out]
        self._h, self._buf, self._n = h, buf, n
        return out


class _SHA1(_Hash):
    _bs = 64
    _lb = 8
    _fmt = ">5I"
    _out = 20

    def _init(self):
        self._h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]

    def _block(self, blk):
        w = list(struct.unpack(">16I", blk))
        a, b, c, d, e = self._h
        for t in range(80):
            if t >= 16:
                x = w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^ w[t & 15]
                w[t & 15] = ((x << 1) | (x >> 31)) & _M32
            if t < 20:
                f = (b & c) | (~b & d)
                k = 0x5A827999
            elif t < 40:
                f = b ^ c ^ d
                k = 0x6ED9EBA1
            elif t < 60:
                f = (b & c) | (b & d) | (c & d)
                k = 0x8F1BBCDC
            else:
                f = b ^ c ^ d
                k = 0xCA62C1D6
            a, b, c, d, e = (((a << 5) | (a >> 27)) + f + e + k + w[t & 15]) & _M32, a, \
                ((b << 30) | (b >> 2)) & _M32, c, d
        h = self._h
        for i, v in enumerate((a, b, c, d, e)):
            h[i] = (h[i] + v) & _M32


def _r(x, n):
    return ((x >> n) | (x << (64 - n))) & _M64


class _SHA512(_Hash):
    _bs = 128
    _lb = 16
    _fmt = ">8Q"
    _out = 64
    _iv = 0

    def _init(self):
        if _K512 is None:
            _consts()
        if self._iv:
            # SHA-384: IVs are the roots of the 9th..16th primes
            self._h = _IV[8:16]
        else:
            self._h = _IV[:8]

    def _block(self, blk):
        # message schedule kept as a rolling window of 16 words
        w = list(struct.unpack(">16Q", blk))
        a, b, c, d, e, f, g, h = self._h
        K = _K512
        for t in range(80):
            if t >= 16:
                x = w[(t - 15) & 15]
                y = w[(t - 2) & 15]
                w[t & 15] = (w[t & 15] + (_r(x, 1) ^ _r(x, 8) ^ (x >> 7)) + w[(t - 7) & 15]
                             + (_r(y, 19) ^ _r(y, 61) ^ (y >> 6))) & _M64
            t1 = (h + (_r(e, 14) ^ _r(e, 18) ^ _r(e, 41)) + ((e & f) ^ (~e & g))
                  + struct.unpack_from(">Q", K, 8 * t)[0] + w[t & 15])
            t2 = (_r(a, 28) ^ _r(a, 34) ^ _r(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))
            h, g, f, e, d, c, b, a = g, f, e, (d + t1) & _M64, c, b, a, (t1 + t2) & _M64
        s = self._h
        self._h = [(s[0] + a) & _M64, (s[1] + b) & _M64, (s[2] + c) & _M64,
                   (s[3] + d) & _M64, (s[4] + e) & _M64, (s[5] + f) & _M64,
                   (s[6] + g) & _M64, (s[7] + h) & _M64]


class _SHA384(_SHA512):
    _out = 48
    _iv = 1


def new(name, data=None):
    """Hash object with update()/digest() for sha1, sha256, sha384, sha512."""
    f = None
    if name == "sha256" or name == "sha1":
        f = getattr(hashlib, name, None)
    if f is None:
        f = {"sha1": _SHA1, "sha384": _SHA384, "sha512": _SHA512}.get(name)
        if f is None:
            raise ValueError("unsupported hash: " + str(name))
    return f(data) if data else f()


def digest(name, data):
    h = new(name)
    h.update(data)
    return h.digest()


def hmac(name, key, msg, block=64):
    """HMAC(key, msg); block is the hash's block size (128 for sha384/512)."""
    if len(key) > block:
        key = digest(name, key)
    key = key + bytes(block - len(key))
    h = new(name)
    h.update(bytes(x ^ 0x36 for x in key))
    h.update(msg)
    inner = h.digest()
    h = new(name)
    h.update(bytes(x ^ 0x5C for x in key))
    h.update(inner)
    return h.digest()
