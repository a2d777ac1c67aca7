# ESP32_PKCS11 boot, run at every (soft) reset before boot.py: the esp32
# port's _boot.py (root filesystem on the "vfs" partition), then the PKCS#11
# token's littlefs partition "token" mounted at /token (p11boot). The token
# package uses /token when that directory exists.
import gc
import vfs
from flashbdev import bdev

try:
    if bdev:
        vfs.mount(bdev, "/")
except OSError:
    import inisetup

    inisetup.setup()

try:
    import p11boot

    p11boot.mount_token()
except Exception as e:
    print("token partition not mounted:", repr(e))

gc.collect()
