"""p11-kit's RPC protocol: message layout, call table and value encodings.

Written from p11-kit's p11-kit/rpc-message.h, rpc-message.c, rpc-server.c and
rpc-transport.c (Debian 12's 0.24.1 and the newer releases). The transport:

    version byte exchange     the client sends the highest protocol version it
                              speaks, the server answers min(that, its own)
    frame                     u32 call code, u32 options length, u32 body
                              length, options (the module name), body
    body                      u32 call id, byte array signature, fields

Integers are big endian; a CK_ULONG travels as 8 bytes. Signature letters:
y byte, u ulong, s space padded string, z string, v version, M mechanism,
ay byte array, au ulong array, aA attribute array, fy/fu/fA a buffer size
the caller has (fA: pairs of attribute type and buffer size).

Protocol versions: 0 (p11-kit 0.24), 1 (0.25: PKCS#11 3.0 calls, C_InitToken2),
2 (C_DeriveKey2). This server speaks 0 and 1 and answers a newer client with 1.
"""

from __future__ import annotations

import struct

HANDSHAKE = b"PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1"
MAX_VERSION = 1
ULONG_SIZE = 8          # sizeof(CK_ULONG) of the application (64-bit Linux)

# (name, request signature, response signature), indexed by call id.
CALLS: list[tuple[str, str | None, str]] = [
    ("ERROR", None, "u"),
    ("C_Initialize", "ayyay", ""),
    ("C_Finalize", "", ""),
    ("C_GetInfo", "", "vsusv"),
    ("C_GetSlotList", "yfu", "au"),
    ("C_GetSlotInfo", "u", "ssuvv"),
    ("C_GetTokenInfo", "u", "ssssuuuuuuuuuuuvvs"),
    ("C_GetMechanismList", "ufu", "au"),
    ("C_GetMechanismInfo", "uu", "uuu"),
    ("C_InitToken", "uayz", ""),
    ("C_OpenSession", "uu", "u"),
    ("C_CloseSession", "u", ""),
    ("C_CloseAllSessions", "u", ""),
    ("C_GetSessionInfo", "u", "uuuu"),
    ("C_InitPIN", "uay", ""),
    ("C_SetPIN", "uayay", ""),
    ("C_GetOperationState", "ufy", "ay"),
    ("C_SetOperationState", "uayuu", ""),
    ("C_Login", "uuay", ""),
    ("C_Logout", "u", ""),
    ("C_CreateObject", "uaA", "u"),
    ("C_CopyObject", "uuaA", "u"),
    ("C_DestroyObject", "uu", ""),
    ("C_GetObjectSize", "uu", "u"),
    ("C_GetAttributeValue", "uufA", "aAu"),
    ("C_SetAttributeValue", "uuaA", ""),
    ("C_FindObjectsInit", "uaA", ""),
    ("C_FindObjects", "ufu", "au"),
    ("C_FindObjectsFinal", "u", ""),
    ("C_EncryptInit", "uMu", ""),
    ("C_Encrypt", "uayfy", "ay"),
    ("C_EncryptUpdate", "uayfy", "ay"),
    ("C_EncryptFinal", "ufy", "ay"),
    ("C_DecryptInit", "uMu", ""),
    ("C_Decrypt", "uayfy", "ay"),
    ("C_DecryptUpdate", "uayfy", "ay"),
    ("C_DecryptFinal", "ufy", "ay"),
    ("C_DigestInit", "uM", ""),
    ("C_Digest", "uayfy", "ay"),
    ("C_DigestUpdate", "uay", ""),
    ("C_DigestKey", "uu", ""),
    ("C_DigestFinal", "ufy", "ay"),
    ("C_SignInit", "uMu", ""),
    ("C_Sign", "uayfy", "ay"),
    ("C_SignUpdate", "uay", ""),
    ("C_SignFinal", "ufy", "ay"),
    ("C_SignRecoverInit", "uMu", ""),
    ("C_SignRecover", "uayfy", "ay"),
    ("C_VerifyInit", "uMu", ""),
    ("C_Verify", "uayay", ""),
    ("C_VerifyUpdate", "uay", ""),
    ("C_VerifyFinal", "uay", ""),
    ("C_VerifyRecoverInit", "uMu", ""),
    ("C_VerifyRecover", "uayfy", "ay"),
    ("C_DigestEncryptUpdate", "uayfy", "ay"),
    ("C_DecryptDigestUpdate", "uayfy", "ay"),
    ("C_SignEncryptUpdate", "uayfy", "ay"),
    ("C_DecryptVerifyUpdate", "uayfy", "ay"),
    ("C_GenerateKey", "uMaA", "u"),
    ("C_GenerateKeyPair", "uMaAaA", "uu"),
    ("C_WrapKey", "uMuufy", "ay"),
    ("C_UnwrapKey", "uMuayaA", "u"),
    ("C_DeriveKey", "uMuaA", "u"),
    ("C_SeedRandom", "uay", ""),
    ("C_GenerateRandom", "ufy", "ay"),
    ("C_WaitForSlotEvent", "u", "u"),
    # PKCS #11 3.0 (protocol version 1)
    ("C_LoginUser", "uuayay", ""),
    ("C_SessionCancel", "uu", ""),
    ("C_MessageEncryptInit", "uMu", ""),
    ("C_EncryptMessage", "uayayayfy", "ay"),
    ("C_EncryptMessageBegin", "uayay", ""),
    ("C_EncryptMessageNext", "uayayfyu", "ay"),
    ("C_MessageEncryptFinal", "u", ""),
    ("C_MessageDecryptInit", "uMu", ""),
    ("C_DecryptMessage", "uayayayfy", "ay"),
    ("C_DecryptMessageBegin", "uayay", ""),
    ("C_DecryptMessageNext", "uayayfyu", "ay"),
    ("C_MessageDecryptFinal", "u", ""),
    ("C_MessageSignInit", "uMu", ""),
    ("C_SignMessage", "uayayfy", "ay"),
    ("C_SignMessageBegin", "uay", ""),
    ("C_SignMessageNext", "uayayyfy", "ay"),
    ("C_MessageSignFinal", "u", ""),
    ("C_MessageVerifyInit", "uMu", ""),
    ("C_VerifyMessage", "uayayay", ""),
    ("C_VerifyMessageBegin", "uay", ""),
    ("C_VerifyMessageNext", "uayayay", ""),
    ("C_MessageVerifyFinal", "u", ""),
    ("C_InitToken2", "uays", ""),
    ("C_DeriveKey2", "uMuaA", "uPu"),     # protocol version 2; answered as unsupported
]
CALL_ID = {name: i for i, (name, _, _) in enumerate(CALLS)}

# -- attribute value types (rpc-message.c, map_attribute_to_value_type) --------

BYTE, ULONG, ATTRIBUTE_ARRAY, MECHANISM_ARRAY, DATE, BYTE_ARRAY = range(6)

_BYTE_ATTRS = {
    0x1, 0x2, 0x86, 0x103, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109, 0x10A, 0x10B,
    0x10C, 0x162, 0x163, 0x164, 0x165, 0x170, 0x171, 0x200, 0x202, 0x210, 0x301,
    0x302, 0x405,
    # IBM vendor booleans (p11-kit 0.25)
    0x80010001, 0x80010002, 0x80010003, 0x80010004, 0x80010008, 0x8001000C, 0x8001000D,
}
_ULONG_ATTRS = {
    0x0, 0x80, 0x87, 0x88, 0x100, 0x121, 0x133, 0x134, 0x160, 0x161, 0x166, 0x201,
    0x300, 0x400, 0x401, 0x402, 0x403, 0x404, 0x406, 0x500,
    # IBM vendor ulongs (p11-kit 0.25)
    0x800D0001, 0x8001000A, 0x80010005,
}
_ATTR_ARRAY_ATTRS = {0x40000211, 0x40000212, 0x40000213}    # WRAP/UNWRAP/DERIVE_TEMPLATE
_MECH_ARRAY_ATTRS = {0x40000600}                            # CKA_ALLOWED_MECHANISMS
_DATE_ATTRS = {0x110, 0x111}


def value_type(attr_type: int) -> int:
    if attr_type in _BYTE_ATTRS:
        return BYTE
    if attr_type in _ULONG_ATTRS:
        return ULONG
    if attr_type in _ATTR_ARRAY_ATTRS:
        return ATTRIBUTE_ARRAY
    if attr_type in _MECH_ARRAY_ATTRS:
        return MECHANISM_ARRAY
    if attr_type in _DATE_ATTRS:
        return DATE
    return BYTE_ARRAY


# -- mechanism parameters (rpc-message.c, p11_rpc_mechanism_serializers) -------

CKM_RSA_PKCS_PSS = 0x0D
_PSS_MECHS = {0x0D, 0x0E, 0x47, 0x43, 0x44, 0x45}     # RSA_PKCS_PSS, SHA*_RSA_PKCS_PSS
_OAEP_MECHS = {0x09}
_ECDH_MECHS = {0x1050, 0x8001001B, 0x8001001E}          # ECDH1_DERIVE, IBM X25519/X448
_IBM_ATTRBOUND = {0x80020004}
_CTR_MECHS = {0x1086}
_GCM_MECHS = {0x1087}
_MAC_GENERAL_MECHS = {0x222, 0x257, 0x252, 0x262, 0x272, 0x4A, 0x4E, 0x1084, 0x108B, 0x135, 0x137}
# the IV mechanisms and CKM_DH_PKCS_DERIVE carry a plain byte array, like the rest


class ParseError(Exception):
    """The request does not follow its signature (answered with CKR_DEVICE_ERROR)."""


class Reader:
    """Reads one request body (after the call id and signature)."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ParseError("message too short")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def ulong(self) -> int:
        return struct.unpack(">Q", self._take(8))[0]

    def raw_array(self) -> bytes | None:
        n = self.u32()
        if n == 0xFFFFFFFF:
            return None
        if n >= 0x7FFFFFFF:
            raise ParseError("byte array too long")
        return self._take(n)

    def byte_array(self) -> tuple[bytes | None, int]:
        """'ay': (data, length); data None for a NULL pointer with its length."""
        if not self.byte():
            return None, self.u32()
        b = self.raw_array()
        return (b if b is not None else b""), len(b or b"")

    def string(self) -> bytes:
        """'z' and 's' both travel as byte arrays."""
        return self.raw_array() or b""

    def attribute(self) -> tuple[int, object]:
        """(type, value); value None for an attribute sent as unavailable."""
        t = self.u32()
        if not self.byte():
            return t, None
        self.u32()      # the application's length; the value carries its own
        return t, self._value(t)

    def _value(self, t: int) -> object:
        vt = value_type(t)
        if vt == BYTE:
            return bool(self.byte())
        if vt == ULONG:
            return self.ulong()
        if vt == ATTRIBUTE_ARRAY:
            return [self.attribute() for _ in range(self.u32())]
        if vt == MECHANISM_ARRAY:
            return [self.ulong() for _ in range(self.u32())]
        return self.raw_array() or b""      # DATE, BYTE_ARRAY

    def attribute_array(self) -> list[tuple[int, object]]:
        return [self.attribute() for _ in range(self.u32())]

    def attribute_buffer(self) -> list[tuple[int, int]]:
        """'fA': [(type, buffer length the application has)]."""
        return [(self.u32(), self.u32()) for _ in range(self.u32())]

    def mechanism(self) -> tuple[int, object]:
        """'M': (mechanism, parameter) with the parameter decoded as p11-kit does:
        PSS (hash, mgf, salt length), OAEP (hash, mgf, source, data), raw bytes
        for the others (None when absent)."""
        m = self.u32()
        if m in _PSS_MECHS:
            return m, (self.ulong(), self.ulong(), self.ulong())
        if m in _OAEP_MECHS:
            return m, (self.ulong(), self.ulong(), self.ulong(), self.raw_array())
        if m in _ECDH_MECHS:
            return m, (self.ulong(), self.raw_array(), self.raw_array())
        if m in _IBM_ATTRBOUND:
            return m, self.ulong()
        if m in _CTR_MECHS:
            return m, (self.ulong(), self.raw_array())
        if m in _GCM_MECHS:
            return m, (self.raw_array(), self.ulong(), self.raw_array(), self.ulong())
        if m in _MAC_GENERAL_MECHS:
            return m, self.ulong()
        return m, self.raw_array()      # IVs, DH derive and the rest: a byte array

    def done(self) -> bool:
        return self.pos == len(self.data)


class Writer:
    """Builds one response body, call id and signature first."""

    def __init__(self, call_id: int) -> None:
        sig = CALLS[call_id][2].encode()
        self.out = bytearray(struct.pack(">I", call_id))
        self.out += struct.pack(">I", len(sig)) + sig

    def byte(self, v: int) -> None:
        self.out.append(v & 0xFF)

    def u32(self, v: int) -> None:
        self.out += struct.pack(">I", v)

    def ulong(self, v: int) -> None:
        self.out += struct.pack(">Q", v & 0xFFFFFFFFFFFFFFFF)

    def raw_array(self, b: bytes | None) -> None:
        if b is None:
            self.u32(0xFFFFFFFF)
        else:
            self.u32(len(b))
            self.out += b

    def version(self, v: tuple[int, int]) -> None:
        self.byte(v[0])
        self.byte(v[1])

    def space_string(self, b: bytes, n: int) -> None:
        self.raw_array(bytes(b[:n]).ljust(n, b" "))

    def byte_array(self, b: bytes | None, length: int = 0) -> None:
        """'ay': the bytes, or (b None) only a length (a size answer)."""
        if b is None:
            self.byte(0)
            self.u32(length)
        else:
            self.byte(1)
            self.raw_array(b)

    def ulong_array(self, values: list[int] | None, count: int = 0) -> None:
        """'au': the values, or (values None) only a count."""
        self.byte(0 if values is None else 1)
        self.u32(count if values is None else len(values))
        for v in values or ():
            self.ulong(v)

    def attribute(self, t: int, value: object, length: int, with_value: bool) -> None:
        """One attribute of a response: unavailable (length -1), size only
        (with_value False: p11-kit's encoding of a NULL pointer) or the value."""
        self.u32(t)
        if length < 0:
            self.byte(0)
            return
        self.byte(1)
        self.u32(length)
        vt = value_type(t)
        if vt == BYTE:
            self.byte(1 if (with_value and value) else 0)
        elif vt == ULONG:
            self.ulong(int(value) if with_value else 0)  # type: ignore[call-overload]
        elif vt == MECHANISM_ARRAY:
            items = list(value) if with_value else []    # type: ignore[call-overload]
            self.u32(len(items))
            for m in items:
                self.ulong(m)
        elif vt == ATTRIBUTE_ARRAY:
            items = list(value) if with_value else []    # type: ignore[call-overload]
            self.u32(len(items))
            for at, av in items:
                n, _ = encoded_length(at, av)
                self.attribute(at, av, n, True)
        else:
            self.raw_array(bytes(value) if with_value else None)  # type: ignore[call-overload]


def encoded_length(t: int, value: object) -> tuple[int, object]:
    """(ulValueLen in the application's terms, value) of a token value."""
    if value is None:
        return -1, None
    vt = value_type(t)
    if vt == BYTE:
        return 1, value
    if vt == ULONG:
        return ULONG_SIZE, value
    if vt == MECHANISM_ARRAY:
        return ULONG_SIZE * len(value), value       # type: ignore[arg-type]
    if vt == ATTRIBUTE_ARRAY:
        return 3 * ULONG_SIZE * len(value), value   # sizeof(CK_ATTRIBUTE) each
    if isinstance(value, bool):     # a boolean the map calls a byte array
        return 1, bytes([value])
    if isinstance(value, int):
        return ULONG_SIZE, value.to_bytes(ULONG_SIZE, "little")
    return len(value), bytes(value)     # type: ignore[arg-type]


def parse_request(body: bytes) -> tuple[int, Reader]:
    """(call id, reader positioned after the signature); ParseError if malformed."""
    r = Reader(body)
    call_id = r.u32()
    if call_id == 0 or call_id >= len(CALLS):
        raise ParseError(f"bad call id {call_id}")
    sig = r.raw_array()
    if sig is None or sig.decode("ascii", "replace") != CALLS[call_id][1]:
        raise ParseError(f"signature mismatch for {CALLS[call_id][0]}")
    return call_id, r


def error_body(rv: int) -> bytes:
    w = Writer(0)
    w.ulong(rv)
    return bytes(w.out)


def frame(code: int, body: bytes, options: bytes = b"") -> bytes:
    return struct.pack(">III", code, len(options), len(body)) + options + body
