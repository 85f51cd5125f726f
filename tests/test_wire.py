"""Pure tests of memif_ct.wire: the 128-byte control messages at the offsets of section 3."""

from __future__ import annotations

import struct

import pytest

from memif_ct import constants as C
from memif_ct.errors import ArgumentError, ArgumentTypeError, MemifError, ProtocolError
from memif_ct.wire import (
    Ack,
    AddRegion,
    AddRing,
    Connect,
    Connected,
    Disconnect,
    Hello,
    Init,
    Message,
    message_name,
    pack,
    secret_bytes,
    unpack,
)

U16, U32, U64 = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF

# ------------------------------------------------------------------------------------------
# Wire format


def frame(msg_type: int, *fields: tuple[int, str, object]) -> bytes:
    """Hand-built 128-byte frame: each field is (offset, struct format, value)."""
    buf = bytearray(C.MSG_SIZE)
    struct.pack_into("<H", buf, 0, msg_type)
    for offset, fmt, value in fields:
        if isinstance(value, bytes):
            buf[offset:offset + len(value)] = value
        else:
            struct.pack_into("<" + fmt, buf, offset, value)
    return bytes(buf)


# (message, frame built at the offsets of memif-protocol.md section 3)
LAYOUT_CASES: list[tuple[Message, bytes]] = [
    (Ack(), frame(1)),
    (Hello("srv", 0x0200, 0x0201, 255, 254, 253, 14),
     frame(2, (2, "", b"srv"), (34, "H", 0x0200), (36, "H", 0x0201), (38, "H", 255),
           (40, "H", 254), (42, "H", 253), (44, "B", 14))),
    (Hello("", 0, U16, U16, U16, U16, 255),
     frame(2, (34, "H", 0), (36, "H", U16), (38, "H", U16), (40, "H", U16), (42, "H", U16),
           (44, "B", 255))),
    (Init(0x0200, 0xDEADBEEF, 2, b"s3cret", "client-app"),
     frame(3, (2, "H", 0x0200), (4, "I", 0xDEADBEEF), (8, "B", 2), (9, "", b"s3cret"),
           (33, "", b"client-app"))),
    (Init(0, U32, 255, b"x" * 23, "n" * 31),
     frame(3, (4, "I", U32), (8, "B", 255), (9, "", b"x" * 23), (33, "", b"n" * 31))),
    (AddRegion(7, 0x123456789A), frame(4, (2, "H", 7), (4, "Q", 0x123456789A))),
    (AddRegion(U16, U64), frame(4, (2, "H", U16), (4, "Q", U64))),
    (AddRing(1, 3, 2, 0x10000, 10, 0),
     frame(5, (2, "H", 1), (4, "H", 3), (6, "H", 2), (8, "I", 0x10000), (12, "B", 10))),
    (AddRing(U16, U16, U16, U32, 255, U16),
     frame(5, (2, "H", U16), (4, "H", U16), (6, "H", U16), (8, "I", U32), (12, "B", 255),
           (13, "H", U16))),
    (Connect("memif0/0"), frame(6, (2, "", b"memif0/0"))),
    (Connected("eth0"), frame(7, (2, "", b"eth0"))),
    (Disconnect(0, "ID not found"), frame(8, (2, "I", 0), (6, "", b"ID not found"))),
    (Disconnect(U32, "r" * 95), frame(8, (2, "I", U32), (6, "", b"r" * 95))),
]


@pytest.mark.parametrize(("msg", "wire"), LAYOUT_CASES)
def test_pack_matches_documented_offsets(msg: Message, wire: bytes) -> None:
    assert pack(msg) == wire


@pytest.mark.parametrize(("msg", "wire"), LAYOUT_CASES)
def test_unpack_documented_frame(msg: Message, wire: bytes) -> None:
    assert unpack(wire) == msg
    assert unpack(bytearray(wire)) == msg
    assert unpack(memoryview(wire)) == msg


ROUND_TRIP: list[Message] = [m for m, _ in LAYOUT_CASES] + [
    Hello("ünïcødé-ßerver", 0x0200, 0x0200, 0, 0, 0, 1),
    Init(0x0200, 0, 0, b"", ""),
    Init(0x0200, 1, 1, "pässwörd".encode(), "日本語"),
    AddRegion(0, 0),
    AddRing(0, 0, 0, 0, 0, 0),
    Connect(""), Connected("x" * 31), Disconnect(1, ""), Disconnect(7, "😀 bye"),
]


@pytest.mark.parametrize("msg", ROUND_TRIP)
def test_round_trip(msg: Message) -> None:
    wire = pack(msg)
    assert len(wire) == C.MSG_SIZE
    assert unpack(wire) == msg


@pytest.mark.parametrize("msg", ROUND_TRIP)
def test_garbage_padding_ignored(msg: Message) -> None:
    """libmemif sends unzeroed padding: unpack must not look past the payload (section 3)."""
    ends = {1: 2, 2: 45, 3: 65, 4: 12, 5: 15, 6: 34, 7: 34, 8: 102}
    end = ends[msg.TYPE]
    wire = pack(msg)
    assert wire[end:] == bytes(C.MSG_SIZE - end)  # we zero what we send
    assert unpack(wire[:end] + b"\xaa" * (C.MSG_SIZE - end)) == msg


@pytest.mark.parametrize("size", [0, 1, 2, 64, 127, 129, 256])
def test_unpack_wrong_size(size: int) -> None:
    with pytest.raises(ProtocolError) as err:
        unpack(bytes([1]) + bytes(max(size - 1, 0)) if size else b"")
    assert err.value.reason == f"invalid message size {size}, expected 128"


@pytest.mark.parametrize("msg_type", [0, 9, 10, 0x100, U16])
def test_unpack_unknown_type(msg_type: int) -> None:
    with pytest.raises(ProtocolError) as err:
        unpack(frame(msg_type))
    assert err.value.reason == f"unknown message type {msg_type}"


def test_strings_without_nul() -> None:
    name = b"N" * 32
    assert unpack(frame(2, (2, "", name))).name == "N" * 32  # type: ignore[union-attr]
    assert unpack(frame(6, (2, "", name))) == Connect("N" * 32)
    assert unpack(frame(7, (2, "", name))) == Connected("N" * 32)
    init = unpack(frame(3, (9, "", b"S" * 24), (33, "", name)))
    assert init == Init(0, 0, 0, b"S" * 24, "N" * 32)
    assert unpack(frame(8, (6, "", b"R" * 96))) == Disconnect(0, "R" * 96)


def test_strings_read_up_to_first_nul() -> None:
    msg = unpack(frame(6, (2, "", b"ab\0cd")))
    assert msg == Connect("ab")
    init = unpack(frame(3, (9, "", b"pw\0junk"), (33, "", b"app\0junk")))
    assert init == Init(0, 0, 0, b"pw", "app")


def test_non_utf8_replaced() -> None:
    assert unpack(frame(6, (2, "", b"a\xffb"))) == Connect("a\ufffdb")
    assert unpack(frame(8, (6, "", b"\xc3"))) == Disconnect(0, "\ufffd")
    init = unpack(frame(3, (9, "", b"\xff\xfe")))
    assert isinstance(init, Init) and init.secret == b"\xff\xfe"  # secret stays raw


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("a" * 31, 31, "a" * 31),
    ("a" * 40, 31, "a" * 31),
    ("a" * 30 + "é", 31, "a" * 30),  # 2-byte char straddles the cut
    ("a" * 29 + "é", 31, "a" * 29 + "é"),  # exactly fits
    ("a" * 29 + "€", 31, "a" * 29),  # 3-byte char
    ("a" * 28 + "€", 31, "a" * 28 + "€"),
    ("a" * 28 + "😀", 31, "a" * 28),  # 4-byte char
    ("a" * 27 + "😀", 31, "a" * 27 + "😀"),
    ("é" * 20, 31, "é" * 15),
    ("ab\0cd", 31, "ab"),  # a C string ends at its NUL
])
def test_name_truncation(text: str, limit: int, expected: str) -> None:
    wire = pack(Connect(text))
    assert wire[2 + 31] == 0
    assert unpack(wire) == Connect(expected)
    assert wire[2 + len(expected.encode()):] == bytes(C.MSG_SIZE - 2 - len(expected.encode()))


def test_reason_and_secret_truncation() -> None:
    wire = pack(Disconnect(0, "r" * 94 + "é"))
    assert unpack(wire) == Disconnect(0, "r" * 94) and wire[6 + 95] == 0
    assert unpack(pack(Disconnect(0, "r" * 200))) == Disconnect(0, "r" * 95)
    wire = pack(Init(0x0200, 0, 0, b"s" * 30, "a"))
    assert wire[9:9 + 24] == b"s" * 23 + b"\0"
    wire = pack(Init(0x0200, 0, 0, ("s" * 22 + "é").encode(), "a"))
    assert wire[9:9 + 24] == b"s" * 22 + bytes(2)


@pytest.mark.parametrize(("msg", "field_range"), [
    (Hello("", -1, 0, 0, 0, 0, 0), "Hello.min_version=-1 out of range 0..65535"),
    (Hello("", 0, 0x10000, 0, 0, 0, 0), "Hello.max_version=65536 out of range 0..65535"),
    (Hello("", 0, 0, 0x10000, 0, 0, 0), "Hello.max_region=65536"),
    (Hello("", 0, 0, 0, 0x10000, 0, 0), "Hello.max_m2s_ring=65536"),
    (Hello("", 0, 0, 0, 0, 0x10000, 0), "Hello.max_s2m_ring=65536"),
    (Hello("", 0, 0, 0, 0, 0, 256), "Hello.max_log2_ring_size=256 out of range 0..255"),
    (Init(0x10000, 0, 0, b"", ""), "Init.version=65536"),
    (Init(0, 1 << 32, 0, b"", ""), "Init.id=4294967296 out of range 0..4294967295"),
    (Init(0, 0, 256, b"", ""), "Init.mode=256"),
    (AddRegion(0x10000, 0), "AddRegion.index=65536"),
    (AddRegion(0, 1 << 64), "AddRegion.size=18446744073709551616"),
    (AddRegion(0, -1), "AddRegion.size=-1"),
    (AddRing(0x10000, 0, 0, 0, 0), "AddRing.flags=65536"),
    (AddRing(0, 0x10000, 0, 0, 0), "AddRing.index=65536"),
    (AddRing(0, 0, 0x10000, 0, 0), "AddRing.region=65536"),
    (AddRing(0, 0, 0, 1 << 32, 0), "AddRing.offset=4294967296"),
    (AddRing(0, 0, 0, 0, 256), "AddRing.log2_ring_size=256"),
    (AddRing(0, 0, 0, 0, 0, 0x10000), "AddRing.private_hdr_size=65536"),
    (Disconnect(1 << 32, ""), "Disconnect.code=4294967296"),
])
def test_pack_out_of_range(msg: Message, field_range: str) -> None:
    with pytest.raises(ArgumentError, match=field_range.replace(".", r"\.")) as err:
        pack(msg)
    assert isinstance(err.value, ValueError) and isinstance(err.value, MemifError)


def test_message_name() -> None:
    assert message_name(AddRing(0, 0, 0, 0, 1)) == "ADD_RING"
    assert [message_name(t) for t in range(10)] == [
        "NONE", "ACK", "HELLO", "INIT", "ADD_REGION", "ADD_RING", "CONNECT", "CONNECTED",
        "DISCONNECT", "UNKNOWN(9)"]
    assert {message_name(m) for m, _ in LAYOUT_CASES} == {
        "ACK", "HELLO", "INIT", "ADD_REGION", "ADD_RING", "CONNECT", "CONNECTED", "DISCONNECT"}


@pytest.mark.parametrize(("msg", "message"), [
    (Hello("", "0", 0, 0, 0, 0, 0), "Hello.min_version must be an int, not str"),  # type: ignore[arg-type]
    (AddRing(0, 0, 0, 1.5, 0), "AddRing.offset must be an int, not float"),  # type: ignore[arg-type]
    (Disconnect(None, ""), "Disconnect.code must be an int, not NoneType"),  # type: ignore[arg-type]
    (Hello(b"srv", 0, 0, 0, 0, 0, 0), "Hello.name must be a str, not bytes"),  # type: ignore[arg-type]
    (Connect(7), "Connect.if_name must be a str, not int"),  # type: ignore[arg-type]
    (Init(0, 0, 0, "pw", "c"), "Init.secret must be bytes, not str"),  # type: ignore[arg-type]
    ("ACK", "not a memif message: 'ACK'"),
])
def test_pack_wrong_type(msg: Message, message: str) -> None:
    with pytest.raises(ArgumentTypeError, match=message) as err:
        pack(msg)
    assert isinstance(err.value, TypeError) and isinstance(err.value, MemifError)


def test_pack_unencodable_text() -> None:
    with pytest.raises(ArgumentError, match="Disconnect.reason"):
        pack(Disconnect(0, "lone \udc80 surrogate"))


def test_unpack_and_message_name_refuse_non_frames() -> None:
    with pytest.raises(ArgumentTypeError):
        unpack("x" * 128)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError):
        message_name("ACK")  # type: ignore[arg-type]


@pytest.mark.parametrize(("secret", "field"), [
    (None, b""), ("", b""), ("pw", b"pw"), ("x" * 30, b"x" * 23), ("ab\0cd", b"ab"),
    ("s" * 22 + "é", b"s" * 22),
])
def test_secret_bytes(secret: str | None, field: bytes) -> None:
    """What INIT carries for a configured secret: at most 23 bytes so a NUL follows (gomemif)."""
    assert secret_bytes(secret) == field
    assert pack(Init(0x0200, 0, 0, field, "c"))[9:9 + 24] == field.ljust(24, b"\0")
