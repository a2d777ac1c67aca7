# A stand-in for the esp32 port's `esp32` module (only `Partition`) on the
# unix firmware, for tests. MicroPython code; not frozen into any firmware.
#
# Flash is a host file (env ESP32_FLASH, e.g. a 4 MiB image); the partition
# table is read from a CSV in ESP-IDF's format (env ESP32_PARTITIONS). Both are
# opened when this module is imported, so the flash keeps working after the
# test unmounts the host filesystem at "/" (as the ESP32 boot mounts its own). The
# behaviour follows ports/esp32/esp32_partition.c on top of NOR flash as
# ESP-IDF's esp_partition_* functions see it:
#   - erase works on whole 4096-byte sectors (aligned offset and length, else
#     OSError EINVAL) and sets the bytes to 0xFF;
#   - programming can only clear bits (new = old & data); an attempt to turn a
#     0 bit into 1 is recorded in `stats` (the bytes stay ANDed, as on flash);
#   - reads and writes past the end of the partition raise OSError EINVAL;
#   - readblocks(n, buf[, offset]) reads at n * block_size + offset;
#   - writeblocks(n, buf) erases the sectors it covers first (block_size >= 4096);
#     writeblocks(n, buf, offset) programs only (the caller erased: ioctl 6);
#   - ioctl: 1 INIT, 2 DEINIT, 3 SYNC -> 0; 4 BLOCK_COUNT -> size // block_size;
#     5 BLOCK_SIZE -> block_size; 6 BLOCK_ERASE(block) -> 0 (EINVAL as -22 when
#     block_size is not 4096); anything else -> None.
# stats[label] counts "erase", "write" and "bad_write" per partition.

import os

TYPE_APP = 0
TYPE_DATA = 1
_SECTOR = 4096
_EINVAL = 22
_ENOENT = 2

_TYPES = {"app": 0, "data": 1}
_SUBTYPES = {
    0: {"factory": 0x00, "test": 0x20},
    1: {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04,
        "efuse": 0x05, "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81,
        "spiffs": 0x82, "littlefs": 0x83},
}

stats = {}


def _num(s):
    s = s.strip()
    if s[:2].lower() == "0x":
        return int(s[2:], 16)
    return int(s)


def _read_table():
    rows = []
    with open(os.getenv("ESP32_PARTITIONS")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            cols = [c.strip() for c in line.split(",")]
            name, ptype, sub, off, size = cols[:5]
            t = _TYPES[ptype] if ptype in _TYPES else _num(ptype)
            st = _SUBTYPES.get(t, {}).get(sub)
            if st is None:
                if sub.startswith("ota_"):
                    st = 0x10 + int(sub[4:])
                else:
                    st = _num(sub)
            size = size.upper()
            mult = 1
            if size.endswith("K"):
                size, mult = size[:-1], 1024
            elif size.endswith("M"):
                size, mult = size[:-1], 1024 * 1024
            rows.append((t, st, _num(off), _num(size) * mult, name))
    return rows


_rows = _read_table()
_flash = open(os.getenv("ESP32_FLASH"), "r+b")


def _table():
    return _rows


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = TYPE_APP
    TYPE_DATA = TYPE_DATA

    def __init__(self, id, block_size=_SECTOR, _row=None):
        if _row is not None:
            row = _row
        elif isinstance(id, int):
            if id not in (0, 1):
                raise ValueError
            row = [r for r in _table() if r[0] == TYPE_APP][0]
        else:
            found = [r for r in _table() if r[4] == id]
            if not found:
                raise OSError(_ENOENT)
            row = found[0]
        self._set(row, block_size)

    def _set(self, row, block_size):
        self._type, self._subtype, self._addr, self._size, self._label = row
        self.block_size = block_size
        if self._label not in stats:
            stats[self._label] = {"erase": 0, "write": 0, "bad_write": 0}

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=_SECTOR):
        out = []
        for row in _table():
            if row[0] != type or (subtype != 0xFF and row[1] != subtype):
                continue
            if label is not None and row[4] != label:
                continue
            out.append(Partition(row[4], block_size, row))
        return out

    def __repr__(self):
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=0>" % (
            self._type, self._subtype, self._addr, self._size, self._label)

    def info(self):
        return (self._type, self._subtype, self._addr, self._size, self._label, False)

    # -- esp_partition_read / erase_range / write on NOR flash --------------------

    def _check(self, offset, n):
        if offset < 0 or offset + n > self._size:
            raise OSError(_EINVAL)

    def _read(self, offset, buf):
        self._check(offset, len(buf))
        _flash.seek(self._addr + offset)
        buf[:] = _flash.read(len(buf))

    def _erase(self, offset, n):
        if offset % _SECTOR or n % _SECTOR:
            raise OSError(_EINVAL)
        self._check(offset, n)
        _flash.seek(self._addr + offset)
        _flash.write(b"\xff" * n)
        stats[self._label]["erase"] += n // _SECTOR

    def _program(self, offset, data):
        self._check(offset, len(data))
        _flash.seek(self._addr + offset)
        old = _flash.read(len(data))
        new = bytearray(len(data))
        bad = False
        for i in range(len(data)):
            new[i] = old[i] & data[i]
            if new[i] != data[i]:
                bad = True
        _flash.seek(self._addr + offset)
        _flash.write(new)
        s = stats[self._label]
        s["write"] += 1
        if bad:
            s["bad_write"] += 1

    # -- the block device protocol (as esp32_partition.c) -------------------------

    def readblocks(self, block_num, buf, offset=0):
        self._read(block_num * self.block_size + offset, buf)

    def writeblocks(self, block_num, buf, offset=None):
        addr = block_num * self.block_size
        if offset is None:
            if self.block_size < _SECTOR:
                raise NotImplementedError("stand-in supports block_size >= 4096 only")
            self._erase(addr, len(buf))
        else:
            addr += offset
        self._program(addr, buf)

    def ioctl(self, cmd, arg):
        if cmd in (1, 2, 3):
            return 0
        if cmd == 4:
            return self._size // self.block_size
        if cmd == 5:
            return self.block_size
        if cmd == 6:
            if self.block_size != _SECTOR:
                return -_EINVAL
            self._erase(arg * _SECTOR, _SECTOR)
            return 0
        return None


# NVS (esp32.NVS): what pkcs11.devkey keeps there on a board (the device key
# and the rollback counter). The stand-in keeps every namespace in the "nvs"
# partition of the flash image as one length-prefixed repr() of a dict, read
# at import and rewritten at each commit (through the open flash file, so it
# works after "/" is unmounted). Missing keys raise OSError(-4354)
# (ESP_ERR_NVS_NOT_FOUND) as on the board.
_NVS_NOT_FOUND = -4354


def _nvs_region():
    for t, st, off, size, name in _rows:
        if t == 1 and st == 0x02:
            return off, size
    return None


def _nvs_load():
    r = _nvs_region()
    if r is None:
        return {}
    _flash.seek(r[0])
    n = int.from_bytes(_flash.read(4), "big")
    if n == 0xFFFFFFFF or n == 0 or n > r[1] - 4:
        return {}
    try:
        return eval(_flash.read(n).decode())
    except Exception:
        return {}


_nvs_data = _nvs_load()


class NVS:
    def __init__(self, namespace):
        self.ns = namespace
        self.pending = dict(_nvs_data.get(namespace, {}))

    def _get(self, key):
        if key not in self.pending:
            raise OSError(_NVS_NOT_FOUND)
        return self.pending[key]

    def get_i32(self, key):
        return self._get(key)

    def set_i32(self, key, value):
        self.pending[key] = int(value)

    def get_blob(self, key, buf):
        v = self._get(key)
        buf[:len(v)] = v
        return len(v)

    def set_blob(self, key, value):
        self.pending[key] = bytes(value)

    def erase_key(self, key):
        self._get(key)
        del self.pending[key]

    def commit(self):
        r = _nvs_region()
        if r is None:
            raise OSError(_NVS_NOT_FOUND)
        _nvs_data[self.ns] = dict(self.pending)
        data = repr(_nvs_data).encode()
        if len(data) + 4 > r[1]:
            raise OSError(28)
        _flash.seek(r[0])
        _flash.write(len(data).to_bytes(4, "big") + data)
        _flash.flush()
