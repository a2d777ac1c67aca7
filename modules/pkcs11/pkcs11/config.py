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
    # PBKDF2-HMAC-SHA256 iterations for new PIN hashes (stored with each hash)
    "pin_iterations": 1000,
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
}


def configure(**kw):
    """configure(root=None, max_objects=32, max_sessions=10, pin_iterations=1000,
    max_pin_failures=10, default_user_pin="0000", public_key_follows_private=True);
    unknown names raise ValueError."""
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
