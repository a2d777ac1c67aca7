"""ESP32 flash encryption of the token partition (issue 10, finding 2).

ESP-IDF encrypts only partitions flagged `encrypted`, and writes to an
encrypted partition must come in 16-byte units at 16-byte aligned offsets.
Checked without ESP-IDF: the partition table's flag, and every write littlefs
makes through p11boot's mount (on the unix firmware, a recording partition).
"""

from __future__ import annotations

import ast
import re

from harness.paths import BUILD, ROOT

CSV = ROOT / "boards" / "ESP32_PKCS11" / "partitions.csv"
C3_CSV = ROOT / "boards" / "ESP32_C3_PKCS11" / "partitions.csv"
FLASH_ENCRYPTION_UNIT = 16


def _rows(path):
    rows = {}
    for line in path.read_text().splitlines():
        cols = [c.strip() for c in line.split("#", 1)[0].split(",")]
        if len(cols) >= 5 and cols[0]:
            flags = {f.strip() for f in cols[5].split(":")} if len(cols) > 5 and cols[5] else set()
            rows[cols[0]] = flags
    return rows


def test_token_partition_flagged_encrypted_on_both_boards():
    for path in (CSV, C3_CSV):
        rows = _rows(path)
        assert "encrypted" in rows["token"], path
        # ESP-IDF refuses encrypted NVS partitions (NVS has its own encryption).
        assert "encrypted" not in rows["nvs"], path


def test_p11boot_prog_size_is_a_multiple_of_the_encryption_unit():
    src = (ROOT / "modules" / "p11boot" / "p11boot.py").read_text()
    prog = int(re.search(r"^PROG_SIZE = (\d+)", src, re.M).group(1))
    assert prog % FLASH_ENCRYPTION_UNIT == 0
    # every mount and mkfs in p11boot passes it
    calls = re.findall(r"VfsLfs2(?:\.mkfs)?\(([^)]*)\)", src)
    assert calls and all("progsize=PROG_SIZE" in c for c in calls), calls
    # MicroPython's own default (a VfsLfs2 made elsewhere) is aligned too
    lfs = (BUILD / "micropython" / "extmod" / "vfs_lfs.c").read_text()
    default = int(re.search(r"MP_QSTR_progsize,[^}]*\{\.u_int = (\d+)\}", lfs).group(1))
    assert default % FLASH_ENCRYPTION_UNIT == 0


RECORD = """
import p11boot, os

class Part:
    # esp32.Partition's block protocol; records every program operation
    def __init__(self, blocks):
        self.mem = bytearray(b"\\xff" * (4096 * blocks))
        self.blocks = blocks
        self.writes = []
    def readblocks(self, n, buf, off=0):
        a = n * 4096 + off
        buf[:] = self.mem[a:a + len(buf)]
    def writeblocks(self, n, buf, off=None):
        if off is None:
            self.ioctl(6, n)
            off = 0
        a = n * 4096 + off
        self.writes.append((a, len(buf)))
        for i in range(len(buf)):
            self.mem[a + i] &= buf[i]
    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return 4096
        if op == 6:
            self.mem[arg * 4096:(arg + 1) * 4096] = b"\\xff" * 4096
            return 0
        if op in (1, 2, 3):
            return 0

p = Part(32)
p11boot.format_token(p, "/tok")
for i in range(6):
    with open("/tok/%08x.obj" % i, "wb") as f:
        f.write(bytes(range(256)) * (1 + i * 3) + b"x" * (i * 7 + 1))
os.remove("/tok/00000002.obj")
os.rename("/tok/00000003.obj", "/tok/00000009.obj")
import vfs
vfs.umount("/tok")
p11boot.mount_token(p, "/tok")
with open("/tok/token.rec", "wb") as f:
    f.write(b"r" * 77)
print(repr(p.writes))
"""


def test_littlefs_writes_on_the_token_partition_are_16_byte_aligned(unix_fw):
    writes = ast.literal_eval(unix_fw.run(RECORD).strip().splitlines()[-1])
    assert len(writes) > 20
    bad = [(a, n) for a, n in writes if a % FLASH_ENCRYPTION_UNIT or n % FLASH_ENCRYPTION_UNIT]
    assert not bad, bad[:10]
