"""Records on a filesystem: one file per token object, plus one for the token.

Knows records, not PKCS#11 rules.  A record is a dict {int: bool | int | bytes}.

File layout (all integers big-endian):
    offset size
    0      4    magic b"P11R"
    4      1    format version (2)
    5      1    kind: b"O" object record, b"T" token record
    6      4    object handle; in the token record its generation
    10     2    number of attributes n
    12     ...  n times: type u32, tag u8 (0 False, 1 True, 2 int u64, 3 bytes,
                4 sealed bytes), length u16, value
A sealed value (private key material, see objects.secret_types) is, with the
C module (tag 6), AES-256-GCM under enc_key (derived from the device key): a
12-byte random nonce, the ciphertext, the 16-byte tag; the additional data is
the record kind, the handle and the attribute type, so a sealed value cannot be
moved to another object or attribute.  Without the C module (the pure backend
has no AES; tag 4) it is a 16-byte random nonce followed by the value XORed with
a keystream: block i is SHA-256(enc_key || nonce || i as u32).  Records of
either tag are read; writes use tag 6 where AES-GCM is available, so a record
sealed the older way is re-sealed when it is next written.
Tags 7 and 5 (a CKA_PRIVATE object's secret values once a user PIN is set): a
4-byte id of the user key, then a sealed value as tag 6 or 4 under a key derived
from the device encryption key AND the user key (random, kept in the token
record only wrapped under PIN-derived keys, see token.py): without the PIN the
value cannot be decrypted even with the device key.
The record's MAC covers the ciphertext (encrypt-then-MAC).  A flash dump
without the device key shows neither the value nor anything derived from it.
    end-32 32   HMAC-SHA256 of everything before it under the device key
                (pkcs11.devkey: kept outside the token directory)
A record that fails any check (short, magic, version, kind, handle, lengths,
MAC) raises CorruptRecord: it is never used silently.  Version 1 records (a
plain SHA-256, which anyone could recompute) are refused.

Rollback: every write of the token record raises its generation and then the
device's counter (devkey); a token record older than the counter, or a missing
token record once the counter has started, raises CorruptRecord.  Objects are
covered through the token record: it holds a directory (attribute _DIR: handle
and epoch, u32 each, of every object), and an object record carries its epoch
(attribute _EPOCH: the generation of the token record written right after it).
Writing an object writes its record, then the token record with the new
directory; destroying one removes its record, then writes the directory.  So
an object record older than its directory entry (a replayed older version), or
one the directory does not know (a destroyed object put back), is damaged.  A
cut between the two writes leaves the object one generation ahead (taken, and
the directory written again) or an entry without a file (dropped).  Both
attributes are the store's: load() and load_meta() never return them.  A token
record without a directory (written before it existed) gets one at its next
write.

Files in the root: "<handle as 8 hex digits>.obj" and "token.rec".  Writes are
atomic replaces: the record goes to "<name>.tmp", is flushed (fsync on the unix
port, lfs_file_sync on littlefs) and closed, then renamed over the old name
(rename is atomic on POSIX and littlefs).  A power cut leaves the old or the
new record; leftover .tmp files belong to writes that never completed and are
removed by scan().

`fault` is a test hook: when set, fault(stage, name) is called after the temp
file is written ("tmp") and after the rename ("renamed"); raising SystemExit
there simulates a power cut at that point.
"""

import os

_MAGIC = b"P11R"
_VERSION = 2
_HDR = 12
_SUM = 32
META = "token.rec"
_EPOCH = 0xFFFFFFFE     # object records: the token generation they belong to
_DIR = 0xFFFFFFFD       # token record: handle -> epoch of every object

fault = None

try:
    from _pkcs11 import chmod as _chmod_impl
except (ImportError, AttributeError):
    # CPython has os.chmod; littlefs/FAT on a board have no permissions to set
    _chmod_impl = getattr(os, "chmod", None)


def chmod(path, mode):
    """Set POSIX permissions where the filesystem has them (unix port); a
    no-op on boards."""
    if _chmod_impl is not None:
        try:
            _chmod_impl(path, mode)
        except OSError:
            pass

def replace_file(path, data, mode=None):
    """Write a small file of the token directory whole: a temporary file, flushed
    (and given `mode` first, when set), renamed over `path`.  Filesystems without
    rename-over (FAT) remove the old file first.  Records use Store._write, which
    also keeps the old record aside and has the fault hook."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        if mode is not None:
            chmod(tmp, mode)
        f.write(data)
        f.flush()
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)


def _mac(key, data):
    from .devkey import hmac_sha256
    return hmac_sha256(key, data)


class CorruptRecord(Exception):
    """A record failed its integrity checks (message says which)."""


def _u32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def _keystream_xor(enc_key, nonce, buf):
    """XOR buf in place with the keystream of (enc_key, nonce): block i is
    SHA-256(enc_key || nonce || i), fixed-length inputs with a secret prefix
    (no length extension applies), one hash object per 32 bytes: little
    garbage on a board's heap while a TLS handshake holds most of it."""
    from .devkey import _sha256
    sha = _sha256()
    n = len(buf)
    i = 0
    blk = 0
    while i < n:
        h = sha()
        h.update(enc_key)
        h.update(nonce)
        h.update(blk.to_bytes(4, "big"))
        ks = h.digest()
        for j in range(min(32, n - i)):
            buf[i + j] ^= ks[j]
        i += 32
        blk += 1


def seal(enc_key, value, aad=None):
    """(tag, sealed bytes): AES-256-GCM (tag 6) when the C module has it and
    `aad` binds the value to its place, else the SHA-256 keystream (tag 4)."""
    from . import crypto
    gcm = crypto.aead() if aad is not None else None
    if gcm is not None:
        nonce = crypto.random_bytes(12)
        return 6, nonce + gcm[0](enc_key, nonce, aad, value)
    nonce = crypto.random_bytes(16)
    out = bytearray(16 + len(value))
    out[:16] = nonce
    out[16:] = value
    _keystream_xor(enc_key, nonce, memoryview(out)[16:])
    return 4, out


def unseal(enc_key, sealed, aad=None):
    """The value of a sealed attribute: tag 6 when aad is given, else tag 4."""
    if aad is not None:
        from . import crypto
        gcm = crypto.aead()
        if gcm is None:
            raise CorruptRecord("sealed with AES-GCM, which this firmware lacks "
                                "(it needs the _pkcs11 C module)")
        try:
            return gcm[1](enc_key, bytes(sealed[:12]), aad, sealed[12:])
        except ValueError:
            raise CorruptRecord("a sealed value does not verify")
    out = bytearray(sealed[16:])
    _keystream_xor(enc_key, bytes(sealed[:16]), out)
    return bytes(out)


def _aad(kind, handle, t):
    return kind + handle.to_bytes(4, "big") + t.to_bytes(4, "big")


def encode(kind, handle, attrs, key, secret=(), enc_key=None, ukid=None):
    """Serialize a record authenticated under `key` (the MAC key), the values
    of the types in `secret` sealed under `enc_key`: bytes ready to write."""
    out = bytearray(_MAGIC)
    out.append(_VERSION)
    out += kind
    out += handle.to_bytes(4, "big")
    out += len(attrs).to_bytes(2, "big")
    for t, v in attrs.items():
        out += t.to_bytes(4, "big")
        if v is True or v is False:
            out.append(1 if v else 0)
            out += b"\x00\x00"
        elif type(v) is int:
            out.append(2)
            out += b"\x00\x08"
            out += v.to_bytes(8, "big")
        else:
            tag = 3
            if t in secret:
                tag, v = seal(enc_key, v, _aad(kind, handle, t))
                if ukid is not None:
                    v = ukid + v
                    tag += 1
            if len(v) > 0xFFFF:
                raise ValueError("attribute value too long")
            out.append(tag)
            out += len(v).to_bytes(2, "big")
            out += v
    out += _mac(key, out)
    return out


LOCKED = None      # the value of a tag 5 attribute while the user key is locked


def decode(data, kind, handle, key, enc_key=None, user=None):
    """user: (user key id, combined key) while the user key is unlocked."""
    """Parse and verify a record; returns (handle, attrs).  Raises CorruptRecord."""
    n = len(data)
    if n < _HDR + _SUM:
        raise CorruptRecord("truncated")
    if data[:4] != _MAGIC:
        raise CorruptRecord("bad magic")
    if data[4] != _VERSION:
        raise CorruptRecord("unsupported format version %d" % data[4])
    if data[5:6] != kind:
        raise CorruptRecord("wrong record kind")
    mv = memoryview(data)
    if not _equal(_mac(key, mv[:n - _SUM]), mv[n - _SUM:]):
        raise CorruptRecord("integrity check failed")
    h = _u32(data, 6)
    if handle is not None and h != handle:
        raise CorruptRecord("handle does not match the file name")
    count = (data[10] << 8) | data[11]
    attrs = {}
    i = _HDR
    end = n - _SUM
    for _ in range(count):
        if i + 7 > end:
            raise CorruptRecord("truncated attribute")
        t = _u32(data, i)
        tag = data[i + 4]
        ln = (data[i + 5] << 8) | data[i + 6]
        i += 7
        if i + ln > end:
            raise CorruptRecord("attribute overruns the record")
        if tag == 0 or tag == 1:
            v = tag == 1
        elif tag == 2:
            v = int.from_bytes(mv[i:i + ln], "big")
        elif tag == 3:
            v = bytes(mv[i:i + ln])
        elif (tag == 4 and ln >= 16) or (tag == 6 and ln >= 28):
            v = unseal(enc_key, mv[i:i + ln], _aad(kind, h, t) if tag == 6 else None)
        elif (tag == 5 and ln >= 20) or (tag == 7 and ln >= 32):
            if user is None:
                v = LOCKED
            elif user[0] != data[i:i + 4]:
                raise CorruptRecord("sealed under another user key")
            else:
                v = unseal(user[1], mv[i + 4:i + ln], _aad(kind, h, t) if tag == 7 else None)
        else:
            raise CorruptRecord("unknown attribute tag")
        attrs[t] = v
        i += ln
    if i != end:
        raise CorruptRecord("trailing bytes")
    return h, attrs


def _equal(a, b):
    r = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        r |= a[i] ^ b[i]
    return r == 0


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _dir_encode(d):
    out = bytearray()
    for h in sorted(d):
        out += h.to_bytes(4, "big")
        out += d[h].to_bytes(4, "big")
    return bytes(out)


def _dir_decode(b):
    if len(b) % 8:
        raise CorruptRecord("bad object directory")
    return {_u32(b, i): _u32(b, i + 4) for i in range(0, len(b), 8)}


class Store:
    """The records of one token under `root` (a directory on any mounted VFS)."""

    def __init__(self, root, key=None):
        while len(root) > 1 and root.endswith("/"):
            root = root[:-1]
        self.root = root
        self._private = False
        if key is None:
            from .devkey import DeviceKey
            key = DeviceKey(root)
        self.key = key
        self.generation = 0
        self._user = None       # (id, key) of the unlocked user key
        self._meta = None       # the token record's attributes as last read or written
        self._dir = None        # handle -> epoch; None: no directory yet (older token)
        self._ahead = False     # an object was taken one generation ahead (a cut write)

    def _path(self, name):
        return self.root + "/" + name

    def ensure(self):
        """Create the root directory (and its parents) if missing; the root is
        made private to the owner (0700) on hosts with permissions."""
        if _is_dir(self.root):
            if not self._private:
                chmod(self.root, 0o700)
                self._private = True
            return
        path = "/" if self.root.startswith("/") else ""
        for part in self.root.split("/"):
            if not part:
                continue
            path = path + part
            if not _is_dir(path):
                os.mkdir(path)
            path += "/"
        chmod(self.root, 0o700)
        self._private = True

    def scan(self):
        """Handles of the object records present; removes stale temp files."""
        handles = []
        try:
            names = os.listdir(self.root)
        except OSError:
            return handles
        tighten = _chmod_impl is not None and not self._private
        if tighten:
            # a store made by an older version (0755/0644): make it private
            chmod(self.root, 0o700)
            self._private = True
        for name in names:
            if tighten:
                chmod(self._path(name), 0o600)
            if name.endswith(".tmp"):
                try:
                    os.remove(self._path(name))
                except OSError:
                    pass
            elif name.endswith(".old"):
                try:
                    if not self._restore(name[:-4]):
                        os.remove(self._path(name))
                    elif name[:-4].endswith(".obj") and len(name) == 16:
                        handles.append(int(name[:8], 16))
                except (OSError, ValueError):
                    pass
            elif name.endswith(".obj") and len(name) == 12:
                try:
                    handles.append(int(name[:8], 16))
                except ValueError:
                    pass
        handles.sort()
        return handles

    def _restore(self, name):
        """Put back "<name>.old" left by a cut FAT replace; True if it did."""
        final = self._path(name)
        if not _exists(final) and _exists(final + ".old"):
            os.rename(final + ".old", final)
            return True
        return False

    def _read(self, name):
        try:
            f = open(self._path(name), "rb")
        except OSError:
            if not self._restore(name):
                raise
            f = open(self._path(name), "rb")
        with f:
            return f.read()

    def _write(self, name, data):
        final = self._path(name)
        tmp = final + ".tmp"
        try:
            with open(tmp, "wb") as f:
                chmod(tmp, 0o600)
                f.write(data)
                f.flush()
            if fault:
                fault("tmp", name)
            try:
                os.rename(tmp, final)
            except OSError:
                # filesystems without rename-over (FAT): move the old record
                # aside first, so a cut leaves it (as "<name>.old", restored by
                # _restore) and never no record at all
                if not _exists(final):
                    raise
                old = final + ".old"
                if _exists(old):
                    os.remove(old)
                os.rename(final, old)
                if fault:
                    fault("old", name)
                os.rename(tmp, final)
                os.remove(old)
        except Exception:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise
        if fault:
            fault("renamed", name)

    @staticmethod
    def name(handle):
        return "%08x.obj" % handle

    def load(self, handle):
        """The attributes of object `handle`; CorruptRecord or OSError on failure."""
        attrs = self._decode_object(handle)
        e = attrs.pop(_EPOCH, 0)
        if self._dir is not None and not self._epoch_ok(handle, e):
            # another process may have written since this one read the directory
            self._sync()
            if not self._epoch_ok(handle, e):
                have = self._dir.get(handle)
                if have is None:
                    raise CorruptRecord("not in the token's directory (a destroyed object put back?)")
                raise CorruptRecord("rolled back (epoch %d, the directory says %d)" % (e, have))
        return attrs

    def _decode_object(self, handle):
        """The verified attributes of object `handle`, the store's _EPOCH included."""
        data = self._read(self.name(handle))
        return decode(data, b"O", handle, self._mac_key(), self.key.enc_key(), self._user)[1]

    def _epoch_ok(self, handle, e):
        d = self._dir
        if d is None:
            return True
        have = d.get(handle)
        if have is not None and e == have:
            return True
        if e == self.generation + 1 and (have is None or e > have):
            # its write completed, the token record's did not: take it
            d[handle] = e
            self._ahead = True
            return True
        return False

    def reconcile(self, handles):
        """After a scan: drop directory entries whose record is gone (a cut
        destroy) and write the directory when load() took an object that was
        one generation ahead.  Best effort: storage may be read-only."""
        d = self._dir
        if d is None or self._meta is None:
            return
        present = set(handles)
        gone = [h for h in d if h not in present]
        for h in gone:
            del d[h]
        if gone or self._ahead:
            try:
                self.save_meta(self._meta)
            except OSError:
                pass

    def _mac_key(self):
        try:
            return self.key.mac_key()
        except ValueError as e:
            raise CorruptRecord(str(e))
        except OSError:
            raise CorruptRecord("the device key cannot be read or made")

    def save(self, handle, attrs, secret=(), user=False):
        """Create or atomically replace the record of `handle`; the values of
        the types in `secret` are encrypted at rest, with `user` also under the
        unlocked user key (when there is one)."""
        k = self.key
        enc = k.enc_key() if secret else None
        ukid = None
        if secret and user and self._user is not None:
            ukid, enc = self._user
        self._sync()
        epoch = self._next_generation()
        rec = dict(attrs)
        rec[_EPOCH] = epoch
        self._write(self.name(handle), encode(b"O", handle, rec, k.mac_key(), secret, enc, ukid))
        if self._meta is not None:
            d = self._directory()
            d[handle] = epoch
            self.save_meta(self._meta)

    def set_user_key(self, uk):
        """Unlock (32 bytes) or lock (None) the user key layer."""
        if uk is None:
            self._user = None
            return
        from .devkey import hmac_sha256
        self._user = (hmac_sha256(uk, b"user key id")[:4], hmac_sha256(self.key.enc_key(), uk))

    def delete(self, handle):
        os.remove(self._path(self.name(handle)))
        if fault:
            fault("removed", self.name(handle))
        self._sync()
        if self._meta is not None:
            self._directory().pop(handle, None)
            self.save_meta(self._meta)

    def _sync(self):
        """Re-read the token record before a write (another process may have
        written it since), keeping what this one knows when it cannot."""
        try:
            self.load_meta()
        except (CorruptRecord, OSError):
            pass

    def _directory(self):
        """The directory, made from the records present when the token record
        has none yet (a token written before directories)."""
        if self._dir is None:
            d = {}
            for h in self.scan():
                try:
                    d[h] = self._decode_object(h).get(_EPOCH, 0)
                except (CorruptRecord, OSError):
                    pass
            self._dir = d
        return self._dir

    def _next_generation(self):
        return max(self.generation, self.key.counter()) + 1

    def load_meta(self):
        """The token record as a dict, None when there is none yet (and the
        device counter never started).  CorruptRecord when it fails its MAC,
        is older than the device's counter (rollback) or went missing."""
        count = self.key.counter()
        if count < 0:
            raise CorruptRecord("the rollback counter is damaged")
        try:
            data = self._read(META)
        except OSError:
            if count:
                raise CorruptRecord("the token record is missing")
            return None
        gen, attrs = decode(data, b"T", None, self._mac_key())
        d = attrs.pop(_DIR, None)
        if gen < count:
            raise CorruptRecord("rolled back (generation %d, device counter %d)" % (gen, count))
        if gen > count + 1:
            raise CorruptRecord("generation %d ahead of the device counter %d" % (gen, count))
        if gen == count + 1:
            # the write of the counter was cut after the record's rename
            self.key.set_counter(gen)
        self.generation = gen
        self._dir = _dir_decode(d) if d is not None else None
        self._meta = attrs
        return attrs

    def save_meta(self, attrs):
        """Write the token record with the next generation and the object
        directory, then raise the device's counter to it.  The caller has just
        read the token record (load_meta: the token re-reads it before every
        change of PINs or counts) or erased it, so the directory held is current."""
        gen = self._next_generation()
        rec = dict(attrs)
        rec[_DIR] = _dir_encode(self._directory())
        self._write(META, encode(b"T", gen, rec, self.key.mac_key()))
        self._meta = attrs
        self._ahead = False
        self.generation = gen
        self.key.set_counter(gen)
        if fault:
            fault("counter", META)

    def erase(self):
        """Remove every record, the token record too (a damaged token).  The
        device key and its counter stay: the next token record continues the
        generations."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        for name in names:
            if name.endswith(".obj") or name.endswith(".tmp") or name.endswith(".old") or name == META:
                os.remove(self._path(name))
        self._meta = None
        self._dir = {}

    def wipe(self):
        """Remove every object record (C_InitToken, which then writes the token
        record: the directory is empty from then on; a cut before that leaves
        entries without records, which are dropped)."""
        for h in self.scan():
            os.remove(self._path(self.name(h)))
        self._dir = {}

    def space(self):
        """(total, free) bytes of the filesystem holding the root, or (0, 0)."""
        try:
            st = os.statvfs(self.root)
            return st[0] * st[2], st[0] * st[3]
        except (OSError, AttributeError):
            return 0, 0
