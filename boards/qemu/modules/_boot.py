# Runs at every (soft) reset before boot.py: mount the flash image at "/".
# A blank image (no littlefs superblock) is formatted; an image that has one but
# does not mount is left alone, so a damaged token store is never wiped silently.
import vfs
import qemu

_bdev = qemu.Flash()
try:
    vfs.mount(vfs.VfsLfs2(_bdev), "/")
except OSError as _e:
    _b = bytearray(16)
    _blank = True
    for _n in (0, 1):
        _bdev.readblocks(_n, _b, 0)
        if _b[8:16] == b"littlefs":
            _blank = False
    if _blank:
        vfs.VfsLfs2.mkfs(_bdev)
        vfs.mount(vfs.VfsLfs2(_bdev), "/")
    else:
        print("flash.img: littlefs does not mount (%r); not formatting it" % (_e,))

import sys

sys.path.append("/lib")
del _bdev, sys, vfs, qemu
