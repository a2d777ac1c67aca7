"""Token configuration: where the records live and a few limits.

The storage root is resolved, first match wins:
  1. configure(root=...)                 explicit, before C_Initialize
  2. the environment variable PKCS11_TOKEN_DIR (unix firmware: os.getenv)
  3. /token when that directory exists    (the ESP32 board mounts its token
                                           littlefs partition there)
  4. a default on the root filesystem:    $HOME/.micropython/pkcs11-token on the
                                           unix firmware, /pkcs11-token on a board
                                           (a name that cannot shadow the pkcs11
                                           package on sys.path)
configure() takes effect at the next C_Initialize.
"""

_settings = {
    "root": None,
    # at most this many token objects (CKR_DEVICE_MEMORY beyond)
    "max_objects": 32,
    # at most this many open sessions (CKR_SESSION_COUNT beyond)
    "max_sessions": 10,
    # PBKDF2-HMAC-SHA256 iterations for new PIN hashes (stored with each hash);
    # None: PIN_ITERATIONS_C with the C module's SHA-256, else PIN_ITERATIONS_PURE
    "pin_iterations": None,
    # consecutive wrong PINs before CKR_PIN_LOCKED
    "max_pin_failures": 10,
    # the PIN C_Login(CKU_USER) accepts while the token has no user PIN: corePKCS11's
    # configPKCS11_DEFAULT_USER_PIN, which FreeRTOS code passes on every session.
    # None: CKR_USER_PIN_NOT_INITIALIZED for every PIN, as the standard answers.
    "default_user_pin": "0000",
    # C_GenerateKeyPair: a public template without CKA_TOKEN takes the private
    # template's CKA_TOKEN (corePKCS11 keeps the public key FreeRTOS code makes
    # that way); False: CKA_TOKEN defaults to FALSE, the standard's default.
    "public_key_follows_private": True,
    # 32 bytes: the device-unique record key (default: see pkcs11.devkey)
    "device_key": None,
}


# About 0.5 s per PIN check on an ESP32 at 240 MHz with the C module (issue 10:
# measured as guest instructions per iteration on qemu, bench/pin_kdf_cost.py,
# and docs/security.md for the estimate).  The pure-Python SHA-256 is far
# slower: its default keeps a PIN check under a few seconds there.
PIN_ITERATIONS_C = 2700
PIN_ITERATIONS_PURE = 1000


def pin_iterations():
    n = _settings["pin_iterations"]
    if n:
        return n
    from . import crypto
    return PIN_ITERATIONS_C if crypto.which("hash_new") == "c" else PIN_ITERATIONS_PURE


def configure(**kw):
    """configure(root=None, max_objects=32, max_sessions=10, pin_iterations=None,
    max_pin_failures=10, default_user_pin="0000", public_key_follows_private=True,
    device_key=None); unknown names raise ValueError."""
    for k in kw:
        if k not in _settings:
            raise ValueError("unknown setting " + k)
    _settings.update(kw)


def get(name):
    return _settings[name]


def _isdir(path):
    try:
        import os
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def token_dir():
    """The storage root directory (see the module docstring)."""
    root = _settings["root"]
    if root:
        return root
    import os
    getenv = getattr(os, "getenv", None)
    if getenv is not None:
        root = getenv("PKCS11_TOKEN_DIR")
        if root:
            return root
    if _isdir("/token"):
        return "/token"
    if getenv is not None:
        home = getenv("HOME")
        if home:
            return home + "/.micropython/pkcs11-token"
    return "/pkcs11-token"
