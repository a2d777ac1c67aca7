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
}


def configure(**kw):
    """configure(root=None, max_objects=32, max_sessions=10, pin_iterations=1000,
    max_pin_failures=10); unknown names raise ValueError."""
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
