"""Mechanisms: the table behind C_GetMechanismList/Info, parameter checks, and
the sign / verify / digest operations (bytes in, bytes out through the crypto
facade).

Mechanism argument: an int, or (int, parameter).  RSA-PSS parameters are a
(hashAlg, mgf, sLen) tuple, e.g. (CKM_SHA256, CKG_MGF1_SHA256, 32); the MGF1
hash must equal hashAlg.  Other mechanisms take no parameter.

Input rules (C_Sign / C_Verify data):
  CKM_ECDSA          a hash of 20..64 bytes; output raw r||s (64 bytes)
  CKM_ECDSA_SHA*     any data, hashed here
  CKM_RSA_PKCS       at most k-11 bytes (normally a DER DigestInfo); output k bytes
  CKM_SHA*_RSA_PKCS  any data, hashed and wrapped in a DigestInfo here
  CKM_RSA_X_509      verify only (FreeRTOS's tests expect it): raw RSA, the data
                     (at most k bytes) must equal sig^e mod n left-padded to k bytes
  CKM_RSA_PKCS_PSS   a hash of exactly hashAlg's length
  CKM_SHA*_RSA_PKCS_PSS  any data, hashed here
"""

from micropython import const

from . import crypto
from .errors import error

_CKK_RSA = const(0)
_CKK_EC = const(3)
_CKM_RSA_PKCS = const(0x1)
_CKM_RSA_X_509 = const(0x3)
_CKM_RSA_PKCS_PSS = const(0xD)
_CKM_SHA1_RSA_PKCS = const(0x6)
_CKM_SHA1_RSA_PKCS_PSS = const(0xE)
_CKM_SHA256_RSA_PKCS = const(0x40)
_CKM_SHA384_RSA_PKCS = const(0x41)
_CKM_SHA512_RSA_PKCS = const(0x42)
_CKM_SHA256_RSA_PKCS_PSS = const(0x43)
_CKM_SHA384_RSA_PKCS_PSS = const(0x44)
_CKM_SHA512_RSA_PKCS_PSS = const(0x45)
_CKM_SHA_1 = const(0x220)
_CKM_SHA256 = const(0x250)
_CKM_SHA384 = const(0x260)
_CKM_SHA512 = const(0x270)
_CKM_EC_KEY_PAIR_GEN = const(0x1040)
_CKM_ECDSA = const(0x1041)
_CKM_ECDSA_SHA1 = const(0x1042)
_CKM_ECDSA_SHA256 = const(0x1044)
_CKM_ECDSA_SHA384 = const(0x1045)
_CKM_ECDSA_SHA512 = const(0x1046)
_CKG_MGF1_SHA1 = const(1)
_CKG_MGF1_SHA256 = const(2)
_CKG_MGF1_SHA384 = const(3)
_CKG_MGF1_SHA512 = const(4)
_CKF_DIGEST = const(0x400)
_CKF_SIGN = const(0x800)
_CKF_VERIFY = const(0x2000)
_CKF_GENERATE_KEY_PAIR = const(0x10000)
_CKF_EC_F_P = const(0x100000)
_CKF_EC_NAMEDCURVE = const(0x800000)
_CKF_EC_UNCOMPRESS = const(0x1000000)
_CKR_ARGUMENTS_BAD = const(0x7)
_CKR_HOST_MEMORY = const(0x2)
_CKR_FUNCTION_FAILED = const(0x6)
_CKR_DATA_LEN_RANGE = const(0x21)
_CKR_KEY_SIZE_RANGE = const(0x62)
_CKR_MECHANISM_INVALID = const(0x70)
_CKR_MECHANISM_PARAM_INVALID = const(0x71)
_CKR_SIGNATURE_INVALID = const(0xC0)
_CKR_SIGNATURE_LEN_RANGE = const(0xC1)

# schemes
_DIGEST = const(1)
_ECDSA = const(2)
_PKCS1 = const(3)
_PSS = const(4)
_KEYGEN = const(5)
_X509 = const(6)

# (mechanism, scheme, hash index into _HASHES or -1 when the data is pre-hashed)
_TABLE = (
    (_CKM_SHA_1, _DIGEST, 0), (_CKM_SHA256, _DIGEST, 1), (_CKM_SHA384, _DIGEST, 2),
    (_CKM_SHA512, _DIGEST, 3),
    (_CKM_ECDSA, _ECDSA, -1), (_CKM_ECDSA_SHA1, _ECDSA, 0), (_CKM_ECDSA_SHA256, _ECDSA, 1),
    (_CKM_ECDSA_SHA384, _ECDSA, 2), (_CKM_ECDSA_SHA512, _ECDSA, 3),
    (_CKM_RSA_PKCS, _PKCS1, -1), (_CKM_SHA1_RSA_PKCS, _PKCS1, 0),
    (_CKM_SHA256_RSA_PKCS, _PKCS1, 1), (_CKM_SHA384_RSA_PKCS, _PKCS1, 2),
    (_CKM_SHA512_RSA_PKCS, _PKCS1, 3), (_CKM_RSA_X_509, _X509, -1),
    (_CKM_RSA_PKCS_PSS, _PSS, -1), (_CKM_SHA1_RSA_PKCS_PSS, _PSS, 0),
    (_CKM_SHA256_RSA_PKCS_PSS, _PSS, 1), (_CKM_SHA384_RSA_PKCS_PSS, _PSS, 2),
    (_CKM_SHA512_RSA_PKCS_PSS, _PSS, 3),
    (_CKM_EC_KEY_PAIR_GEN, _KEYGEN, -1),
)
# (hash name, digest mechanism, MGF1 id, digest length, DigestInfo prefix)
_HASHES = (
    ("sha1", _CKM_SHA_1, _CKG_MGF1_SHA1, 20, b"\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14"),
    ("sha256", _CKM_SHA256, _CKG_MGF1_SHA256, 32,
     b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"),
    ("sha384", _CKM_SHA384, _CKG_MGF1_SHA384, 48,
     b"\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30"),
    ("sha512", _CKM_SHA512, _CKG_MGF1_SHA512, 64,
     b"\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40"),
)
RSA_BITS = const(2048)


def mechanism_list():
    return [m[0] for m in _TABLE]


def _entry(mech):
    for m in _TABLE:
        if m[0] == mech:
            return m
    return None


def info(mech):
    """CK_MECHANISM_INFO as a dict; None for an unsupported mechanism."""
    m = _entry(mech)
    if m is None:
        return None
    scheme = m[1]
    ec = _CKF_EC_F_P | _CKF_EC_NAMEDCURVE | _CKF_EC_UNCOMPRESS
    if scheme == _DIGEST:
        return {"ulMinKeySize": 0, "ulMaxKeySize": 0, "flags": _CKF_DIGEST}
    if scheme == _KEYGEN:
        return {"ulMinKeySize": 256, "ulMaxKeySize": 256, "flags": _CKF_GENERATE_KEY_PAIR | ec}
    if scheme == _ECDSA:
        return {"ulMinKeySize": 256, "ulMaxKeySize": 256, "flags": _CKF_SIGN | _CKF_VERIFY | ec}
    if scheme == _X509:
        return {"ulMinKeySize": RSA_BITS, "ulMaxKeySize": RSA_BITS, "flags": _CKF_VERIFY}
    return {"ulMinKeySize": RSA_BITS, "ulMaxKeySize": RSA_BITS, "flags": _CKF_SIGN | _CKF_VERIFY}


def split(mechanism):
    """(mech, param) from an int or an (int, param) pair."""
    if type(mechanism) is int:
        return mechanism, None
    if isinstance(mechanism, (tuple, list)) and len(mechanism) == 2 and type(mechanism[0]) is int:
        return mechanism[0], mechanism[1]
    raise error(_CKR_ARGUMENTS_BAD, "a mechanism is an int or an (int, parameter) pair")


def usable(mechanism, kind):
    """The mechanism check: (table entry, parameter) when the mechanism can
    C_<kind> ("Digest", "Sign", "Verify" or "GenerateKeyPair"), else
    CKR_MECHANISM_INVALID (CKR_ARGUMENTS_BAD when it is malformed)."""
    mech, param = split(mechanism)
    m = _entry(mech)
    scheme = m[1] if m else 0
    if kind == "Digest":
        ok = scheme == _DIGEST
    elif kind == "GenerateKeyPair":
        ok = scheme == _KEYGEN
    else:
        ok = scheme == _ECDSA or scheme == _PKCS1 or scheme == _PSS or (
            scheme == _X509 and kind == "Verify")
    if not ok:
        raise error(_CKR_MECHANISM_INVALID, "mechanism 0x%x cannot C_%s" % (mech, kind))
    return m, param


def key_type(m):
    """The key type a sign/verify mechanism (its table entry) needs: CKK_EC or CKK_RSA."""
    return _CKK_EC if m[1] == _ECDSA else _CKK_RSA


def _hash_index(mech):
    for i in range(len(_HASHES)):
        if _HASHES[i][1] == mech:
            return i
    return -1


def _verify_raw(n, e, data, sig):
    # CKM_RSA_X_509: sig^e mod n == data (left-padded to k bytes); s >= n is invalid.
    k = len(n)
    n = int.from_bytes(n, "big")
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    m = pow(s, int.from_bytes(e, "big"), n).to_bytes(k, "big")
    return crypto.equal(m, bytes(k - len(data)) + data)


class Operation:
    """One active sign, verify or digest operation of a session: m and param
    come from usable(), key from objects.key_material()."""

    def __init__(self, kind, m, param, key=None):
        scheme = m[1]
        self.kind = kind
        self.scheme = scheme
        self.hi = m[2]
        # True when the data is hashed here, False when the caller gives the hash
        self.hashed = m[2] >= 0
        self.key = key
        self.hasher = None
        self.multi = False
        self.salt = 0
        if scheme == _PSS:
            self._pss_param(param)
        elif param is not None:
            raise error(_CKR_MECHANISM_PARAM_INVALID, "this mechanism takes no parameter")
        if scheme == _PKCS1 or scheme == _PSS or scheme == _X509:
            k = self.length()
            if k * 8 != RSA_BITS:
                raise error(_CKR_KEY_SIZE_RANGE, "RSA keys must have 2048 bits")
            if scheme == _PSS and self.salt > k - _HASHES[self.hi][3] - 2:
                raise error(_CKR_MECHANISM_PARAM_INVALID, "PSS salt too long for the key")

    def _pss_param(self, param):
        if not isinstance(param, (tuple, list)) or len(param) != 3:
            raise error(_CKR_MECHANISM_PARAM_INVALID, "PSS needs (hashAlg, mgf, sLen)")
        hash_alg, mgf, slen = param
        i = _hash_index(hash_alg) if type(hash_alg) is int else -1
        if i < 0 or (self.hi >= 0 and i != self.hi):
            raise error(_CKR_MECHANISM_PARAM_INVALID, "unsupported or mismatched PSS hashAlg")
        if mgf != _HASHES[i][2]:
            raise error(_CKR_MECHANISM_PARAM_INVALID, "the MGF1 hash must equal hashAlg")
        if type(slen) is not int or slen < 0:
            raise error(_CKR_MECHANISM_PARAM_INVALID, "bad PSS salt length")
        self.hi = i
        self.salt = slen

    def length(self):
        """The output size: digest length, 64 for ECDSA, k for RSA."""
        if self.scheme == _DIGEST:
            return _HASHES[self.hi][3]
        if self.scheme == _ECDSA:
            return 64
        return len(self.key[0])

    def can_update(self):
        return self.hashed

    def update(self, data):
        if self.hasher is None:
            self.hasher = crypto.hash_new(_HASHES[self.hi][0])
        self.hasher.update(data)
        self.multi = True

    def _input(self, data):
        """The value the primitive gets: the hash (or the caller's raw input)."""
        if data is not None:
            if self.hashed:
                return crypto.digest(_HASHES[self.hi][0], data)
            return data
        if self.hasher is None:
            return crypto.digest(_HASHES[self.hi][0], b"")
        return self.hasher.digest()

    def _check_raw(self, x):
        n = len(x)
        if self.scheme == _ECDSA and not self.hashed and not 20 <= n <= 64:
            raise error(_CKR_DATA_LEN_RANGE, "CKM_ECDSA takes a hash of 20 to 64 bytes")
        if self.scheme == _PKCS1 and n > self.length() - 11:
            raise error(_CKR_DATA_LEN_RANGE, "at most k-11 bytes for CKM_RSA_PKCS")
        if self.scheme == _X509 and n > self.length():
            raise error(_CKR_DATA_LEN_RANGE, "at most k bytes for CKM_RSA_X_509")
        if self.scheme == _PSS and n != _HASHES[self.hi][3]:
            raise error(_CKR_DATA_LEN_RANGE, "CKM_RSA_PKCS_PSS takes a hash of hashAlg's length")

    def _encoded(self, x):
        if self.scheme == _PKCS1 and self.hashed:
            return _HASHES[self.hi][4] + x
        return x

    def digest(self, data=None):
        return self._input(data)

    def sign(self, data=None):
        x = self._input(data)
        self._check_raw(x)
        x = self._encoded(x)
        try:
            if self.scheme == _ECDSA:
                return crypto.ec_sign(self.key, x)
            if self.scheme == _PKCS1:
                return crypto.rsa_sign_pkcs1(self.key, x)
            return crypto.rsa_sign_pss(self.key, x, _HASHES[self.hi][0], self.salt)
        except MemoryError:
            raise error(_CKR_HOST_MEMORY, "not enough RAM to sign")
        except Exception:
            # the backend's message is not passed on: it is about key material
            raise error(_CKR_FUNCTION_FAILED, "the signature could not be made")

    def verify(self, data, sig):
        x = self._input(data)
        self._check_raw(x)
        x = self._encoded(x)
        if len(sig) != self.length():
            raise error(_CKR_SIGNATURE_LEN_RANGE, "the signature has the wrong length")
        key = self.key
        try:
            if self.scheme == _ECDSA:
                ok = crypto.ec_verify(key, x, sig)
            elif self.scheme == _PKCS1:
                ok = crypto.rsa_verify_pkcs1(key[0], key[1], x, sig)
            elif self.scheme == _X509:
                ok = _verify_raw(key[0], key[1], x, sig)
            else:
                ok = crypto.rsa_verify_pss(key[0], key[1], x, _HASHES[self.hi][0], self.salt, sig)
        except MemoryError:
            raise error(_CKR_HOST_MEMORY, "not enough RAM to verify")
        except Exception:
            ok = False
        if not ok:
            raise error(_CKR_SIGNATURE_INVALID)
