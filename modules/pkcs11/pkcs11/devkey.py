"""The device key and the rollback counter of a token store (issue 10, finding 3).

Every record is authenticated with HMAC-SHA256 under a key derived from a
device-unique 32-byte secret that is NOT kept in the token directory, so a
copy, edit or transplant of the token files alone cannot produce records this
device accepts.  A generation counter kept beside the key (not in the token
directory) is raised with every write of the token record; a token record older
than the counter is a rollback and the token is damaged.

Where the secret lives, first match wins:
  1. config.configure(device_key=<32 bytes>)   the application supplies it (for
     instance from an ESP32 HMAC eFuse key via its own C code)
  2. ESP32: NVS namespace "pkcs11", blob "devkey" and i32 "gen"; protected at
     rest when NVS encryption is on (docs/security.md, ESP32 production steps)
  3. a file: $PKCS11_DEVICE_KEY (unix), else "<token dir>.key" beside the token
     directory (outside it), created once with random bytes and mode 0600; the
     counter is "<key file>.gen" (replaced atomically)
The secret is created on first use.  Losing it makes every record unreadable:
the token is then damaged and can only be erased.
"""

_LABEL_MAC = b"pkcs11 record mac v2"
_LABEL_ENC = b"pkcs11 record enc v2"


def _sha256():
    try:
        from hashlib import sha256
        return sha256
    except ImportError:
        from . import crypto
        hn = crypto.hash_new
        return lambda: hn("sha256")


def hmac_sha256(key, *parts):
    """HMAC-SHA256 over the concatenation of parts (no joined copy is made)."""
    sha = _sha256()
    if len(key) > 64:
        h = sha()
        h.update(key)
        key = h.digest()
    pad = bytearray(64)
    pad[:len(key)] = key
    for i in range(64):
        pad[i] ^= 0x36
    inner = sha()
    inner.update(pad)
    for p in parts:
        inner.update(p)
    for i in range(64):
        pad[i] ^= 0x36 ^ 0x5C
    outer = sha()
    outer.update(pad)
    outer.update(inner.digest())
    return outer.digest()


def _random(n):
    from . import crypto
    return crypto.random_bytes(n)


class _FileBackend:
    def __init__(self, path):
        self.path = path

    def secret(self):
        from .store import chmod
        try:
            with open(self.path, "rb") as f:
                k = f.read()
        except OSError:
            k = None
        if k is not None:
            if len(k) != 32:
                raise ValueError("the device key file is damaged")
            return k
        import os
        k = _random(32)
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            chmod(tmp, 0o600)
            f.write(k)
            f.flush()
        os.rename(tmp, self.path)
        return k

    def counter(self):
        try:
            with open(self.path + ".gen", "rb") as f:
                d = f.read()
        except OSError:
            return 0
        return int.from_bytes(d, "big") if len(d) == 8 else -1

    def set_counter(self, n):
        import os
        from .store import chmod
        final = self.path + ".gen"
        tmp = final + ".tmp"
        with open(tmp, "wb") as f:
            chmod(tmp, 0o600)
            f.write(n.to_bytes(8, "big"))
            f.flush()
        try:
            os.rename(tmp, final)
        except OSError:
            os.remove(final)
            os.rename(tmp, final)


class _NVSBackend:
    def __init__(self, nvs):
        self.nvs = nvs

    def secret(self):
        buf = bytearray(32)
        try:
            if self.nvs.get_blob("devkey", buf) == 32:
                return bytes(buf)
        except OSError:
            pass
        k = _random(32)
        self.nvs.set_blob("devkey", k)
        self.nvs.commit()
        return k

    def counter(self):
        try:
            return self.nvs.get_i32("gen")
        except OSError:
            return 0

    def set_counter(self, n):
        self.nvs.set_i32("gen", n)
        self.nvs.commit()


class _FixedBackend:
    """A secret given by the application; the counter lives in a file."""

    def __init__(self, secret, counter_backend):
        self._secret = bytes(secret)
        self._c = counter_backend

    def secret(self):
        return self._secret

    def counter(self):
        return self._c.counter()

    def set_counter(self, n):
        self._c.set_counter(n)


def _file_path(root):
    import os
    getenv = getattr(os, "getenv", None)
    if getenv is not None:
        p = getenv("PKCS11_DEVICE_KEY")
        if p:
            return p
    return root + ".key"


def backend_for(root):
    from . import config
    given = config.get("device_key")
    nvs = None
    try:
        import esp32
        nvs = esp32.NVS("pkcs11")
    except (ImportError, AttributeError, OSError):
        pass
    if given:
        if len(given) != 32:
            raise ValueError("device_key is 32 bytes")
        return _FixedBackend(given, _NVSBackend(nvs) if nvs else _FileBackend(_file_path(root)))
    if nvs is not None:
        return _NVSBackend(nvs)
    return _FileBackend(_file_path(root))


class DeviceKey:
    """The record keys of one store: mac_key authenticates records, enc_key
    encrypts private values; counter() / set_counter() the rollback counter."""

    def __init__(self, root):
        self._b = backend_for(root)
        self._mac = None
        self._enc = None

    def _load(self):
        s = self._b.secret()
        self._mac = hmac_sha256(s, _LABEL_MAC)
        self._enc = hmac_sha256(s, _LABEL_ENC)

    def mac_key(self):
        if self._mac is None:
            self._load()
        return self._mac

    def enc_key(self):
        if self._enc is None:
            self._load()
        return self._enc

    def counter(self):
        return self._b.counter()

    def set_counter(self, n):
        self._b.set_counter(n)
