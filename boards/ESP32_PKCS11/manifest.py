# Frozen into the ESP32_PKCS11 firmware.
#
# The esp32 port's own manifest (ports/esp32/boards/manifest.py) freezes the
# port's modules and asyncio, then require()s micropython-lib packages. Debian's
# MicroPython source has no micropython-lib, so those are added only when a
# micropython-lib checkout is there. The port's _boot.py is replaced by ours
# (modules/_boot.py: the same root filesystem mount, plus the token partition).
freeze("$(PORT_DIR)/modules", ("apa106.py", "espnow.py", "flashbdev.py", "inisetup.py"))
module("_boot.py", base_path="modules")
include("$(MPY_DIR)/extmod/asyncio")

# micropython-lib packages of the port's manifest (skipped without a checkout).
try:
    require("bundle-networking")
    require("aioespnow")
    require("dht")
    require("ds18x20")
    require("neopixel")
    require("onewire")
    require("umqtt.robust")
    require("umqtt.simple")
    require("upysh")
except ValueError:
    # "Package ... not found": no micropython-lib checkout
    pass

# This project's modules (pkcs11, p11tls, p11csr, mqtt, p11boot).
include("../manifest_common.py")
