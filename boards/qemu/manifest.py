# Frozen into the qemu MPS2-AN385 firmware.
include("../manifest_common.py")
# Mounts the littlefs2 filesystem at boot (see firmware/qemu/README.md).
module("_boot.py", base_path="modules")
