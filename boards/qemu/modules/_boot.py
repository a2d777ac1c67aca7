# Runs at every (soft) reset before boot.py: mount the flash image at "/".
# A blank image (blocks 0 and 1, littlefs's superblocks, all erased: 0xff) is
# formatted; anything else that does not mount is left alone, so a damaged token
# store is never wiped silently (nor reformatted under a REPL that could then
# read the old blocks raw; the firmware keeps such an image locked, see
# docs/security.md).
import vfs
import qemu

_bdev = qemu.Flash()
try:
    vfs.mount(vfs.VfsLfs2(_bdev), "/")
except OSError as _e:
    _b = bytearray(256)
    _ff = b"\xff" * 256
    _blank = True
    for _n in (0, 1):
        for _o in range(0, 4096, 256):
            _bdev.readblocks(_n, _b, _o)
            if _b != _ff:
                _blank = False
    if _blank:
        vfs.VfsLfs2.mkfs(_bdev)
        vfs.mount(vfs.VfsLfs2(_bdev), "/")
    else:
        print("flash.img: littlefs does not mount (%r); not formatting it" % (_e,))

import sys

sys.path.append("/lib")
del _bdev, sys, vfs, qemu
