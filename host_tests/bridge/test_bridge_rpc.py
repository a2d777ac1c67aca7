"""p11bridge's p11-kit RPC server without a board: version negotiation, frames,
unsupported and malformed calls, PKCS#11's output-buffer conventions as
p11-kit carries them. (Everything end to end: test_bridge_unix.py, _qemu.py.)"""

from __future__ import annotations

import ast
import os
import struct
import threading
from pathlib import Path

from p11bridge import rpc, wire
from p11bridge.server import Bridge, serve

ROOT = Path(__file__).resolve().parents[2]

CKR_OK = 0
CKR_ATTRIBUTE_SENSITIVE = 0x11
CKR_DEVICE_ERROR = 0x30
CKR_DEVICE_REMOVED = 0x32
CKR_FUNCTION_NOT_SUPPORTED = 0x54
CKR_BUFFER_TOO_SMALL = 0x150


class FakeLink:
    """Stands in for link.Link: answers from a table, records the calls."""

    def __init__(self, answers: dict[str, tuple[int, object]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, tuple, dict]] = []
        self.opened = self.closed = False

    def open(self) -> None:
        self.opened = True

    def call(self, name: str, *args: object, **kw: object) -> tuple[int, object]:
        self.calls.append((name, args, kw))
        a = self.answers.get(name, (CKR_OK, None))
        if isinstance(a, Exception):
            raise a
        return a

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def request(name: str, fields: bytes = b"") -> bytes:
    call_id = rpc.CALL_ID[name]
    sig = rpc.CALLS[call_id][1].encode()
    return struct.pack(">I", call_id) + struct.pack(">I", len(sig)) + sig + fields


def u(v: int) -> bytes:
    return struct.pack(">Q", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def ay(b: bytes) -> bytes:
    return b"\x01" + u32(len(b)) + b


def initialize() -> bytes:
    return request("C_Initialize", ay(rpc.HANDSHAKE) + b"\x00" + ay(b"\0"))


def bridge_with(answers: dict) -> tuple[Bridge, FakeLink]:
    link = FakeLink(answers)
    b = Bridge(lambda: link, log=lambda s: None)
    assert b.handle(initialize())[:4] == u32(rpc.CALL_ID["C_Initialize"])
    return b, link


def response_rv(body: bytes) -> int | None:
    """The CKR of an error response, None for a normal one."""
    call_id = struct.unpack(">I", body[:4])[0]
    if call_id != 0:
        return None
    r = rpc.Reader(body, 4)
    assert r.raw_array() == b"u"
    return r.ulong()


def test_the_boards_op_table_matches_the_host():
    src = (ROOT / "modules" / "p11bridge" / "p11bridge.py").read_text()
    start = src.index("_OPS = (")
    ops = ast.literal_eval(src[start + len("_OPS = "):src.index(")\n", start) + 1])
    assert tuple(ops) == wire.OPS


def test_call_table_follows_p11kit():
    # ids are positions in p11-kit's enum: a few fixed points of rpc-message.h
    assert rpc.CALL_ID["C_Initialize"] == 1
    assert rpc.CALL_ID["C_Sign"] == 43
    assert rpc.CALL_ID["C_WaitForSlotEvent"] == 65
    assert rpc.CALL_ID["C_LoginUser"] == 66
    assert rpc.CALL_ID["C_InitToken2"] == 88
    assert rpc.CALLS[rpc.CALL_ID["C_GetTokenInfo"]][2] == "ssssuuuuuuuuuuuvvs"


def _serve_once(version: int, frames: list[bytes]) -> tuple[int, list[bytes]]:
    """Run serve() on pipes: send the version byte and request frames, collect
    the answered version and response bodies."""
    c_in, s_in = os.pipe()      # client -> server
    s_out, c_out = os.pipe()    # server -> client
    link = FakeLink({"C_GetSlotList": (CKR_OK, [0])})
    t = threading.Thread(target=serve, args=(lambda: link, c_in, c_out, lambda s: None), daemon=True)
    t.start()
    os.write(s_in, bytes([version]))
    got = os.read(s_out, 1)[0]
    bodies = []
    for i, body in enumerate(frames):
        os.write(s_in, rpc.frame(100 + i, body, b"board"))
        head = b""
        while len(head) < 12:
            head += os.read(s_out, 12 - len(head))
        code, olen, blen = struct.unpack(">III", head)
        assert code == 100 + i and olen == 0
        data = b""
        while len(data) < blen:
            data += os.read(s_out, blen - len(data))
        bodies.append(data)
    os.close(s_in)
    t.join(10)
    assert not t.is_alive(), "the server did not end when the client hung up"
    for fd in (c_in, s_out, c_out):
        os.close(fd)
    return got, bodies


def test_version_negotiation_and_frames():
    # p11-kit 0.24 sends 0, 0.25 sends 1, newer ones 2: we answer min(theirs, 1)
    for sent, want in ((0, 0), (1, 1), (2, 1)):
        got, bodies = _serve_once(sent, [initialize(), request("C_GetSlotList", b"\x01" + u32(4))])
        assert got == want
        assert response_rv(bodies[0]) is None
        r = rpc.Reader(bodies[1], 4)
        assert r.raw_array() == b"au"
        assert r.byte() == 1 and r.u32() == 1 and r.ulong() == 0


def test_unsupported_calls_answer_function_not_supported():
    b, link = bridge_with({})
    for name, fields in (("C_EncryptInit", u(1) + u32(0x1082) + u32(0xFFFFFFFF) + u(2)),
                         ("C_WrapKey", b""), ("C_DeriveKey", b""), ("C_GenerateKey", b""),
                         ("C_GetOperationState", b""), ("C_CopyObject", b""),
                         ("C_MessageSignInit", b""), ("C_LoginUser", b""),
                         ("C_SessionCancel", b""), ("C_DeriveKey2", b"")):
        assert response_rv(b.handle(request(name, fields))) == CKR_FUNCTION_NOT_SUPPORTED, name
    # a blocking C_WaitForSlotEvent is not supported; a polling one has no event
    assert response_rv(b.handle(request("C_WaitForSlotEvent", u(0)))) == CKR_FUNCTION_NOT_SUPPORTED
    assert response_rv(b.handle(request("C_WaitForSlotEvent", u(1)))) == 0x8
    assert [c[0] for c in link.calls] == ["C_Initialize"]


def test_malformed_requests_get_device_error_not_a_crash():
    b, _ = bridge_with({"C_GetSlotList": (CKR_OK, [0])})
    assert response_rv(b.handle(b"\x00\x00")) == CKR_DEVICE_ERROR
    assert response_rv(b.handle(u32(9999) + u32(0))) == CKR_DEVICE_ERROR
    wrong_sig = u32(rpc.CALL_ID["C_Sign"]) + u32(1) + b"u" + u(1)
    assert response_rv(b.handle(wrong_sig)) == CKR_DEVICE_ERROR
    short = request("C_OpenSession", u(0))      # flags missing
    assert response_rv(b.handle(short)) == CKR_DEVICE_ERROR
    # and it still serves
    assert response_rv(b.handle(request("C_GetSlotList", b"\x01" + u32(0)))) is None


def test_sign_output_buffer_conventions():
    """A zero-size buffer asks for the length (the operation stays on the board);
    too small gives the length back with p11-kit's 'invalid array' encoding
    (the client turns that into CKR_BUFFER_TOO_SMALL); big enough gives the bytes."""
    b, link = bridge_with({})
    sig = bytes(range(64))
    link.answers["C_Sign"] = (CKR_OK, 64)
    r = rpc.Reader(b.handle(request("C_Sign", u(1) + ay(b"d" * 32) + u32(0))), 4)
    assert r.raw_array() == b"ay" and r.byte() == 0 and r.u32() == 64
    assert link.calls[-1] == ("C_Sign", (1, b"d" * 32), {"length_only": True})

    link.answers["C_Sign"] = (CKR_BUFFER_TOO_SMALL, 64)
    r = rpc.Reader(b.handle(request("C_Sign", u(1) + ay(b"d" * 32) + u32(10))), 4)
    assert r.raw_array() == b"ay" and r.byte() == 0 and r.u32() == 64
    assert link.calls[-1][2] == {"out": 10}

    link.answers["C_Sign"] = (CKR_OK, sig)
    r = rpc.Reader(b.handle(request("C_Sign", u(1) + ay(b"d" * 32) + u32(1 << 20))), 4)
    assert r.raw_array() == b"ay" and r.byte() == 1 and r.raw_array() == sig
    assert link.calls[-1][2] == {"out": 4096}       # the board never allocates what the app has


def test_get_attribute_value_sizes_values_and_sensitive():
    b, link = bridge_with({})
    # CKA_CLASS (ulong), CKA_LABEL (bytes), CKA_SIGN (bool), CKA_VALUE (sensitive)
    link.answers["C_GetAttributeValue"] = (CKR_ATTRIBUTE_SENSITIVE, [3, b"Device Key", True, None])
    fa = u32(4) + u32(0x0) + u32(8) + u32(0x3) + u32(0) + u32(0x108) + u32(1) + u32(0x11) + u32(64)
    r = rpc.Reader(b.handle(request("C_GetAttributeValue", u(1) + u(2) + fa)), 4)
    assert r.raw_array() == b"aAu"
    assert r.u32() == 4
    assert (r.u32(), r.byte(), r.u32(), r.ulong()) == (0x0, 1, 8, 3)
    assert (r.u32(), r.byte(), r.u32(), r.raw_array()) == (0x3, 1, 10, None)   # size only
    assert (r.u32(), r.byte(), r.u32(), r.byte()) == (0x108, 1, 1, 1)
    assert (r.u32(), r.byte()) == (0x11, 0)                                     # unavailable
    assert r.ulong() == CKR_ATTRIBUTE_SENSITIVE and r.done()

    link.answers["C_GetAttributeValue"] = (CKR_OK, [b"Device Key"])
    fa = u32(1) + u32(0x3) + u32(4)
    r = rpc.Reader(b.handle(request("C_GetAttributeValue", u(1) + u(2) + fa)), 4)
    r.raw_array()
    assert r.u32() == 1 and (r.u32(), r.byte()) == (0x3, 0)
    assert r.ulong() == CKR_BUFFER_TOO_SMALL


def test_templates_and_mechanisms_reach_the_board_typed():
    b, link = bridge_with({"C_GenerateKeyPair": (CKR_OK, [5, 6])})
    oid = bytes.fromhex("06082a8648ce3d030107")

    def attr(t: int, enc: bytes, length: int) -> bytes:
        return u32(t) + b"\x01" + u32(length) + enc

    pub = u32(3) + attr(0x1, b"\x01", 1) + attr(0x180, u32(len(oid)) + oid, len(oid)) \
        + attr(0x3, u32(2) + b"k1", 2)
    priv = u32(2) + attr(0x0, u(3), 8) + attr(0x108, b"\x01", 1)
    mech = u32(0x1040) + u32(0xFFFFFFFF)
    r = rpc.Reader(b.handle(request("C_GenerateKeyPair", u(1) + mech + pub + priv)), 4)
    assert r.raw_array() == b"uu" and (r.ulong(), r.ulong()) == (5, 6)
    assert link.calls[-1] == ("C_GenerateKeyPair",
                              (1, 0x1040, [(0x1, True), (0x180, oid), (0x3, b"k1")],
                               [(0x0, 3), (0x108, True)]), {})
    # RSA-PSS parameters arrive as the token's (hash, mgf, salt length)
    pss = u32(0x0D) + u(0x250) + u(2) + u(32)
    b.handle(request("C_SignInit", u(1) + pss + u(7)))
    assert link.calls[-1] == ("C_SignInit", (1, (0x0D, (0x250, 2, 32)), 7), {})


def test_a_lost_board_gives_device_removed_until_finalize():
    from p11bridge.link import DeviceLost

    b, link = bridge_with({"C_OpenSession": DeviceLost("gone"), "C_GetSlotList": (CKR_OK, [0])})
    assert response_rv(b.handle(request("C_OpenSession", u(0) + u(6)))) == CKR_DEVICE_REMOVED
    assert link.closed
    assert response_rv(b.handle(request("C_GetSlotList", b"\x01" + u32(0)))) == CKR_DEVICE_REMOVED
    assert response_rv(b.handle(request("C_Finalize"))) is None
    # a new C_Initialize connects again
    assert response_rv(b.handle(initialize())) is None
