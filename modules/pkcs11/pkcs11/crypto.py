"""The crypto facade: bytes in, bytes out; knows nothing of sessions or objects.

Every function of the backend contract (random_bytes, ec_generate, ec_public,
ec_sign, ec_verify, ec_check_point, rsa_sign_pkcs1, rsa_sign_pss,
rsa_verify_pkcs1, rsa_verify_pss, hash_new, parse_private_key,
parse_public_key, parse_certificate) is looked up here as `crypto.<name>`.
It comes from the C module `_pkcs11` when that module has it, else from the
pure-Python backend `pkcs11.pure.backend` (imported only when first needed).

Choosing the backend (tests, benchmarks, stock firmware):
    crypto.use('pure')     # everything from pkcs11.pure.backend
    crypto.use('c')        # everything from _pkcs11 (missing functions fail)
    crypto.use('auto')     # the default: per function, C first
or set the environment variable PKCS11_CRYPTO=pure|c|auto before first use
(unix firmware).  `crypto.which('ec_sign')` tells which backend serves a name.
"""

_NAMES = (
    "random_bytes", "ec_generate", "ec_public", "ec_sign", "ec_verify", "ec_check_point",
    "rsa_sign_pkcs1", "rsa_sign_pss", "rsa_verify_pkcs1", "rsa_verify_pss", "hash_new",
    "parse_private_key", "parse_public_key", "parse_certificate",
)
_mode = None
_served = {}


def _env_mode():
    try:
        import os
        m = os.getenv("PKCS11_CRYPTO")
    except (ImportError, AttributeError):
        m = None
    return m or "auto"


def use(mode):
    """Select 'auto', 'c' or 'pure' (see the module docstring)."""
    global _mode
    if mode not in ("auto", "c", "pure"):
        raise ValueError("crypto backend must be 'auto', 'c' or 'pure'")
    _mode = mode
    g = globals()
    for n in _NAMES:
        if n in g:
            del g[n]
    _served.clear()


def _c_module():
    try:
        import _pkcs11
        return _pkcs11
    except ImportError:
        return None


def _pure_module():
    from .pure import backend
    return backend


def _get(attr):
    if _mode is None:
        use(_env_mode())
    fn = None
    src = None
    if _mode != "pure":
        c = _c_module()
        fn = getattr(c, attr, None) if c is not None else None
        src = "c"
    if fn is None and _mode != "c":
        fn = getattr(_pure_module(), attr)
        src = "pure"
    if fn is None:
        raise NotImplementedError("no '%s' in the C crypto module" % attr)
    globals()[attr] = fn
    _served[attr] = src
    return fn


def which(attr):
    """'c' or 'pure': the backend serving `attr` (resolving it if needed)."""
    if attr not in _served:
        _get(attr)
    return _served[attr]


def __getattr__(attr):
    if attr in _NAMES:
        return _get(attr)
    raise AttributeError(attr)


def aead():
    """(aead_seal, aead_open) for AES-256-GCM from the C module whenever the
    firmware has it (whatever use() chose: records must stay readable), else
    None: the pure backend has no AES (the store then seals with its SHA-256
    keystream)."""
    c = _c_module()
    s = getattr(c, "aead_seal", None) if c is not None else None
    return (s, c.aead_open) if s is not None else None


# Helpers built on the contract ------------------------------------------------

def _hash_new():
    return globals().get("hash_new") or _get("hash_new")


def digest(hash_name, data):
    h = _hash_new()(hash_name)
    h.update(data)
    return h.digest()


def pbkdf2_sha256(password, salt, iterations):
    """PBKDF2-HMAC-SHA256 with a 32-byte output (one block), for PIN hashing."""
    hn = _hash_new()
    if len(password) > 64:
        password = digest("sha256", password)
    key = password + bytes(64 - len(password))
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)

    def prf(msg):
        inner = hn("sha256")
        inner.update(ipad)
        inner.update(msg)
        outer = hn("sha256")
        outer.update(opad)
        outer.update(inner.digest())
        return outer.digest()

    u = prf(salt + b"\x00\x00\x00\x01")
    # XOR the blocks as one big integer: a C loop, not 32 bytecode steps
    acc = int.from_bytes(u, "big")
    for _ in range(iterations - 1):
        u = prf(u)
        acc ^= int.from_bytes(u, "big")
    return acc.to_bytes(32, "big")


def equal(a, b):
    """Constant-time comparison of two byte strings of the same length."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0
