# The same frozen modules as boards/unix.
include("../unix/manifest.py")
