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


def _nvs():
    try:
        import esp32
        return esp32.NVS("pkcs11")
    except (ImportError, AttributeError, OSError):
        return None


def _write_file(path, data):
    from .store import replace_file
    replace_file(path, data, 0o600)


class DeviceKey:
    """The record keys of one store: mac_key() authenticates records, enc_key()
    encrypts secret values; counter() / set_counter() the rollback counter.
    One small class (no backend objects): this runs on boards with a small heap."""

    def __init__(self, root):
        import os
        getenv = getattr(os, "getenv", None)
        self.path = (getenv and getenv("PKCS11_DEVICE_KEY")) or root + ".key"
        self.nvs = _nvs()
        self._mac = self._enc = None

    def _secret(self):
        from . import config
        given = config.get("device_key")
        if given:
            if len(given) != 32:
                raise ValueError("device_key is 32 bytes")
            return bytes(given)
        nvs = self.nvs
        if nvs is not None:
            buf = bytearray(32)
            try:
                if nvs.get_blob("devkey", buf) == 32:
                    return bytes(buf)
            except OSError:
                pass
            k = _random(32)
            nvs.set_blob("devkey", k)
            nvs.commit()
            return k
        try:
            with open(self.path, "rb") as f:
                k = f.read()
        except OSError:
            k = None
        if k is not None:
            if len(k) != 32:
                raise ValueError("the device key file is damaged")
            return k
        k = _random(32)
        _write_file(self.path, k)
        return k

    def _load(self):
        s = self._secret()
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
        """The rollback counter; 0 before the first write, -1 when damaged."""
        if self.nvs is not None:
            try:
                return self.nvs.get_i32("gen")
            except OSError:
                return 0
        try:
            with open(self.path + ".gen", "rb") as f:
                d = f.read()
        except OSError:
            return 0
        return int.from_bytes(d, "big") if len(d) == 8 else -1

    def set_counter(self, n):
        if self.nvs is not None:
            self.nvs.set_i32("gen", n)
            self.nvs.commit()
        else:
            _write_file(self.path + ".gen", n.to_bytes(8, "big"))
