# test_nor_flash_cuts.py: a NOR-flash block device model for VfsLfs2 (erase before write,
# power cut after the n-th program or erase).
import os, gc
SECTOR = 4096
class NOR:
    def __init__(self, n, data=None):
        self.n = n
        self.data = data if data is not None else bytearray(b"\xff" * (SECTOR * n))
        self.log = None
        self.violations = 0
    def readblocks(self, b, buf, off=0):
        a = b * SECTOR + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, b, buf, off=None):
        a = b * SECTOR + (off or 0)
        if off is None:
            self.ioctl(6, b)
        if self.log is not None:
            self.log.append(("p", a, bytes(buf)))
        program(self.data, a, buf, self)
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return SECTOR
        if op == 6:
            if self.log is not None:
                self.log.append(("e", arg * SECTOR, None))
            erase(self.data, arg * SECTOR, SECTOR)
            return 0
        return 0
def program(data, a, buf, dev=None):
    for i in range(len(buf)):
        old = data[a + i]
        new = old & buf[i]
        if dev is not None and new != buf[i]:
            dev.violations += 1
        data[a + i] = new
def erase(data, a, n):
    data[a:a + n] = b"\xff" * n
def replay(base, ops, k, torn):
    img = bytearray(base)
    for kind, a, buf in ops[:k]:
        if kind == "e":
            erase(img, a, SECTOR)
        else:
            program(img, a, buf)
    if torn:
        kind, a, buf = ops[k]
        if kind == "e":
            erase(img, a, SECTOR // 2)
        else:
            program(img, a, buf[:len(buf) // 2])
    return img
