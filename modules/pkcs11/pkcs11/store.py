"""Records on a filesystem: one file per token object, plus one for the token.

Knows records, not PKCS#11 rules.  A record is a dict {int: bool | int | bytes}.

File layout (all integers big-endian):
    offset size
    0      4    magic b"P11R"
    4      1    format version (1)
    5      1    kind: b"O" object record, b"T" token record
    6      4    object handle (0 in the token record)
    10     2    number of attributes n
    12     ...  n times: type u32, tag u8 (0 False, 1 True, 2 int u64, 3 bytes),
                length u16, value
    end-32 32   SHA-256 of everything before it
A record that fails any check (short, magic, version, kind, handle, lengths,
hash) raises CorruptRecord: it is never used silently.

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
_VERSION = 1
_HDR = 12
_SUM = 32
META = "token.rec"

fault = None

try:
    from hashlib import sha256 as _sha256
except ImportError:
    _sha256 = None


def _hash(data):
    if _sha256 is not None:
        return _sha256(data).digest()
    from . import crypto
    return crypto.digest("sha256", data)


class CorruptRecord(Exception):
    """A record failed its integrity checks (message says which)."""


def _u32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def encode(kind, handle, attrs):
    """Serialize a record: bytes ready to write."""
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
            if len(v) > 0xFFFF:
                raise ValueError("attribute value too long")
            out.append(3)
            out += len(v).to_bytes(2, "big")
            out += v
    out += _hash(out)
    return out


def decode(data, kind, handle=None):
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
    if _hash(mv[:n - _SUM]) != data[n - _SUM:]:
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
        else:
            raise CorruptRecord("unknown attribute tag")
        attrs[t] = v
        i += ln
    if i != end:
        raise CorruptRecord("trailing bytes")
    return h, attrs


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


class Store:
    """The records of one token under `root` (a directory on any mounted VFS)."""

    def __init__(self, root):
        while len(root) > 1 and root.endswith("/"):
            root = root[:-1]
        self.root = root

    def _path(self, name):
        return self.root + "/" + name

    def ensure(self):
        """Create the root directory (and its parents) if missing."""
        if _is_dir(self.root):
            return
        path = "/" if self.root.startswith("/") else ""
        for part in self.root.split("/"):
            if not part:
                continue
            path = path + part
            if not _is_dir(path):
                os.mkdir(path)
            path += "/"

    def scan(self):
        """Handles of the object records present; removes stale temp files."""
        handles = []
        try:
            names = os.listdir(self.root)
        except OSError:
            return handles
        for name in names:
            if name.endswith(".tmp"):
                try:
                    os.remove(self._path(name))
                except OSError:
                    pass
            elif name.endswith(".obj") and len(name) == 12:
                try:
                    handles.append(int(name[:8], 16))
                except ValueError:
                    pass
        handles.sort()
        return handles

    def _read(self, name):
        with open(self._path(name), "rb") as f:
            return f.read()

    def _write(self, name, data):
        final = self._path(name)
        tmp = final + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
            if fault:
                fault("tmp", name)
            try:
                os.rename(tmp, final)
            except OSError:
                # filesystems without rename-over (FAT): not atomic there
                if not _exists(final):
                    raise
                os.remove(final)
                os.rename(tmp, final)
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
        return decode(self._read(self.name(handle)), b"O", handle)[1]

    def save(self, handle, attrs):
        """Create or atomically replace the record of `handle`."""
        self._write(self.name(handle), encode(b"O", handle, attrs))

    def delete(self, handle):
        os.remove(self._path(self.name(handle)))

    def load_meta(self):
        """The token record as a dict, None when there is none yet."""
        try:
            data = self._read(META)
        except OSError:
            return None
        return decode(data, b"T", 0)[1]

    def save_meta(self, attrs):
        self._write(META, encode(b"T", 0, attrs))

    def wipe(self):
        """Remove every object record (C_InitToken)."""
        for h in self.scan():
            self.delete(h)

    def space(self):
        """(total, free) bytes of the filesystem holding the root, or (0, 0)."""
        try:
            st = os.statvfs(self.root)
            return st[0] * st[2], st[0] * st[3]
        except (OSError, AttributeError):
            return 0, 0
