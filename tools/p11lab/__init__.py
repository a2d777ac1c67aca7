"""p11lab: the launchers this repository's users, `make demo`, `make bench`, the CLI
and the tests share. No pytest here.

    p11lab.paths      where the build products are (BUILD, ./build, the checkout)
    p11lab.unix       the unix firmware as a process (UnixFirmware) or on a pty (UnixPtyBoard)
    p11lab.qemu       the emulated MPS2-AN385 board (QemuBoard); `python -m p11lab.qemu`
    p11lab.mosquitto  a local mosquitto broker (Mosquitto, TLSListener)
    p11lab.tls_server openssl s_server requiring a client certificate (OpenSSLServer)
    p11lab.localca    a local certificate authority (LocalCA), AWS IoT's CA stand-in

Every launcher error is a LabError (see p11lab.errors).
"""

from .errors import (BrokerError, BuildNotFound, FirmwareError, LabError, QemuError,  # noqa: F401
                     ServerError, ToolMissing)

__version__ = "0.1.0"
