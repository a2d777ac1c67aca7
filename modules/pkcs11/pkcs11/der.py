# Minimal DER reader/writer and PEM codec, used with either crypto backend:
# p11tls (reference keys, CA bundles), p11csr (requests, signature formats) and
# the pure backend's key and certificate parser (pkcs11.pure.keys).
# Reading works on offsets into the caller's buffer, so nothing is copied
# until a value is actually needed.
import binascii

# Universal tags
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31

# OID contents (value bytes, without tag and length)
OID_EC_PUBLIC_KEY = b"\x2a\x86\x48\xce\x3d\x02\x01"  # 1.2.840.10045.2.1
OID_P256 = b"\x2a\x86\x48\xce\x3d\x03\x01\x07"  # 1.2.840.10045.3.1.7
OID_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # 1.2.840.113549.1.1.1
OID_RSA_PSS = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a"  # 1.2.840.113549.1.1.10
OID_SHA256_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b"  # sha256WithRSAEncryption
OID_ECDSA_SHA256 = b"\x2a\x86\x48\xce\x3d\x04\x03\x02"  # ecdsa-with-SHA256
OID_CN = b"\x55\x04\x03"  # 2.5.4.3 commonName


def read(buf, pos, end=None):
    """Parse the TLV header at pos. Returns (tag, value_start, value_end)."""
    if end is None:
        end = len(buf)
    if pos + 2 > end:
        raise ValueError("DER: truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("DER: high tag numbers not supported")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        c = n & 0x7F
        if c == 0 or c > 3 or pos + c > end:
            raise ValueError("DER: bad length")
        n = 0
        for i in range(c):
            n = (n << 8) | buf[pos + i]
        pos += c
    if pos + n > end:
        raise ValueError("DER: truncated")
    return tag, pos, pos + n


def expect(buf, pos, end, tag, what="value"):
    """Like read() but the tag must match. Returns (value_start, value_end)."""
    t, s, e = read(buf, pos, end)
    if t != tag:
        raise ValueError("DER: expected " + what)
    return s, e


def children(buf, start, end):
    """List of (tag, tlv_start, value_start, value_end) of the elements in
    [start, end); buf[tlv_start:value_end] is the whole element."""
    out = []
    while start < end:
        t, s, e = read(buf, start, end)
        out.append((t, start, s, e))
        start = e
    return out


def uint(buf, s, e):
    """Bytes of a DER INTEGER value as unsigned big-endian, leading zeros removed.
    Raises ValueError for negative numbers."""
    if e <= s:
        raise ValueError("DER: empty INTEGER")
    if buf[s] & 0x80:
        raise ValueError("DER: negative INTEGER")
    while s < e - 1 and buf[s] == 0:
        s += 1
    return bytes(buf[s:e])


def small_int(buf, s, e):
    if e - s > 4:
        raise ValueError("DER: INTEGER too large")
    return int.from_bytes(uint(buf, s, e), "big")


# ---- writer ----

def tlv(tag, value):
    n = len(value)
    if n < 0x80:
        h = bytes((tag, n))
    elif n < 0x100:
        h = bytes((tag, 0x81, n))
    elif n < 0x10000:
        h = bytes((tag, 0x82, n >> 8, n & 0xFF))
    else:
        h = bytes((tag, 0x83, n >> 16, (n >> 8) & 0xFF, n & 0xFF))
    return h + value


def integer(v):
    """DER INTEGER from a non-negative int or unsigned big-endian bytes."""
    if isinstance(v, int):
        if v < 0:
            raise ValueError("DER: negative integer")
        v = v.to_bytes((bitlen(v) + 8) // 8, "big")
    i = 0
    while i < len(v) - 1 and v[i] == 0:
        i += 1
    if i:
        v = v[i:]
    if not v:
        v = b"\x00"
    if v[0] & 0x80:
        v = b"\x00" + v
    return tlv(INTEGER, v)


def seq(*parts):
    return tlv(SEQUENCE, b"".join(parts))


def set_of(*parts):
    return tlv(SET, b"".join(parts))


def octet_string(v):
    return tlv(OCTET_STRING, v)


def bit_string(v, unused=0):
    return tlv(BIT_STRING, bytes((unused,)) + v)


def null():
    return b"\x05\x00"


def utf8(s):
    return tlv(UTF8_STRING, s.encode() if isinstance(s, str) else s)


def explicit(n, value):
    """Context-specific constructed [n] EXPLICIT."""
    return tlv(0xA0 | n, value)


def oid(dotted):
    """DER OID (with tag) from '1.2.840...'."""
    p = [int(x) for x in dotted.split(".")]
    if len(p) < 2:
        raise ValueError("OID: too short")
    out = bytearray((p[0] * 40 + p[1],))
    for v in p[2:]:
        b = [v & 0x7F]
        v >>= 7
        while v:
            b.append(0x80 | (v & 0x7F))
            v >>= 7
        b.reverse()
        out += bytes(b)
    return tlv(OID, bytes(out))


def oid_str(v):
    """Dotted string from OID content bytes."""
    if not v:
        raise ValueError("OID: empty")
    f = v[0]
    parts = [str(min(f // 40, 2)), str(f - 40 * min(f // 40, 2))]
    n = 0
    for b in v[1:]:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(str(n))
            n = 0
    return ".".join(parts)


_NAME_OIDS = {"CN": "2.5.4.3", "C": "2.5.4.6", "L": "2.5.4.7", "ST": "2.5.4.8",
              "O": "2.5.4.10", "OU": "2.5.4.11", "SERIALNUMBER": "2.5.4.5"}


def name(rdns):
    """DER Name from [(attr, value), ...]; attr is 'CN', 'O', ... or a dotted OID.
    Country (C) is a PrintableString, the rest UTF8String."""
    out = []
    for a, v in rdns:
        o = _NAME_OIDS.get(a.upper(), a)
        if o == "2.5.4.6" or o == "2.5.4.5":
            val = tlv(PRINTABLE_STRING, v.encode() if isinstance(v, str) else v)
        else:
            val = utf8(v)
        out.append(set_of(seq(oid(o), val)))
    return seq(*out)


def bitlen(v):
    n = 0
    while v >> (n + 32):
        n += 32
    while v >> n:
        n += 1
    return n


# ---- ECDSA signature formats ----

def ecdsa_raw_to_der(raw):
    """r||s (2*L bytes) -> DER SEQUENCE { INTEGER r, INTEGER s }."""
    h = len(raw) // 2
    if not h or len(raw) != 2 * h:
        raise ValueError("ECDSA: raw signature length must be even")
    return seq(integer(raw[:h]), integer(raw[h:]))


def ecdsa_der_to_raw(der, size=32):
    """DER ECDSA signature -> r||s with each half left-padded to size bytes."""
    s, e = expect(der, 0, len(der), SEQUENCE, "ECDSA signature SEQUENCE")
    if e != len(der):
        raise ValueError("ECDSA: trailing data after signature")
    out = b""
    pos = s
    for _ in range(2):
        vs, ve = expect(der, pos, e, INTEGER, "ECDSA INTEGER")
        v = uint(der, vs, ve)
        if len(v) > size:
            raise ValueError("ECDSA: integer too large")
        out += bytes(size - len(v)) + v
        pos = ve
    if pos != e:
        raise ValueError("ECDSA: extra data in signature")
    return out


# ---- DigestInfo (PKCS#1 v1.5) ----

HASH_LEN = {"sha1": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}
_SHA2_OID_LAST = {"sha256": 1, "sha384": 2, "sha512": 3, "sha224": 4}


def digest_info_prefix(hash_name):
    """The DER bytes that precede the digest in a DigestInfo."""
    n = HASH_LEN.get(hash_name)
    if n is None:
        raise ValueError("unsupported hash: " + str(hash_name))
    if hash_name == "sha1":
        alg = b"\x06\x05\x2b\x0e\x03\x02\x1a"
    else:
        alg = b"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02" + bytes((_SHA2_OID_LAST[hash_name],))
    alg = seq(alg, null())
    return bytes((SEQUENCE, len(alg) + 2 + n)) + alg + bytes((OCTET_STRING, n))


def digest_info(hash_name, digest):
    """DER DigestInfo for a digest made with hash_name."""
    if len(digest) != HASH_LEN.get(hash_name, -1):
        raise ValueError("digest length does not match " + str(hash_name))
    return digest_info_prefix(hash_name) + digest


# ---- PEM ----

def _b(data):
    return data.encode() if isinstance(data, str) else data


def pem_blocks(data):
    """List of (label, der) for every PEM block in data (str or bytes).
    Raises ValueError for encrypted (Proc-Type ENCRYPTED) blocks."""
    data = _b(data)
    out = []
    pos = 0
    while True:
        i = data.find(b"-----BEGIN ", pos)
        if i < 0:
            return out
        j = data.find(b"-----", i + 11)
        if j < 0:
            raise ValueError("PEM: malformed BEGIN line")
        label = data[i + 11:j]
        end_marker = b"-----END " + label + b"-----"
        k = data.find(end_marker, j + 5)
        if k < 0:
            raise ValueError("PEM: missing END line")
        body = data[j + 5:k]
        if b":" in body:
            if b"ENCRYPTED" in body:
                raise ValueError("PEM: encrypted keys are not supported")
            # drop RFC 1421 headers (up to the blank line)
            h = body.find(b"\n\n")
            if h < 0:
                h = body.find(b"\r\n\r\n")
            if h >= 0:
                body = body[h:]
        try:
            der = binascii.a2b_base64(body)
        except Exception:
            raise ValueError("PEM: bad base64")
        out.append((label.decode(), der))
        pos = k + len(end_marker)


def pem_decode(data, label=None):
    """DER of the first PEM block (with the given label, if any)."""
    for lab, der in pem_blocks(data):
        if label is None or lab == label:
            return der
    raise ValueError("PEM: no " + (label or "PEM") + " block")


def pem_encode(der, label):
    out = ["-----BEGIN " + label + "-----\n"]
    for i in range(0, len(der), 48):
        out.append(binascii.b2a_base64(der[i:i + 48]).decode())
    out.append("-----END " + label + "-----\n")
    return "".join(out)


def is_pem(data):
    return _b(data).find(b"-----BEGIN ") >= 0
