# Frozen into the bench-only VIRT_RV32 firmware: the same modules every board carries.
include("$(BOARD_DIR)/../../../boards/manifest_common.py")
