# p11bridge: the board's side of the host's PKCS#11 bridge (tools/p11bridge).
#
# The host starts it once through the raw REPL (`import p11bridge;
# p11bridge.run()`), then the serial line carries binary frames until the host
# sends the stop op:
#
#   host -> board   0xB1, length (2 bytes, big endian), request
#   board -> host   0xB2, length (2 bytes, big endian), response
#
#   request  = value (op, args, kw): op indexes _OPS (0xFFFFFFFF stops the loop,
#              0xFFFFFFFE answers how many µs the last call took here), args
#              a list of positional arguments, kw None or a dict of keyword
#              arguments; kw {"out": n} gives the call an n-byte bytearray as
#              its output buffer and answers with the filled part.
#   response = value (rv, result): rv 0 and the call's result, or the CKR
#              code and the error's .values / .length (None otherwise).
#   value    = N | T | F (None, True, False), i + 4 bytes / q + 8 bytes
#              (unsigned int), b + 2-byte length + bytes, s + 2-byte length +
#              UTF-8, l + 2-byte count + values (a tuple on the board),
#              d + 2-byte count + key/value pairs.
#
# Every call goes to the token's C-shaped API, pkcs11.C_GetFunctionList(): the
# bridge adds no PKCS#11 rule and reads no attribute the application did not
# ask for (sensitive ones stay refused by the token). A first frame
# (0, (PROTOCOL, ops)) says the loop is ready.

import select
import sys
import time

import micropython

PROTOCOL = 1
_OPS = ("C_Initialize", "C_Finalize", "C_GetInfo", "C_GetSlotList", "C_GetSlotInfo",
        "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken",
        "C_OpenSession", "C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo",
        "C_InitPIN", "C_SetPIN", "C_Login", "C_Logout", "C_CreateObject", "C_DestroyObject",
        "C_GetAttributeValue", "C_SetAttributeValue", "C_FindObjectsInit", "C_FindObjects",
        "C_FindObjectsFinal", "C_DigestInit", "C_Digest", "C_DigestUpdate", "C_DigestFinal",
        "C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal", "C_VerifyInit", "C_Verify",
        "C_VerifyUpdate", "C_VerifyFinal", "C_GenerateKeyPair", "C_GenerateRandom",
        "C_SeedRandom")


def _dec(b, i):
    t = b[i]
    i += 1
    if t == 0x4E:      # N
        return None, i
    if t == 0x54:      # T
        return True, i
    if t == 0x46:      # F
        return False, i
    if t == 0x69 or t == 0x71:   # i q
        n = 4 if t == 0x69 else 8
        return int.from_bytes(b[i:i + n], "big"), i + n
    n = (b[i] << 8) | b[i + 1]
    i += 2
    if t == 0x62:      # b
        return bytes(b[i:i + n]), i + n
    if t == 0x73:      # s
        return str(b[i:i + n], "utf-8"), i + n
    if t == 0x6C:      # l
        r = []
        for _ in range(n):
            v, i = _dec(b, i)
            r.append(v)
        return tuple(r), i
    if t == 0x64:      # d
        r = {}
        for _ in range(n):
            k, i = _dec(b, i)
            r[k], i = _dec(b, i)
        return r, i
    raise ValueError


def _enc(o, out):
    if o is None:
        out.append(0x4E)
    elif o is True:
        out.append(0x54)
    elif o is False:
        out.append(0x46)
    elif type(o) is int:
        if o < 0x100000000:
            out.append(0x69)
            out.extend(o.to_bytes(4, "big"))
        else:
            out.append(0x71)
            out.extend(o.to_bytes(8, "big"))
    elif isinstance(o, (bytes, bytearray, memoryview, str)):
        if isinstance(o, str):
            out.append(0x73)
            o = o.encode()
        else:
            out.append(0x62)
        out.extend(len(o).to_bytes(2, "big"))
        out.extend(o)
    elif isinstance(o, dict):
        out.append(0x64)
        out.extend(len(o).to_bytes(2, "big"))
        for k in o:
            _enc(k, out)
            _enc(o[k], out)
    else:              # list, tuple
        out.append(0x6C)
        out.extend(len(o).to_bytes(2, "big"))
        for v in o:
            _enc(v, out)


def _read(inp, n, poll):
    # poll: the rest of a frame must come within 2 s, or the host is gone
    # mid-frame and the loop leaves (a new host then finds the raw REPL)
    buf = bytearray(n)
    mv = memoryview(buf)
    got = 0
    while got < n:
        if poll and not poll.poll(2000):
            raise EOFError
        k = inp.readinto(mv[got:])
        if not k:
            raise EOFError
        got += k
    return buf


def _send(outp, rv, result):
    out = bytearray(b"\xb2\x00\x00")
    _enc((rv, result), out)
    n = len(out) - 3
    out[1] = n >> 8
    out[2] = n & 0xFF
    outp.write(out)


def _call(fl, op, args, kw):
    if op >= len(_OPS):
        return 0x54, None           # CKR_FUNCTION_NOT_SUPPORTED
    f = getattr(fl, _OPS[op])
    try:
        if kw and "out" in kw:
            buf = bytearray(kw["out"])
            n = f(*args, out=buf)
            return 0, bytes(buf[:n])
        rv, r = 0, f(*args, **kw) if kw else f(*args)
    except MemoryError:
        return 0x31, None           # CKR_DEVICE_MEMORY
    except Exception as e:
        rv = getattr(e, "rv", None)
        if rv is None:
            return 0x5, None        # CKR_GENERAL_ERROR
        r = e.values if e.values is not None else e.length
    if op == 19 and r:              # C_GetAttributeValue
        return _guard(fl, args, rv, r)
    return rv, r


# CKA_VALUE and the RSA private parts: a private or secret key's never leave
# through the bridge, not even an extractable one's
_SECRET = (0x11, 0x123, 0x124, 0x125, 0x126, 0x127, 0x128)


def _guard(fl, args, rv, vals):
    h, obj, types = args
    for t in types:
        if t in _SECRET:
            break
    else:
        return rv, vals
    try:
        cls = fl.C_GetAttributeValue(h, obj, (0,))[0]
    except Exception:
        cls = 3
    if cls != 3 and cls != 4:       # CKO_PRIVATE_KEY, CKO_SECRET_KEY
        return rv, vals
    return rv or 0x11, [None if t in _SECRET else v for t, v in zip(types, vals)]


def run():
    """Serve frames on the REPL's stdin/stdout until the host's stop op or EOF."""
    import pkcs11

    fl = pkcs11.C_GetFunctionList()
    inp = sys.stdin.buffer
    outp = sys.stdout.buffer
    poll = select.poll()
    poll.register(inp, select.POLLIN)
    micropython.kbd_intr(-1)        # 0x03 is data now, not Ctrl-C
    last = 0
    try:
        _send(outp, 0, (PROTOCOL, _OPS))
        while True:
            if _read(inp, 1, None)[0] != 0xB1:
                break               # not a frame (a new host knocking): leave
            h = _read(inp, 2, poll)
            try:
                (op, args, kw), _ = _dec(_read(inp, (h[0] << 8) | h[1], poll), 0)
            except (ValueError, IndexError, TypeError):
                _send(outp, 0x7, None)  # CKR_ARGUMENTS_BAD: an undecodable request
                continue
            if op == 0xFFFFFFFF:
                _send(outp, 0, None)    # the stop op
                break
            if op == 0xFFFFFFFE:        # the time op: the last call's µs on the board
                _send(outp, 0, last)
                continue
            t = time.ticks_us()
            rv, result = _call(fl, op, args, kw)
            last = time.ticks_diff(time.ticks_us(), t)
            args = kw = None
            _send(outp, rv, result)
    except EOFError:
        pass
    finally:
        micropython.kbd_intr(3)
        try:
            fl.C_Finalize()
        except Exception:
            pass
