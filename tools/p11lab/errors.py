"""The lab's exceptions: one base class, one subclass per launcher.

A caller that only wants to report "the lab could not do it" catches `LabError`;
`str()` of every one of them is a message for a person (what failed, what it
printed, what to run).
"""

from __future__ import annotations


class LabError(Exception):
    """A launcher failed: a program is missing, did not start, or failed."""


class BuildNotFound(LabError):
    """The build directory, or a build product in it, is missing."""


class ToolMissing(LabError):
    """A host program the launcher needs (socat, qemu-system-arm, mosquitto, openssl) is missing."""


class FirmwareError(LabError):
    """The unix firmware exited non-zero or did not start; the message carries its output."""


class QemuError(LabError):
    """qemu, its pty or an mpremote command against it failed; the message carries the output."""


class BrokerError(LabError):
    """mosquitto did not start, or its log never showed what was awaited."""


class ServerError(LabError):
    """openssl s_server did not start."""
