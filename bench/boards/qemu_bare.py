# Footprint baseline (bench row 7): the qemu board without the project's frozen
# modules; only the board's own _boot.py (it mounts the flash image) stays.
module("_boot.py", base_path="$(BOARD_DIR)/modules")
