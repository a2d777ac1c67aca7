"""The p11-kit RPC server on stdin/stdout, forwarding each call to the board.

p11-kit-proxy.so runs `p11bridge serve ...` for a module file with
`remote: |COMMAND` and talks to it as rpc-client.c does; this module plays
rpc-server.c's part: version byte, then one response frame per request frame.
Each call the token has goes to the board (link.Link); the rest are answered
CKR_FUNCTION_NOT_SUPPORTED. Output buffers follow PKCS#11's two-call
convention as p11-kit carries it (a zero buffer size asks for the length).
"""

from __future__ import annotations

import os
import struct
import sys
from typing import Callable

from . import rpc
from .link import Link, LinkError

CKR_OK = 0
CKR_GENERAL_ERROR = 0x5
CKR_ARGUMENTS_BAD = 0x7
CKR_NO_EVENT = 0x8
CKR_ATTRIBUTE_SENSITIVE = 0x11
CKR_ATTRIBUTE_TYPE_INVALID = 0x12
CKR_DEVICE_ERROR = 0x30
CKR_DEVICE_REMOVED = 0x32
CKR_FUNCTION_NOT_SUPPORTED = 0x54
CKR_BUFFER_TOO_SMALL = 0x150
CKR_CRYPTOKI_NOT_INITIALIZED = 0x190
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_DONT_BLOCK = 1
CKF_HW = 1

OUT_CAP = 4096          # the largest output buffer the board is asked to allocate
RANDOM_CHUNK = 2048     # C_GenerateRandom in pieces that fit one frame


class CallFailed(Exception):
    def __init__(self, rv: int) -> None:
        super().__init__(f"CKR 0x{rv:x}")
        self.rv = rv


class Bridge:
    """The calls, in p11-kit's wire shapes, on top of a Link to the board."""

    def __init__(self, make_link: Callable[[], Link], log: Callable[[str], None]) -> None:
        self.make_link = make_link
        self.log = log
        self.link: Link | None = None
        self.lost = False

    # -- the board ----------------------------------------------------------------

    def dev(self, name: str, *args: object, **kw: object) -> object:
        """The board's result of one call; CallFailed(rv) when it fails."""
        if self.link is None:
            raise CallFailed(CKR_DEVICE_REMOVED if self.lost else CKR_CRYPTOKI_NOT_INITIALIZED)
        try:
            rv, result = self.link.call(name, *args, **kw)
        except LinkError as e:
            self.log(f"p11bridge: {e}")
            self._drop()
            raise CallFailed(e.rv) from None
        if rv != CKR_OK:
            raise CallFailed(rv) if result is None else _Partial(rv, result)
        return result

    def _drop(self) -> None:
        link, self.link = self.link, None
        self.lost = True
        if link is not None:
            link.abort()

    def close(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()

    # -- dispatch -----------------------------------------------------------------

    def handle(self, body: bytes) -> bytes:
        try:
            call_id, r = rpc.parse_request(body)
        except rpc.ParseError as e:
            self.log(f"p11bridge: bad request: {e}")
            return rpc.error_body(CKR_DEVICE_ERROR)
        name = rpc.CALLS[call_id][0]
        fn = getattr(self, "do" + name[1:], None)
        if fn is None:
            return rpc.error_body(CKR_FUNCTION_NOT_SUPPORTED)
        w = rpc.Writer(call_id)
        try:
            fn(r, w)
        except CallFailed as e:
            return rpc.error_body(e.rv)
        except rpc.ParseError as e:
            self.log(f"p11bridge: bad {name} request: {e}")
            return rpc.error_body(CKR_DEVICE_ERROR)
        except Exception as e:      # a bug here must not hang or kill the application
            self.log(f"p11bridge: {name} failed: {type(e).__name__}: {e}")
            return rpc.error_body(CKR_GENERAL_ERROR)
        return bytes(w.out)

    # -- general ------------------------------------------------------------------

    def do_Initialize(self, r: rpc.Reader, w: rpc.Writer) -> None:
        hs, _ = r.byte_array()
        if hs != rpc.HANDSHAKE:
            raise CallFailed(CKR_GENERAL_ERROR)
        r.byte()
        r.byte_array()
        if self.link is not None:
            raise CallFailed(CKR_CRYPTOKI_ALREADY_INITIALIZED)
        link = self.make_link()
        try:
            link.open()
        except LinkError as e:
            self.log(f"p11bridge: {e}")
            raise CallFailed(e.rv) from None
        self.link, self.lost = link, False
        try:
            self.dev("C_Initialize")
        except CallFailed as e:
            # our board loop is the only user: a token left initialized is ours
            if e.rv != CKR_CRYPTOKI_ALREADY_INITIALIZED:
                self.close()
                raise

    def do_Finalize(self, r: rpc.Reader, w: rpc.Writer) -> None:
        if self.link is None:
            if self.lost:
                self.lost = False
                return
            raise CallFailed(CKR_CRYPTOKI_NOT_INITIALIZED)
        try:
            self.dev("C_Finalize")
        finally:
            self.close()
            self.lost = False

    def do_GetInfo(self, r: rpc.Reader, w: rpc.Writer) -> None:
        i = self.dev("C_GetInfo")
        w.version(i["cryptokiVersion"])
        w.space_string(i["manufacturerID"], 32)
        w.ulong(i["flags"])
        w.space_string(i["libraryDescription"], 32)
        w.version(i["libraryVersion"])

    def do_GetSlotList(self, r: rpc.Reader, w: rpc.Writer) -> None:
        present = r.byte()
        room = r.u32()
        slots = self.dev("C_GetSlotList", bool(present))
        _ulongs(w, slots, room)

    def do_GetSlotInfo(self, r: rpc.Reader, w: rpc.Writer) -> None:
        i = self.dev("C_GetSlotInfo", r.ulong())
        w.space_string(i["slotDescription"], 64)
        w.space_string(i["manufacturerID"], 32)
        w.ulong(i["flags"])
        w.version(i["hardwareVersion"])
        w.version(i["firmwareVersion"])

    def do_GetTokenInfo(self, r: rpc.Reader, w: rpc.Writer) -> None:
        i = self.dev("C_GetTokenInfo", r.ulong())
        w.space_string(i["label"], 32)
        w.space_string(i["manufacturerID"], 32)
        w.space_string(i["model"], 16)
        w.space_string(i["serialNumber"], 16)
        for k in ("flags", "ulMaxSessionCount", "ulSessionCount", "ulMaxRwSessionCount",
                  "ulRwSessionCount", "ulMaxPinLen", "ulMinPinLen", "ulTotalPublicMemory",
                  "ulFreePublicMemory", "ulTotalPrivateMemory", "ulFreePrivateMemory"):
            w.ulong(i[k])
        w.version(i["hardwareVersion"])
        w.version(i["firmwareVersion"])
        w.space_string(i["utcTime"], 16)

    def do_GetMechanismList(self, r: rpc.Reader, w: rpc.Writer) -> None:
        slot = r.ulong()
        room = r.u32()
        _ulongs(w, self.dev("C_GetMechanismList", slot), room)

    def do_GetMechanismInfo(self, r: rpc.Reader, w: rpc.Writer) -> None:
        i = self.dev("C_GetMechanismInfo", r.ulong(), r.ulong())
        w.ulong(i["ulMinKeySize"])
        w.ulong(i["ulMaxKeySize"])
        # seen from the host, every mechanism is performed by a device: the board
        w.ulong(i["flags"] | CKF_HW)

    def do_InitToken(self, r: rpc.Reader, w: rpc.Writer) -> None:
        slot = r.ulong()
        pin, _ = r.byte_array()
        label = r.string()
        self.dev("C_InitToken", slot, pin or b"", _label(label))

    def do_InitToken2(self, r: rpc.Reader, w: rpc.Writer) -> None:
        slot = r.ulong()
        pin, _ = r.byte_array()
        self.dev("C_InitToken", slot, pin or b"", _label(r.string()))

    def do_WaitForSlotEvent(self, r: rpc.Reader, w: rpc.Writer) -> None:
        flags = r.ulong()
        raise CallFailed(CKR_NO_EVENT if flags & CKF_DONT_BLOCK else CKR_FUNCTION_NOT_SUPPORTED)

    # -- sessions -----------------------------------------------------------------

    def do_OpenSession(self, r: rpc.Reader, w: rpc.Writer) -> None:
        w.ulong(self.dev("C_OpenSession", r.ulong(), r.ulong()))

    def do_CloseSession(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self.dev("C_CloseSession", r.ulong())

    def do_CloseAllSessions(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self.dev("C_CloseAllSessions", r.ulong())

    def do_GetSessionInfo(self, r: rpc.Reader, w: rpc.Writer) -> None:
        i = self.dev("C_GetSessionInfo", r.ulong())
        for k in ("slotID", "state", "flags", "ulDeviceError"):
            w.ulong(i[k])

    def do_InitPIN(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        pin, _ = r.byte_array()
        self.dev("C_InitPIN", h, pin or b"")

    def do_SetPIN(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        old, _ = r.byte_array()
        new, _ = r.byte_array()
        self.dev("C_SetPIN", h, old or b"", new or b"")

    def do_Login(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        user = r.ulong()
        pin, _ = r.byte_array()
        self.dev("C_Login", h, user, pin or b"")

    def do_Logout(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self.dev("C_Logout", r.ulong())

    # -- objects ------------------------------------------------------------------

    def do_CreateObject(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        w.ulong(self.dev("C_CreateObject", h, _template(r.attribute_array())))

    def do_DestroyObject(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self.dev("C_DestroyObject", r.ulong(), r.ulong())

    def do_GetAttributeValue(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        obj = r.ulong()
        wanted = r.attribute_buffer()
        rv = CKR_OK
        try:
            values = self.dev("C_GetAttributeValue", h, obj, [t for t, _ in wanted])
        except _Partial as p:
            if p.rv not in (CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID):
                raise CallFailed(p.rv) from None
            rv, values = p.rv, p.result
        w.u32(len(wanted))
        for (t, room), value in zip(wanted, values):   # type: ignore[call-overload]
            length, value = rpc.encoded_length(t, value)
            if length >= 0 and room and room < length:
                length = -1                 # PKCS#11 2.40: unavailable, buffer too small
                rv = rv or CKR_BUFFER_TOO_SMALL
            w.attribute(t, value, length, with_value=bool(room))
        w.ulong(rv)

    def do_SetAttributeValue(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        obj = r.ulong()
        self.dev("C_SetAttributeValue", h, obj, _template(r.attribute_array()))

    def do_FindObjectsInit(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self.dev("C_FindObjectsInit", h, _template(r.attribute_array()))

    def do_FindObjects(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        room = r.u32()
        found = self.dev("C_FindObjects", h, min(room, 4096)) if room else []
        w.ulong_array(list(found))      # type: ignore[call-overload]

    def do_FindObjectsFinal(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self.dev("C_FindObjectsFinal", r.ulong())

    # -- digest, sign, verify -----------------------------------------------------------

    def _init(self, name: str, r: rpc.Reader, with_key: bool) -> None:
        h = r.ulong()
        mech = _mechanism(r.mechanism())
        if with_key:
            self.dev(name, h, mech, r.ulong())
        else:
            self.dev(name, h, mech)

    def _output(self, w: rpc.Writer, name: str, room: int, *args: object) -> None:
        """One call with an output buffer of `room` bytes (0: the length only)."""
        try:
            if room == 0:
                w.byte_array(None, int(self.dev(name, *args, length_only=True)))  # type: ignore[call-overload]
            else:
                w.byte_array(self.dev(name, *args, out=min(room, OUT_CAP)))  # type: ignore[arg-type]
        except _Partial as p:
            if p.rv != CKR_BUFFER_TOO_SMALL:
                raise CallFailed(p.rv) from None
            w.byte_array(None, int(p.result))   # type: ignore[call-overload]

    def do_DigestInit(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self._init("C_DigestInit", r, False)

    def do_Digest(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        data = _data(r)
        self._output(w, "C_Digest", r.u32(), h, data)

    def do_DigestUpdate(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self.dev("C_DigestUpdate", h, _data(r))

    def do_DigestFinal(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self._output(w, "C_DigestFinal", r.u32(), h)

    def do_SignInit(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self._init("C_SignInit", r, True)

    def do_Sign(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        data = _data(r)
        self._output(w, "C_Sign", r.u32(), h, data)

    def do_SignUpdate(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self.dev("C_SignUpdate", h, _data(r))

    def do_SignFinal(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self._output(w, "C_SignFinal", r.u32(), h)

    def do_VerifyInit(self, r: rpc.Reader, w: rpc.Writer) -> None:
        self._init("C_VerifyInit", r, True)

    def do_Verify(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        data = _data(r)
        self.dev("C_Verify", h, data, _data(r))

    def do_VerifyUpdate(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self.dev("C_VerifyUpdate", h, _data(r))

    def do_VerifyFinal(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self.dev("C_VerifyFinal", h, _data(r))

    # -- keys and random ------------------------------------------------------------

    def do_GenerateKeyPair(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        mech = _mechanism(r.mechanism())
        pub = _template(r.attribute_array())
        priv = _template(r.attribute_array())
        hp, hk = self.dev("C_GenerateKeyPair", h, mech, pub, priv)  # type: ignore[misc]
        w.ulong(hp)
        w.ulong(hk)

    def do_SeedRandom(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        self.dev("C_SeedRandom", h, _data(r))

    def do_GenerateRandom(self, r: rpc.Reader, w: rpc.Writer) -> None:
        h = r.ulong()
        n = r.u32()
        out = bytearray()
        while True:     # one call even for n == 0: it checks the session
            k = min(n - len(out), RANDOM_CHUNK)
            out += self.dev("C_GenerateRandom", h, k)     # type: ignore[arg-type]
            if len(out) >= n:
                break
        w.byte_array(bytes(out))


class _Partial(CallFailed):
    """A failure that carries a result (.values of C_GetAttributeValue,
    .length of CKR_BUFFER_TOO_SMALL)."""

    def __init__(self, rv: int, result: object) -> None:
        super().__init__(rv)
        self.result = result


def _ulongs(w: rpc.Writer, values: object, room: int) -> None:
    """'au' for a 'fu' buffer of `room` entries: the values, or only the count
    when the application asked for it (room 0) or has too little room."""
    vals = list(values)     # type: ignore[call-overload]
    if room == 0 or room < len(vals):
        w.ulong_array(None, len(vals))
    else:
        w.ulong_array(vals)


def _data(r: rpc.Reader) -> bytes:
    b, n = r.byte_array()
    if b is None:
        if n:
            raise CallFailed(CKR_ARGUMENTS_BAD)
        return b""
    return b


def _label(b: bytes) -> bytes:
    return b.split(b"\0", 1)[0][:32].rstrip(b" ")


def _mechanism(m: tuple[int, object]) -> object:
    mech, param = m
    if param is None or param == b"":
        return mech
    return (mech, param)


def _template(attrs: list[tuple[int, object]]) -> list[tuple[int, object]]:
    return [(t, v) for t, v in attrs]


# -- the stdin/stdout loop ------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        b = os.read(fd, n - len(buf))
        if not b:
            return None
        buf += b
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def serve(make_link: Callable[[], Link], in_fd: int = 0, out_fd: int = 1,
          log: Callable[[str], None] | None = None) -> int:
    """Serve p11-kit RPC on the two descriptors until the client hangs up."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    v = _read_exact(in_fd, 1)
    if v is None:
        return 0
    _write_all(out_fd, bytes([min(v[0], rpc.MAX_VERSION)]))
    bridge = Bridge(make_link, log)
    try:
        while True:
            head = _read_exact(in_fd, 12)
            if head is None:
                return 0
            code, olen, blen = struct.unpack(">III", head)
            if olen > 1 << 16 or blen > 1 << 26:
                log("p11bridge: received invalid rpc header values")
                return 1
            if _read_exact(in_fd, olen) is None:
                return 0
            body = _read_exact(in_fd, blen)
            if body is None:
                return 0
            _write_all(out_fd, rpc.frame(code, bridge.handle(body)))
    except (BrokenPipeError, ConnectionResetError):
        return 0
    finally:
        bridge.close()
