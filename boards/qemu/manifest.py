# Frozen into the qemu MPS2-AN385 firmware.
include("../manifest_common.py")
