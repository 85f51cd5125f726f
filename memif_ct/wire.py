"""memif control messages v2.0: the 128-byte frames as dataclasses, and their codec.

One dataclass per message of memif-protocol.md section 3, ``pack`` to turn one into the exact
bytes the C union holds and ``unpack`` to read a received frame. No sockets, fds or state:
``handshake.py`` decides what to send, ``control.py`` moves the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .constants import (
    DISCONNECT_STRING_SIZE,
    MSG_SIZE,
    MSG_TYPE_ACK,
    MSG_TYPE_ADD_REGION,
    MSG_TYPE_ADD_RING,
    MSG_TYPE_CONNECT,
    MSG_TYPE_CONNECTED,
    MSG_TYPE_DISCONNECT,
    MSG_TYPE_HELLO,
    MSG_TYPE_INIT,
    MSG_TYPE_NONE,
    NAME_SIZE,
    SECRET_SIZE,
)
from .errors import ArgumentError, ArgumentTypeError, ProtocolError

__all__ = [
    "Ack", "Hello", "Init", "AddRegion", "AddRing", "Connect", "Connected", "Disconnect",
    "Message", "pack", "unpack", "message_name", "secret_bytes",
]


@dataclass(frozen=True)
class Ack:
    TYPE: ClassVar[int] = MSG_TYPE_ACK


@dataclass(frozen=True)
class Hello:
    name: str
    min_version: int
    max_version: int
    max_region: int  # highest region index the server accepts
    max_m2s_ring: int  # highest M2S ring index (= count - 1, see section 4 negotiation)
    max_s2m_ring: int  # highest S2M ring index
    max_log2_ring_size: int
    TYPE: ClassVar[int] = MSG_TYPE_HELLO


@dataclass(frozen=True)
class Init:
    version: int
    id: int
    mode: int
    secret: bytes  # raw field content up to the first NUL (the field may have none)
    name: str
    TYPE: ClassVar[int] = MSG_TYPE_INIT


@dataclass(frozen=True)
class AddRegion:
    index: int
    size: int
    TYPE: ClassVar[int] = MSG_TYPE_ADD_REGION


@dataclass(frozen=True)
class AddRing:
    flags: int
    index: int
    region: int
    offset: int
    log2_ring_size: int
    private_hdr_size: int = 0
    TYPE: ClassVar[int] = MSG_TYPE_ADD_RING


@dataclass(frozen=True)
class Connect:
    if_name: str
    TYPE: ClassVar[int] = MSG_TYPE_CONNECT


@dataclass(frozen=True)
class Connected:
    if_name: str
    TYPE: ClassVar[int] = MSG_TYPE_CONNECTED


@dataclass(frozen=True)
class Disconnect:
    code: int
    reason: str
    TYPE: ClassVar[int] = MSG_TYPE_DISCONNECT


Message = Ack | Hello | Init | AddRegion | AddRing | Connect | Connected | Disconnect

_NAMES = {
    MSG_TYPE_ACK: "ACK", MSG_TYPE_HELLO: "HELLO", MSG_TYPE_INIT: "INIT",
    MSG_TYPE_ADD_REGION: "ADD_REGION", MSG_TYPE_ADD_RING: "ADD_RING", MSG_TYPE_CONNECT: "CONNECT",
    MSG_TYPE_CONNECTED: "CONNECTED", MSG_TYPE_DISCONNECT: "DISCONNECT", MSG_TYPE_NONE: "NONE",
}

# '<' = no alignment padding, so field offsets are exactly those of the packed C union.
_TYPE = struct.Struct("<H")
_HELLO = struct.Struct(f"<H{NAME_SIZE}sHHHHHB")  # 2 name, 34 min, 36 max, 38 reg, 40 m2s, 42 s2m, 44 log2
_INIT = struct.Struct(f"<HHIB{SECRET_SIZE}s{NAME_SIZE}s")  # 2 version, 4 id, 8 mode, 9 secret, 33 name
_ADD_REGION = struct.Struct("<HHQ")  # 2 index, 4 size
_ADD_RING = struct.Struct("<HHHHIBH")  # 2 flags, 4 index, 6 region, 8 offset, 12 log2, 13 priv
_NAME_MSG = struct.Struct(f"<H{NAME_SIZE}s")  # CONNECT / CONNECTED: 2 if_name
_DISCONNECT = struct.Struct(f"<HI{DISCONNECT_STRING_SIZE}s")  # 2 code, 6 reason

# Integer fields and their widths in bits, per message type, in wire order.
_UINT_FIELDS: dict[type, tuple[tuple[str, int], ...]] = {
    Hello: (("min_version", 16), ("max_version", 16), ("max_region", 16), ("max_m2s_ring", 16),
            ("max_s2m_ring", 16), ("max_log2_ring_size", 8)),
    Init: (("version", 16), ("id", 32), ("mode", 8)),
    AddRegion: (("index", 16), ("size", 64)),
    AddRing: (("flags", 16), ("index", 16), ("region", 16), ("offset", 32), ("log2_ring_size", 8),
              ("private_hdr_size", 16)),
    Disconnect: (("code", 32),),
}


def message_name(msg: Message | int) -> str:
    """Name of a message (or message type number) in memif's own words, e.g. ``"ADD_RING"``."""
    if isinstance(msg, int):
        msg_type = msg
    elif isinstance(msg, Message):
        msg_type = msg.TYPE
    else:
        raise ArgumentTypeError(f"not a memif message or message type: {msg!r}")
    return _NAMES.get(msg_type, f"UNKNOWN({msg_type})")


def _cstr_bytes(raw: bytes, size: int) -> bytes:
    """Cut ``raw`` as a C string stored in a ``size``-byte field: at the first NUL, and to
    ``size - 1`` bytes so a NUL always follows, backing off so no utf-8 character is split."""
    raw = raw.split(b"\0", 1)[0]
    if len(raw) < size:
        return raw
    cut = size - 1
    # A continuation byte (10xxxxxx) at the cut means a character straddles it: drop its head.
    back = 0
    while back < 3 and cut - back > 0 and (raw[cut - back] & 0xC0) == 0x80:
        back += 1
    if back and (raw[cut - back] & 0xC0) == 0xC0:
        cut -= back
    return raw[:cut]


def _cstr(what: str, value: object, size: int) -> bytes:
    """The C string a ``size``-byte field holds for text ``value`` (``what`` names it in errors)."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
    try:
        return _cstr_bytes(value.encode("utf-8"), size)
    except UnicodeEncodeError:
        raise ArgumentError(f"{what}={value!r} cannot be encoded as UTF-8") from None


def check_text(what: str, value: object, size: int) -> None:
    """ArgumentTypeError unless ``value`` is a str, ArgumentError unless it encodes as UTF-8:
    what a ``size``-byte string field of a message takes (cut to fit)."""
    _cstr(what, value, size)


def secret_bytes(secret: str | None) -> bytes:
    """A secret as INIT's 24-byte field carries it: utf-8, cut at the first NUL, at most 23
    bytes (gomemif compares all 24, so a NUL must follow). None or ``""`` is no secret (b"")."""
    return _cstr("secret", secret or "", SECRET_SIZE)


def _read_cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _check_uints(msg: Message) -> None:
    for field, bits in _UINT_FIELDS.get(type(msg), ()):
        value = getattr(msg, field)
        limit = (1 << bits) - 1
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentTypeError(f"{type(msg).__name__}.{field} must be an int, "
                                    f"not {type(value).__name__}")
        if not 0 <= value <= limit:
            raise ArgumentError(f"{type(msg).__name__}.{field}={value} out of range 0..{limit}")


def pack(msg: Message) -> bytes:
    """Encode ``msg`` as exactly 128 bytes, all padding zero (gomemif compares the whole secret).

    Strings are utf-8, cut at the first NUL and truncated to leave room for one. An integer field
    out of range raises ArgumentError (a ValueError) naming the field and the range; a field of
    the wrong type, or something that is not a message, raises ArgumentTypeError (a TypeError).
    """
    if not isinstance(msg, Message):
        raise ArgumentTypeError(f"not a memif message: {msg!r}")
    _check_uints(msg)
    name = type(msg).__name__
    buf = bytearray(MSG_SIZE)
    if isinstance(msg, Ack):
        _TYPE.pack_into(buf, 0, MSG_TYPE_ACK)
    elif isinstance(msg, Hello):
        _HELLO.pack_into(buf, 0, MSG_TYPE_HELLO, _cstr(f"{name}.name", msg.name, NAME_SIZE),
                         msg.min_version, msg.max_version, msg.max_region, msg.max_m2s_ring,
                         msg.max_s2m_ring, msg.max_log2_ring_size)
    elif isinstance(msg, Init):
        if not isinstance(msg.secret, (bytes, bytearray)):
            raise ArgumentTypeError(f"Init.secret must be bytes, not {type(msg.secret).__name__}")
        _INIT.pack_into(buf, 0, MSG_TYPE_INIT, msg.version, msg.id, msg.mode,
                        _cstr_bytes(bytes(msg.secret), SECRET_SIZE),
                        _cstr(f"{name}.name", msg.name, NAME_SIZE))
    elif isinstance(msg, AddRegion):
        _ADD_REGION.pack_into(buf, 0, MSG_TYPE_ADD_REGION, msg.index, msg.size)
    elif isinstance(msg, AddRing):
        _ADD_RING.pack_into(buf, 0, MSG_TYPE_ADD_RING, msg.flags, msg.index, msg.region,
                            msg.offset, msg.log2_ring_size, msg.private_hdr_size)
    elif isinstance(msg, (Connect, Connected)):
        _NAME_MSG.pack_into(buf, 0, msg.TYPE, _cstr(f"{name}.if_name", msg.if_name, NAME_SIZE))
    else:
        _DISCONNECT.pack_into(buf, 0, MSG_TYPE_DISCONNECT, msg.code,
                              _cstr(f"{name}.reason", msg.reason, DISCONNECT_STRING_SIZE))
    return bytes(buf)


def unpack(data: bytes | bytearray | memoryview) -> Message:
    """Decode one received frame. Padding is never validated (libmemif sends garbage there).

    Raises ProtocolError whose ``reason`` is fit to send back in DISCONNECT (ArgumentTypeError
    if ``data`` is not bytes-like at all).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentTypeError(f"a memif frame is bytes, not {type(data).__name__}")
    buf = bytes(data)
    if len(buf) != MSG_SIZE:
        raise ProtocolError(f"invalid message size {len(buf)}, expected {MSG_SIZE}")
    (msg_type,) = _TYPE.unpack_from(buf)
    if msg_type == MSG_TYPE_ACK:
        return Ack()
    if msg_type == MSG_TYPE_HELLO:
        _, name, vmin, vmax, reg, m2s, s2m, log2 = _HELLO.unpack_from(buf)
        return Hello(_read_cstr(name), vmin, vmax, reg, m2s, s2m, log2)
    if msg_type == MSG_TYPE_INIT:
        _, version, id_, mode, secret, name = _INIT.unpack_from(buf)
        return Init(version, id_, mode, secret.split(b"\0", 1)[0], _read_cstr(name))
    if msg_type == MSG_TYPE_ADD_REGION:
        _, index, size = _ADD_REGION.unpack_from(buf)
        return AddRegion(index, size)
    if msg_type == MSG_TYPE_ADD_RING:
        _, flags, index, region, offset, log2, priv = _ADD_RING.unpack_from(buf)
        return AddRing(flags, index, region, offset, log2, priv)
    if msg_type == MSG_TYPE_CONNECT:
        return Connect(_read_cstr(_NAME_MSG.unpack_from(buf)[1]))
    if msg_type == MSG_TYPE_CONNECTED:
        return Connected(_read_cstr(_NAME_MSG.unpack_from(buf)[1]))
    if msg_type == MSG_TYPE_DISCONNECT:
        _, code, reason = _DISCONNECT.unpack_from(buf)
        return Disconnect(code, _read_cstr(reason))
    raise ProtocolError(f"unknown message type {msg_type}")
