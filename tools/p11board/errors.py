"""Exit codes and the errors that carry them."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Process exit codes (documented in `p11board --help` and docs/p11board.md)."""

    OK = 0
    TOKEN = 1          # the token refused: a CKR_* code from the device
    USAGE = 2          # bad command line (argparse uses 2 as well)
    CONNECTION = 3     # no board, cannot open the port, no raw REPL, timeout, launcher failed
    FILE_FORMAT = 4    # a key/certificate file that is missing, unreadable or of the wrong kind
    OBJECT = 5         # LABEL matches nothing (or too much), the label is taken (--replace), key/cert mismatch (--force)
    ABORTED = 6        # a confirmation was declined (or needed, without a terminal: use --yes)
    DEVICE = 7         # the board failed otherwise: no pkcs11 package, out of memory, a bug


EXIT_HELP = """exit codes:
  0  success
  1  token error: the token refused (CKR_* name and a sentence are printed)
  2  usage error
  3  connection problem: no board, port busy, no raw REPL, timeout, emulator failed
  4  file format: unreadable file, wrong kind, encrypted key, unsupported key type
  5  object: LABEL matches no object (or several), an object with the label
     exists already (use --replace), or the device key and certificate would
     not match (use --force)
  6  aborted: a confirmation was declined, or needed without a terminal (use --yes)
  7  device error: firmware without the pkcs11 package, out of memory, ..."""


class ToolError(Exception):
    """A failure with its exit code; str() is the message for the user."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


class PinNeeded(ToolError):
    """Nothing found (or nothing allowed) because the token has a user PIN and none
    was given: on a terminal the CLI asks for the PIN and runs the command again."""


PIN_PROMPT = "the token's user PIN: "


# A sentence for the CKR codes a user of this tool can meet.
CKR_HELP: dict[int, str] = {
    0x02: "the board ran out of memory",
    0x05: "the token failed unexpectedly",
    0x06: "the function failed",
    0x07: "the token rejected the arguments",
    0x10: "that attribute cannot be changed",
    0x11: "that value is secret and stays in the token",
    0x12: "the token does not know that attribute",
    0x13: "the token rejected a value (wrong key type, size or encoding?)",
    0x30: "the token's storage is damaged or unreadable",
    0x31: "the token's storage is full: destroy objects you no longer need",
    0x60: "the key handle is not valid",
    0x63: "the key does not fit the mechanism",
    0x68: "the key may not be used for this",
    0x70: "the token does not support that mechanism",
    0x82: "the object is gone (destroyed by someone else?)",
    0xA0: "the PIN is wrong",
    0xA1: "the PIN has characters the token does not accept",
    0xA2: "the PIN is too short or too long",
    0xA4: "the PIN is locked after too many wrong tries in a row (a locked user PIN: the SO "
          "unlocks it, keys kept: p11board init-pin)",
    0xB1: "too many sessions are open on the board",
    0xB5: "the session is read-only",
    0xB6: "a session is open: close other programs using the token (or reset the board)",
    0xD0: "the template lacks a required attribute",
    0xD1: "the template is inconsistent",
    0xE2: "the token is write-protected",
    0x100: "already logged in",
    0x101: "the token has a user PIN: give it with --pin (or P11BOARD_PIN)",
    0x102: "that PIN is not set yet (user PIN: p11board set-pin; SO PIN: p11board init-token)",
    0x103: "that user type is not valid",
    0x150: "a buffer was too small",
    0x190: "the library is not initialized",
}


def ckr_sentence(rv: int | None) -> str:
    if rv is None:
        return ""
    return CKR_HELP.get(rv, "")
