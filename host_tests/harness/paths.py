"""Where the build products live (the Makefile exports BUILD)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BUILD", ROOT / "build")).resolve()
# p11lab finds the build through BUILD too: tests and the lab see the same one.
os.environ["BUILD"] = str(BUILD)
UNIX_BIN = BUILD / "unix" / "micropython"
QEMU_ELF = BUILD / "qemu" / "firmware.elf"
MPREMOTE = BUILD / "venv" / "bin" / "mpremote"
