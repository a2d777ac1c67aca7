# Runs at every (soft) reset before boot.py: mount the flash image at "/".
# A blank or unreadable image is formatted, so a new image "just works".
import vfs
import qemu

_bdev = qemu.Flash()
try:
    vfs.mount(vfs.VfsLfs2(_bdev), "/")
except OSError:
    vfs.VfsLfs2.mkfs(_bdev)
    vfs.mount(vfs.VfsLfs2(_bdev), "/")

import sys

sys.path.append("/lib")
del _bdev, sys, vfs, qemu
