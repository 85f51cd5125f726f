"""frames: test-frame layout and checksums (checked with an independent implementation), every
single-byte corruption detected, reflector rewrites accepted, batch speed, ARP and ICMP echo."""

from __future__ import annotations

import os
import random
import struct
import time
import zlib

import pytest

from memif_ct import frames
from memif_ct.errors import ArgumentError
from memif_ct.frames import Verdict


def ref_checksum(data: bytes) -> int:
    """RFC 1071 the slow obvious way, to check the library's implementation against."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def flip(frame: bytes, index: int, mask: int = 0xFF) -> bytes:
    raw = bytearray(frame)
    raw[index] ^= mask
    return bytes(raw)


SIZES = [60, 61, 64, 128, 1500, 1518, 9000, 65535]


# --- layout ---------------------------------------------------------------------------------


def test_known_good_64_byte_frame() -> None:
    frame = frames.build_udp_frame(64, 5)
    # Headers computed by hand: dst, src, 0x0800 / IPv4 len 50, DF, TTL 64, UDP, checksum 0xae93
    # / UDP 9 -> 9 len 30 checksum 0 / "MEMCT1" / seq 5.
    assert frame[:48] == bytes.fromhex(
        "020000000002 020000000001 0800"
        " 4500 0032 0000 4000 4011 ae93 c6120001 c6120002"
        " 0009 0009 001e 0000"
        " 4d454d435431"
    )
    assert frame[48:56] == struct.pack(">Q", 5)
    assert struct.unpack(">I", frame[56:60])[0] == zlib.crc32(frame[60:], zlib.crc32(frame[48:56]))


@pytest.mark.parametrize("size", SIZES)
def test_frame_size_and_headers(size: int) -> None:
    frame = frames.build_udp_frame(size, 1234)
    assert len(frame) == size
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    assert ip[0] == 0x45 and ip[9] == 17
    assert struct.unpack(">H", ip[2:4])[0] == size - 14
    assert ref_checksum(ip) == 0
    stored = struct.unpack(">H", ip[10:12])[0]
    assert stored == ref_checksum(ip[:10] + b"\0\0" + ip[12:])
    assert struct.unpack(">H", frame[38:40])[0] == size - 34
    assert frame[40:42] == b"\0\0"
    assert frame[42:48] == frames.MAGIC
    assert frames.verify_udp_frame(frame) == (Verdict.OK, 1234, "")


@pytest.mark.parametrize("size", [0, 59, 65536])
def test_size_out_of_range(size: int) -> None:
    with pytest.raises(ValueError, match="60..65535"):
        frames.build_udp_frame(size, 0)


def test_addresses_and_ports_are_used() -> None:
    frame = frames.build_udp_frame(
        100,
        7,
        src_mac=bytes.fromhex("02aabbccddee"),
        dst_mac=bytes.fromhex("02ffeeddccbb"),
        src_ip="10.1.2.3",
        dst_ip=bytes([10, 9, 8, 7]),
        src_port=1234,
        dst_port=4321,
    )
    assert frame[0:6] == bytes.fromhex("02ffeeddccbb")
    assert frame[6:12] == bytes.fromhex("02aabbccddee")
    assert frame[26:30] == bytes([10, 1, 2, 3]) and frame[30:34] == bytes([10, 9, 8, 7])
    assert struct.unpack(">HH", frame[34:38]) == (1234, 4321)
    assert ref_checksum(frame[14:34]) == 0


def test_bad_port_and_seq_rejected() -> None:
    with pytest.raises(ValueError, match="0..65535"):
        frames.build_udp_frame(64, 0, src_port=70000)
    with pytest.raises(ValueError, match="u64"):
        frames.build_udp_frame(64, 1 << 64)
    with pytest.raises(ValueError, match="u64"):
        frames.build_udp_frame(64, -1)


def test_payload_depends_on_seq() -> None:
    a, b = frames.build_udp_frame(200, 1), frames.build_udp_frame(200, 2)
    assert a[60:] != b[60:]
    assert frames.build_udp_frame(200, 1) == a  # deterministic


# --- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [60, 64, 200])
def test_every_single_byte_payload_corruption_is_detected(size: int) -> None:
    frame = frames.build_udp_frame(size, 0xDEADBEEF)
    for index in range(42, size):
        for mask in (0x01, 0x80, 0xFF):
            result = frames.verify_udp_frame(flip(frame, index, mask))
            assert result.verdict is Verdict.CORRUPTED, (index, mask)
            assert result.seq is None and result.reason


def test_header_corruption_is_detected_where_covered() -> None:
    frame = frames.build_udp_frame(64, 3)
    covered = list(range(12, 34)) + [38, 39, 40, 41]  # ethertype, IPv4 header, UDP length/checksum
    for index in covered:
        assert frames.verify_udp_frame(flip(frame, index)).verdict is Verdict.CORRUPTED, index
    for index in list(range(12)) + [34, 35, 36, 37]:  # MACs and ports: a reflector may rewrite them
        assert frames.verify_udp_frame(flip(frame, index)).verdict is Verdict.OK, index


def test_macswap_is_accepted() -> None:
    frame = frames.build_udp_frame(64, 42)
    swapped = frames.macswap(frame)
    assert swapped[0:6] == frame[6:12] and swapped[6:12] == frame[0:6] and swapped[12:] == frame[12:]
    assert frames.verify_udp_frame(swapped) == (Verdict.OK, 42, "")
    assert frames.macswap(swapped) == frame


def test_five_tuple_swap_is_accepted() -> None:
    """testpmd 5tswap: MACs, IPs and ports swapped; the IPv4 checksum stays valid."""
    f = bytearray(frames.build_udp_frame(128, 9, src_port=1000, dst_port=2000))
    f[0:6], f[6:12] = f[6:12], f[0:6]
    f[26:30], f[30:34] = f[30:34], f[26:30]
    f[34:36], f[36:38] = f[36:38], f[34:36]
    assert frames.verify_udp_frame(f) == (Verdict.OK, 9, "")


def test_valid_nonzero_udp_checksum_is_accepted() -> None:
    f = bytearray(frames.build_udp_frame(100, 11))
    pseudo = f[26:34] + struct.pack(">BBH", 0, 17, len(f) - 34)
    struct.pack_into(">H", f, 40, ref_checksum(bytes(pseudo + f[34:])))
    assert frames.verify_udp_frame(f).verdict is Verdict.OK
    f[41] ^= 1
    assert frames.verify_udp_frame(f) == (Verdict.CORRUPTED, None, "UDP checksum mismatch")


def test_ethernet_padding_is_accepted_truncation_is_not() -> None:
    frame = frames.build_udp_frame(100, 5)
    assert frames.verify_udp_frame(frame + b"\0" * 4).verdict is Verdict.OK
    assert frames.verify_udp_frame(frame[:-1]).verdict is Verdict.CORRUPTED
    assert frames.verify_udp_frame(frame[:50]).verdict is Verdict.CORRUPTED


def test_memoryview_and_bytearray_inputs() -> None:
    frame = frames.build_udp_frame(64, 8)
    assert frames.verify_udp_frame(memoryview(frame)).seq == 8
    assert frames.verify_udp_frame(bytearray(frame)).seq == 8


def test_foreign_frames_are_not_ours() -> None:
    mac = bytes.fromhex("020000000001")
    foreign = [
        b"",
        b"\0" * 10,
        b"\0" * 64,
        os.urandom(1500),
        frames.build_arp_request(mac, "10.0.0.1", "10.0.0.2"),
        frames.build_icmp_echo_request(
            src_mac=mac, dst_mac=frames.BROADCAST_MAC, src_ip="1.1.1.1", dst_ip="2.2.2.2", ident=1, seq=1
        ),
    ]
    for frame in foreign:
        assert frames.verify_udp_frame(frame) == (Verdict.NOT_OURS, None, "")


def test_magic_with_three_bad_bytes_is_not_ours() -> None:
    frame = frames.build_udp_frame(64, 1)
    assert frames.verify_udp_frame(flip(flip(frame, 42), 43)).verdict is Verdict.CORRUPTED
    assert frames.verify_udp_frame(flip(flip(flip(frame, 42), 43), 44)).verdict is Verdict.NOT_OURS


# --- batches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [60, 64, 1500])
def test_batch_matches_single_frames(size: int) -> None:
    packed, lengths = frames.build_frames_batch(300, size, 1000, src_port=5, dst_port=6)
    assert lengths == [size] * 300
    assert len(packed) == 300 * size
    for i in range(300):
        frame = bytes(packed[i * size : (i + 1) * size])
        assert frame == frames.build_udp_frame(size, 1000 + i, src_port=5, dst_port=6)
        assert frames.verify_udp_frame(frame).seq == 1000 + i


def test_batch_edges() -> None:
    packed, lengths = frames.build_frames_batch(0, 64, 0)
    assert packed == bytearray() and lengths == []
    packed, _ = frames.build_frames_batch(2, 64, (1 << 64) - 2)
    assert frames.verify_udp_frame(packed[64:]).seq == (1 << 64) - 1
    with pytest.raises(ValueError, match="u64"):
        frames.build_frames_batch(3, 64, (1 << 64) - 2)
    with pytest.raises(ValueError):
        frames.build_frames_batch(-1, 64, 0)


def test_batch_speed_64_byte_frames() -> None:
    frames.build_frames_batch(256, 64, 0)  # warm the template and pattern caches
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        frames.build_frames_batch(50_000, 64, 0)
        best = max(best, 50_000 / (time.perf_counter() - start))
    assert best > 200_000, f"{best:.0f} frames/s"


# --- addresses and checksums -------------------------------------------------------------------


def test_ip_helpers() -> None:
    assert frames.ip_to_bytes("192.168.1.2") == bytes([192, 168, 1, 2])
    assert frames.ip_to_bytes(b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04"
    assert frames.bytes_to_ip(bytes([10, 0, 0, 255])) == "10.0.0.255"
    for bad in ["1.2.3", "256.0.0.1", "::1"]:
        with pytest.raises(ArgumentError, match="is not an IPv4 address"):
            frames.ip_to_bytes(bad)
    with pytest.raises(ArgumentError):
        frames.ip_to_bytes(b"\0" * 5)
    with pytest.raises(ArgumentError):
        frames.bytes_to_ip(b"\0" * 3)


def test_inet_checksum_matches_reference() -> None:
    rng = random.Random(7)
    for length in [0, 1, 2, 3, 20, 21, 1499, 1500]:
        data = bytes(rng.getrandbits(8) for _ in range(length))
        assert frames.inet_checksum(data) == ref_checksum(data)
    # RFC 1071 section 3 example words.
    assert frames.inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == ~0xDDF2 & 0xFFFF


# --- ARP --------------------------------------------------------------------------------------

MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")


def test_arp_request_layout_and_parse() -> None:
    frame = frames.build_arp_request(MAC_A, "10.0.0.1", "10.0.0.2")
    assert len(frame) == 60
    assert frame[0:6] == frames.BROADCAST_MAC and frame[6:12] == MAC_A and frame[12:14] == b"\x08\x06"
    assert frame[14:22].hex() == "0001080006040001"
    arp = frames.parse_arp(frame)
    assert arp is not None
    assert arp.op == frames.ARP_REQUEST
    assert arp.sender_mac == MAC_A and arp.sender_ip == bytes([10, 0, 0, 1])
    assert arp.target_mac == bytes(6) and arp.target_ip == bytes([10, 0, 0, 2])
    assert arp.eth_src == MAC_A and arp.eth_dst == frames.BROADCAST_MAC


def test_arp_reply_and_reply_for() -> None:
    request = frames.build_arp_request(MAC_A, "10.0.0.1", "10.0.0.2")
    reply = frames.arp_reply_for(request, MAC_B)
    assert reply is not None
    assert reply == frames.build_arp_reply(MAC_B, "10.0.0.2", MAC_A, "10.0.0.1")
    arp = frames.parse_arp(reply)
    assert arp is not None and arp.op == frames.ARP_REPLY
    assert (arp.sender_mac, arp.sender_ip) == (MAC_B, bytes([10, 0, 0, 2]))
    assert (arp.target_mac, arp.target_ip) == (MAC_A, bytes([10, 0, 0, 1]))
    assert reply[0:6] == MAC_A
    assert frames.arp_reply_for(reply, MAC_B) is None


def test_parse_arp_rejects_other_frames() -> None:
    assert frames.parse_arp(frames.build_udp_frame(64, 0)) is None
    assert frames.parse_arp(b"\0" * 20) is None
    bad = bytearray(frames.build_arp_request(MAC_A, "10.0.0.1", "10.0.0.2"))
    bad[21] = 9  # op
    assert frames.parse_arp(bad) is None


# --- ICMP echo --------------------------------------------------------------------------------


def test_icmp_echo_request_checksums() -> None:
    frame = frames.build_icmp_echo_request(
        src_mac=MAC_A,
        dst_mac=MAC_B,
        src_ip="10.0.0.1",
        dst_ip="10.0.0.2",
        ident=0x1234,
        seq=7,
        payload=b"x" * 56,
    )
    assert len(frame) == 14 + 20 + 8 + 56
    ip, icmp = frame[14:34], frame[34:]
    assert ip[9] == 1 and ref_checksum(ip) == 0
    assert icmp[0] == 8 and icmp[1] == 0
    assert ref_checksum(icmp) == 0
    assert struct.unpack(">HH", icmp[4:8]) == (0x1234, 7)
    echo = frames.parse_icmp_echo(frame)
    assert echo is not None and not echo.is_reply and echo.checksums_ok
    assert (echo.ident, echo.seq, echo.payload, echo.ttl) == (0x1234, 7, b"x" * 56, 64)


def test_icmp_small_request_is_padded_and_parses() -> None:
    frame = frames.build_icmp_echo_request(
        src_mac=MAC_A, dst_mac=MAC_B, src_ip="10.0.0.1", dst_ip="10.0.0.2", ident=1, seq=70000, payload=b""
    )
    assert len(frame) == 60
    echo = frames.parse_icmp_echo(frame)
    assert echo is not None and echo.checksums_ok and echo.payload == b"" and echo.seq == 70000 & 0xFFFF


def test_icmp_echo_reply_round_trip() -> None:
    request = frames.build_icmp_echo_request(
        src_mac=MAC_A, dst_mac=MAC_B, src_ip="10.0.0.1", dst_ip="10.0.0.2", ident=5, seq=6, payload=b"ping!"
    )
    reply = frames.icmp_echo_reply_for(request)
    assert reply is not None
    assert reply[0:6] == MAC_A and reply[6:12] == MAC_B
    assert ref_checksum(reply[14:34]) == 0
    ip_len = struct.unpack(">H", reply[16:18])[0]
    assert ref_checksum(reply[34 : 14 + ip_len]) == 0
    echo = frames.parse_icmp_echo(reply)
    assert echo is not None and echo.is_reply and echo.checksums_ok
    assert (echo.ident, echo.seq, echo.payload) == (5, 6, b"ping!")
    assert echo.src_ip == bytes([10, 0, 0, 2]) and echo.dst_ip == bytes([10, 0, 0, 1])
    assert frames.icmp_echo_reply_for(reply) is None


def test_icmp_corruption_is_reported() -> None:
    request = frames.build_icmp_echo_request(
        src_mac=MAC_A, dst_mac=MAC_B, src_ip="10.0.0.1", dst_ip="10.0.0.2", ident=5, seq=6, payload=b"abcdef"
    )
    for index in [22, 30, 44, 45]:  # TTL, source IP, payload
        echo = frames.parse_icmp_echo(flip(request, index))
        assert echo is not None and not echo.checksums_ok, index
    assert frames.icmp_echo_reply_for(flip(request, 44)) is None


def test_parse_icmp_rejects_other_frames() -> None:
    assert frames.parse_icmp_echo(frames.build_udp_frame(64, 0)) is None
    assert frames.parse_icmp_echo(frames.build_arp_request(MAC_A, "10.0.0.1", "10.0.0.2")) is None
    assert frames.parse_icmp_echo(b"") is None
