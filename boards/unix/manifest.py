# Frozen into the unix firmware: the project's modules (micropython-lib is not
# part of Debian's source package, so nothing from it is required here).
include("../manifest_common.py")
