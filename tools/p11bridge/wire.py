"""The bridge's own frames on the board's serial line (see modules/p11bridge/p11bridge.py).

    host -> board   0xB1, u16 length, value (op, args, kw)
    board -> host   0xB2, u16 length, value (rv, result)

Values: N/T/F, i (u32) / q (u64), b (u16 length + bytes), s (u16 length + UTF-8),
l (u16 count + values), d (u16 count + key/value pairs).
"""

from __future__ import annotations

import struct

REQUEST = 0xB1
RESPONSE = 0xB2
MAX_BODY = 0xFFFF
STOP_OP = 0xFFFFFFFF
TIME_OP = 0xFFFFFFFE     # the board's time for the last call, in µs

# The board's op numbers: their order is modules/p11bridge/p11bridge.py's _OPS.
OPS = ("C_Initialize", "C_Finalize", "C_GetInfo", "C_GetSlotList", "C_GetSlotInfo",
       "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken",
       "C_OpenSession", "C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo",
       "C_InitPIN", "C_SetPIN", "C_Login", "C_Logout", "C_CreateObject", "C_DestroyObject",
       "C_GetAttributeValue", "C_SetAttributeValue", "C_FindObjectsInit", "C_FindObjects",
       "C_FindObjectsFinal", "C_DigestInit", "C_Digest", "C_DigestUpdate", "C_DigestFinal",
       "C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal", "C_VerifyInit", "C_Verify",
       "C_VerifyUpdate", "C_VerifyFinal", "C_GenerateKeyPair", "C_GenerateRandom",
       "C_SeedRandom")
OP = {name: i for i, name in enumerate(OPS)}


def encode(o: object, out: bytearray) -> None:
    if o is None:
        out += b"N"
    elif o is True:
        out += b"T"
    elif o is False:
        out += b"F"
    elif isinstance(o, int):
        if not 0 <= o < 1 << 64:
            raise ValueError(f"integer out of range: {o}")
        out += b"i" + struct.pack(">I", o) if o < 1 << 32 else b"q" + struct.pack(">Q", o)
    elif isinstance(o, (bytes, bytearray, memoryview)):
        b = bytes(o)
        out += b"b" + struct.pack(">H", len(b)) + b
    elif isinstance(o, str):
        b = o.encode()
        out += b"s" + struct.pack(">H", len(b)) + b
    elif isinstance(o, dict):
        out += b"d" + struct.pack(">H", len(o))
        for k, v in o.items():
            encode(k, out)
            encode(v, out)
    elif isinstance(o, (list, tuple)):
        out += b"l" + struct.pack(">H", len(o))
        for v in o:
            encode(v, out)
    else:
        raise TypeError(f"cannot send {type(o).__name__}")


def decode(b: bytes, i: int = 0) -> tuple[object, int]:
    t = b[i:i + 1]
    i += 1
    if t == b"N":
        return None, i
    if t == b"T":
        return True, i
    if t == b"F":
        return False, i
    if t == b"i":
        return struct.unpack_from(">I", b, i)[0], i + 4
    if t == b"q":
        return struct.unpack_from(">Q", b, i)[0], i + 8
    (n,) = struct.unpack_from(">H", b, i)
    i += 2
    if t == b"b":
        if i + n > len(b):
            raise ValueError("short frame")
        return bytes(b[i:i + n]), i + n
    if t == b"s":
        return bytes(b[i:i + n]).decode(), i + n
    if t == b"l":
        items = []
        for _ in range(n):
            v, i = decode(b, i)
            items.append(v)
        return items, i
    if t == b"d":
        d = {}
        for _ in range(n):
            k, i = decode(b, i)
            d[k], i = decode(b, i)
        return d, i
    raise ValueError(f"bad value tag {t!r}")


def request(op: int, args: list | tuple, kw: dict | None = None) -> bytes:
    body = bytearray()
    encode((op, list(args), kw), body)
    if len(body) > MAX_BODY:
        raise ValueError("request too large for one frame")
    return bytes([REQUEST]) + struct.pack(">H", len(body)) + body
