# p11boot: mount the PKCS#11 token's flash partition at boot (ESP32 board).
#
#   import p11boot
#   p11boot.mount_token()     # the ESP32_PKCS11 _boot.py does this at every reset
#
# The partition (label "token", type data, see boards/ESP32_PKCS11/partitions.csv)
# holds a littlefs2 filesystem with the partition's 4096-byte erase blocks,
# mounted at /token. The pkcs11 package keeps its records there when /token
# exists (pkcs11.config). A firmware update (`make flash`) never writes it.
#
# A blank partition (its first two blocks erased, all 0xFF) is formatted, with a
# message. A partition holding anything else that does not mount is never
# formatted here: that could be a damaged token worth recovering. Erase it
# (`make flash ... ERASE_TOKEN=1`) or call format_token() to start afresh.

import vfs

MOUNT_POINT = "/token"
# littlefs program size: the partition is flagged `encrypted` (partitions.csv),
# and under flash encryption ESP-IDF writes in 16-byte units at 16-byte aligned
# offsets. littlefs programs whole prog_size units at prog_size offsets.
PROG_SIZE = 32
LABEL = "token"
_FF = b"\xff" * 256


def find_partition(label=LABEL):
    """The esp32.Partition labelled `label` (type data), or None."""
    import esp32

    found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=label)
    return found[0] if found else None


def is_mounted(mount_point=MOUNT_POINT):
    for _fs, path in vfs.mount():
        if path == mount_point:
            return True
    return False


def _raw_used():
    """The firmware's raw check of the token partition (True/False), or None.
    Under flash encryption erased flash reads as noise through readblocks,
    which decrypts; the firmware reads it raw."""
    try:
        import _pkcs11

        return _pkcs11.token_storage_used()
    except (ImportError, AttributeError):
        return None


def is_blank(part, raw=None):
    """True when blocks 0 and 1 (where littlefs keeps its superblocks) are erased.
    raw: the firmware's raw answer for this partition (None: read it here)."""
    if raw is not None:
        return not raw
    size = part.ioctl(5, 0)
    buf = bytearray(256)
    for block in (0, 1):
        for off in range(0, size, 256):
            part.readblocks(block, buf, off)
            if buf != _FF:
                return False
    return True


def _where(part):
    try:
        i = part.info()
        return "partition %r at 0x%x (%d KiB)" % (i[4], i[2], i[3] // 1024)
    except (AttributeError, IndexError):
        return "token partition"


def format_token(partition=None, mount_point=MOUNT_POINT):
    """Make an empty littlefs2 filesystem on the token partition (every object
    on it is lost) and mount it. Returns the mount point."""
    part = partition if partition is not None else find_partition()
    if part is None:
        raise OSError(19, "no %r partition" % LABEL)
    if is_mounted(mount_point):
        vfs.umount(mount_point)
    vfs.VfsLfs2.mkfs(part, progsize=PROG_SIZE)
    vfs.mount(vfs.VfsLfs2(part, progsize=PROG_SIZE), mount_point)
    return mount_point


def mount_token(partition=None, mount_point=MOUNT_POINT):
    """Mount the token partition at mount_point (formatting it only when blank).
    Returns the mount point, or None when there is no such partition or it
    holds something that does not mount (a message says what to do)."""
    if is_mounted(mount_point):
        return mount_point
    part = partition if partition is not None else find_partition()
    if part is None:
        print("p11boot: no %r partition in the partition table; token not mounted" % LABEL)
        return None
    try:
        vfs.mount(vfs.VfsLfs2(part, progsize=PROG_SIZE), mount_point)
        return mount_point
    except OSError as e:
        err = e
    if not is_blank(part, _raw_used() if partition is None else None):
        print("p11boot: %s does not hold a littlefs token store (%r); not formatting it."
              " Erase it (make flash ... ERASE_TOKEN=1) or call p11boot.format_token()"
              % (_where(part), err))
        return None
    print("p11boot: %s is blank: formatting it as an empty token store" % _where(part))
    return format_token(part, mount_point)
