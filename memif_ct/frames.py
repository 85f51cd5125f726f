"""Packet building and parsing for the CLI tools (pktgen, sink, ping) and the tests.

Pure functions on bytes: no sockets, no memif. The tools need to tell *their own* test frames
apart from anything else on the link (kernel chatter, a peer's ARP) and to notice a single
flipped byte anywhere a memif implementation could have damaged it, while still accepting
frames that a reflector legitimately rewrote (testpmd ``macswap`` swaps the MACs, ``5tswap``
also swaps addresses and ports). So the test frame carries its own integrity check in the
payload, and everything a reflector may rewrite is left out of it.

Test frame layout (Ethernet II / IPv4 / UDP, no VLAN, no IP options)::

    0   dst MAC, src MAC, ethertype 0x0800          14 bytes, MACs not covered
    14  IPv4 header, DF set, ID 0, TTL 64           20 bytes, covered by its header checksum
    34  UDP header, checksum 0 (allowed in IPv4)    8 bytes, ports not covered, length checked
    42  magic b"MEMCT1"                             6 bytes
    48  sequence number, u64 big-endian             8 bytes
    56  crc32 over seq then pattern, big-endian    4 bytes
    60  pattern: a window of a fixed pseudo-random table, chosen by seq

The magic is 6 bytes (not 8) so that the smallest Ethernet frame, 60 bytes, still holds the
whole trailer. Header fields that never change for a given size (including the IPv4 checksum,
since ID is 0) are precomputed in a template, so a batch only patches seq, crc and the pattern.

The functions here are the reference. The tools stamp and check whole bursts in C
(csrc/traffic.c, via :func:`udp_frame_stamper` and ``_native.FrameChecker``), and
tests/test_traffic_c.py holds the C to these bytes and verdicts.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import ipaddress
import struct
import zlib
from typing import NamedTuple

from . import _native
from .errors import ArgumentError
from .macaddr import MAC_SIZE

__all__ = [
    "ARP_REPLY",
    "ARP_REQUEST",
    "BROADCAST_MAC",
    "DEFAULT_DST_IP",
    "DEFAULT_DST_MAC",
    "DEFAULT_PORT",
    "DEFAULT_SRC_IP",
    "DEFAULT_SRC_MAC",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETH_HEADER_SIZE",
    "ICMP_ECHO_REPLY",
    "ICMP_ECHO_REQUEST",
    "MAGIC",
    "MAX_FRAME_SIZE",
    "MIN_FRAME_SIZE",
    "TRAILER_SIZE",
    "ArpPacket",
    "IcmpEcho",
    "Verdict",
    "VerifyResult",
    "arp_reply_for",
    "build_arp_reply",
    "build_arp_request",
    "build_frames_batch",
    "build_icmp_echo_request",
    "build_udp_frame",
    "udp_frame_stamper",
    "bytes_to_ip",
    "icmp_echo_reply_for",
    "inet_checksum",
    "ip_to_bytes",
    "macswap",
    "parse_arp",
    "parse_icmp_echo",
    "verify_udp_frame",
]

ETH_HEADER_SIZE = 14
IPV4_HEADER_SIZE = 20
UDP_HEADER_SIZE = 8
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
IPPROTO_ICMP = 1
IPPROTO_UDP = 17

MIN_FRAME_SIZE = 60  # the Ethernet minimum without FCS: what testpmd's "64-byte" frames are
MAX_FRAME_SIZE = 65535

MAGIC = b"MEMCT1"
_MAGIC_OFF = ETH_HEADER_SIZE + IPV4_HEADER_SIZE + UDP_HEADER_SIZE  # 42
_SEQ_OFF = _MAGIC_OFF + len(MAGIC)  # 48
_CRC_OFF = _SEQ_OFF + 8  # 56
_PATTERN_OFF = _CRC_OFF + 4  # 60
TRAILER_SIZE = _PATTERN_OFF - _MAGIC_OFF  # magic + seq + crc = 18 bytes
# A frame whose magic differs in at most this many bytes is "ours, damaged" rather than foreign:
# a single flipped byte in the magic must read as corruption, not as someone else's packet.
_MAGIC_TOLERANCE = 2

# testpmd txonly's defaults (RFC 2544 benchmarking range, discard port), so captures look alike.
DEFAULT_SRC_MAC = bytes.fromhex("020000000001")
DEFAULT_DST_MAC = bytes.fromhex("020000000002")
DEFAULT_SRC_IP = "198.18.0.1"
DEFAULT_DST_IP = "198.18.0.2"
DEFAULT_PORT = 9
BROADCAST_MAC = b"\xff" * MAC_SIZE

_PATTERN_PERIOD = 251  # prime, so consecutive seqs give windows that never line up
_MAX_PATTERN = MAX_FRAME_SIZE - _PATTERN_OFF

_SEQ = struct.Struct(">Q")
_CRC = struct.Struct(">I")
_IPV4_HDR = struct.Struct(">BBHHHBBH4s4s")
_UDP_HDR = struct.Struct(">HHHH")

IPv4Like = str | bytes


# --- addresses ---------------------------------------------------------------------------


def ip_to_bytes(ip: IPv4Like) -> bytes:
    """Accept a dotted quad or 4 raw bytes, return 4 bytes (ArgumentError otherwise)."""
    if isinstance(ip, bytes):
        if len(ip) != 4:
            raise ArgumentError(f"an IPv4 address is 4 bytes, got {len(ip)}")
        return ip
    try:
        return ipaddress.IPv4Address(ip).packed
    except ValueError as exc:
        raise ArgumentError(f"{ip!r} is not an IPv4 address: {exc}") from None


def bytes_to_ip(raw: bytes) -> str:
    """Format 4 bytes as a dotted quad."""
    if len(raw) != 4:
        raise ArgumentError(f"an IPv4 address is 4 bytes, got {len(raw)}")
    return str(ipaddress.IPv4Address(bytes(raw)))


def inet_checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071) of ``data``, as the u16 to store big-endian.

    Verifying: the checksum of a header that already holds its checksum is 0.
    """
    raw = bytes(data)
    if len(raw) % 2:
        raw += b"\0"
    total: int = sum(struct.unpack(f">{len(raw) // 2}H", raw))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_header(total_length: int, proto: int, src: bytes, dst: bytes, ttl: int = 64) -> bytes:
    """A 20-byte IPv4 header with DF set, ID 0 (RFC 6864 allows it with DF) and its checksum."""
    hdr = bytearray(_IPV4_HDR.pack(0x45, 0, total_length, 0, 0x4000, ttl, proto, 0, src, dst))
    struct.pack_into(">H", hdr, 10, inet_checksum(hdr))
    return bytes(hdr)


def _eth_header(dst_mac: bytes, src_mac: bytes, ethertype: int) -> bytes:
    if len(dst_mac) != MAC_SIZE or len(src_mac) != MAC_SIZE:
        raise ArgumentError(f"MAC addresses must be {MAC_SIZE} bytes")
    return dst_mac + src_mac + struct.pack(">H", ethertype)


# --- UDP test frames ---------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _pattern_table() -> bytes:
    """Pseudo-random bytes long enough for any window: built once, lazily (~66 KiB)."""
    need = _PATTERN_PERIOD + _MAX_PATTERN
    blocks = (hashlib.sha256(b"memif-ct pattern %d" % i).digest() for i in range(need // 32 + 1))
    return b"".join(blocks)[:need]


@functools.lru_cache(maxsize=64)
def _udp_template(
    size: int, src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, src_port: int, dst_port: int
) -> bytes:
    """Headers plus magic of a test frame of ``size`` bytes; seq, crc and pattern left zero."""
    if not MIN_FRAME_SIZE <= size <= MAX_FRAME_SIZE:
        raise ArgumentError(f"frame size {size} is out of range: must be {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE}")
    for port in (src_port, dst_port):
        if not 0 <= port <= 0xFFFF:
            raise ArgumentError(f"UDP port {port} is out of range: must be 0..65535")
    ip_len = size - ETH_HEADER_SIZE
    udp = _UDP_HDR.pack(src_port, dst_port, ip_len - IPV4_HEADER_SIZE, 0)
    head = (
        _eth_header(dst_mac, src_mac, ETHERTYPE_IPV4)
        + _ipv4_header(ip_len, IPPROTO_UDP, src_ip, dst_ip)
        + udp
    )
    return head + MAGIC + bytes(size - _SEQ_OFF)


def build_udp_frame(
    size: int,
    seq: int,
    *,
    src_mac: bytes = DEFAULT_SRC_MAC,
    dst_mac: bytes = DEFAULT_DST_MAC,
    src_ip: IPv4Like = DEFAULT_SRC_IP,
    dst_ip: IPv4Like = DEFAULT_DST_IP,
    src_port: int = DEFAULT_PORT,
    dst_port: int = DEFAULT_PORT,
) -> bytes:
    """One test frame of exactly ``size`` bytes (60..65535) carrying sequence number ``seq``.

    Raises ArgumentError (a ValueError) for a size, port or address out of range, or a seq
    outside u64.
    """
    packed, _ = build_frames_batch(
        1,
        size,
        seq,
        src_mac=src_mac,
        dst_mac=dst_mac,
        src_ip=src_ip,
        dst_ip=dst_ip,
        src_port=src_port,
        dst_port=dst_port,
    )
    return bytes(packed)


def build_frames_batch(
    count: int,
    size: int,
    first_seq: int,
    *,
    src_mac: bytes = DEFAULT_SRC_MAC,
    dst_mac: bytes = DEFAULT_DST_MAC,
    src_ip: IPv4Like = DEFAULT_SRC_IP,
    dst_ip: IPv4Like = DEFAULT_DST_IP,
    src_port: int = DEFAULT_PORT,
    dst_port: int = DEFAULT_PORT,
) -> tuple[bytearray, list[int]]:
    """``count`` test frames with seqs ``first_seq, first_seq+1, ...``, packed back to back.

    Returns the packed buffer and the list of frame lengths, which is the shape a burst TX call
    takes. The headers are copied from a cached template in one multiplication; per frame only
    seq, pattern window and crc are written, which keeps pktgen's Python cost per frame small.
    """
    if count < 0:
        raise ArgumentError(f"count {count} must be >= 0")
    last_seq = first_seq + count - 1
    if first_seq < 0 or last_seq >= 1 << 64:
        raise ArgumentError(f"sequence numbers {first_seq}..{last_seq} do not fit in u64")
    template = _udp_template(
        size, bytes(src_mac), bytes(dst_mac), ip_to_bytes(src_ip), ip_to_bytes(dst_ip), src_port, dst_port
    )
    packed = bytearray(template * count)
    pattern_len = size - _PATTERN_OFF
    table = memoryview(_pattern_table())
    pack_seq = _SEQ.pack
    pack_crc = _CRC.pack_into
    crc32 = zlib.crc32
    off = 0
    for seq in range(first_seq, first_seq + count):
        seq_bytes = pack_seq(seq)
        start = seq % _PATTERN_PERIOD
        window = table[start : start + pattern_len]
        packed[off + _SEQ_OFF : off + _CRC_OFF] = seq_bytes
        packed[off + _PATTERN_OFF : off + size] = window
        pack_crc(packed, off + _CRC_OFF, crc32(window, crc32(seq_bytes)))
        off += size
    return packed, [size] * count


def udp_frame_stamper(
    size: int,
    *,
    src_mac: bytes = DEFAULT_SRC_MAC,
    dst_mac: bytes = DEFAULT_DST_MAC,
    src_ip: IPv4Like = DEFAULT_SRC_IP,
    dst_ip: IPv4Like = DEFAULT_DST_IP,
    src_port: int = DEFAULT_PORT,
    dst_port: int = DEFAULT_PORT,
) -> _native.FrameStamper:
    """The frames of :func:`build_frames_batch`, byte for byte, stamped in C a whole burst per call
    (csrc/traffic.c) from this module's template and pattern table: what pktgen sends with."""
    template = _udp_template(
        size, bytes(src_mac), bytes(dst_mac), ip_to_bytes(src_ip), ip_to_bytes(dst_ip), src_port, dst_port
    )
    return _native.FrameStamper(template, _pattern_table())


class Verdict(enum.Enum):
    """What :func:`verify_udp_frame` concluded about one frame."""

    OK = "ok"  # one of ours, intact
    NOT_OURS = "not-ours"  # someone else's traffic: ignore it, do not count it as loss
    CORRUPTED = "corrupted"  # one of ours, damaged: a data-path bug


class VerifyResult(NamedTuple):
    """Verdict plus the seq (only when OK, since a damaged seq cannot be trusted) and why."""

    verdict: Verdict
    seq: int | None = None
    reason: str = ""


_NOT_OURS = VerifyResult(Verdict.NOT_OURS)


def _magic_distance(frame: bytes | bytearray | memoryview, off: int) -> int:
    got = bytes(frame[off : off + len(MAGIC)])
    if len(got) < len(MAGIC):
        return len(MAGIC)
    return sum(a != b for a, b in zip(got, MAGIC, strict=True))


def verify_udp_frame(frame: bytes | bytearray | memoryview) -> VerifyResult:
    """Check a received frame against the layout built by :func:`build_udp_frame`.

    MACs, IP addresses, ports and TTL (with a matching IPv4 checksum) may have been rewritten
    by a reflector and are not checked; everything else is. A frame is "ours" when the magic at
    offset 42 is within two bytes of ``MAGIC``; anything else is NOT_OURS.
    """
    if _magic_distance(frame, _MAGIC_OFF) > _MAGIC_TOLERANCE:
        return _NOT_OURS
    if len(frame) < MIN_FRAME_SIZE:
        return VerifyResult(
            Verdict.CORRUPTED, reason=f"frame of {len(frame)} bytes is shorter than {MIN_FRAME_SIZE}"
        )
    if frame[_MAGIC_OFF:_SEQ_OFF] != MAGIC:
        return VerifyResult(Verdict.CORRUPTED, reason="magic damaged")
    if frame[12:14] != b"\x08\x00":
        return VerifyResult(Verdict.CORRUPTED, reason="ethertype is not IPv4")
    ip = frame[ETH_HEADER_SIZE : ETH_HEADER_SIZE + IPV4_HEADER_SIZE]
    if ip[0] != 0x45 or ip[9] != IPPROTO_UDP:
        return VerifyResult(Verdict.CORRUPTED, reason="IPv4 version/IHL or protocol damaged")
    if inet_checksum(ip) != 0:
        return VerifyResult(Verdict.CORRUPTED, reason="IPv4 header checksum mismatch")
    ip_len = (ip[2] << 8) | ip[3]
    end = ETH_HEADER_SIZE + ip_len
    # Trailing bytes past the IPv4 length are Ethernet padding; ours has none, others may add it.
    if ip_len < IPV4_HEADER_SIZE + UDP_HEADER_SIZE + TRAILER_SIZE or end > len(frame):
        return VerifyResult(
            Verdict.CORRUPTED, reason=f"IPv4 total length {ip_len} does not fit a {len(frame)}-byte frame"
        )
    udp_len, udp_sum = struct.unpack_from(">HH", frame, ETH_HEADER_SIZE + IPV4_HEADER_SIZE + 4)
    if udp_len != ip_len - IPV4_HEADER_SIZE:
        return VerifyResult(
            Verdict.CORRUPTED, reason=f"UDP length {udp_len} disagrees with IPv4 length {ip_len}"
        )
    if udp_sum != 0 and _udp_checksum(frame, end) != 0:
        return VerifyResult(Verdict.CORRUPTED, reason="UDP checksum mismatch")
    seq_bytes = frame[_SEQ_OFF:_CRC_OFF]
    (want,) = _CRC.unpack_from(frame, _CRC_OFF)
    if zlib.crc32(frame[_PATTERN_OFF:end], zlib.crc32(seq_bytes)) != want:
        return VerifyResult(Verdict.CORRUPTED, reason="payload crc32 mismatch")
    return VerifyResult(Verdict.OK, _SEQ.unpack(seq_bytes)[0])


def _udp_checksum(frame: bytes | bytearray | memoryview, end: int) -> int:
    """Residual of the UDP checksum over pseudo-header + datagram: 0 when it verifies."""
    ip_off = ETH_HEADER_SIZE
    udp = bytes(frame[ip_off + IPV4_HEADER_SIZE : end])
    pseudo = bytes(frame[ip_off + 12 : ip_off + 20]) + struct.pack(">BBH", 0, IPPROTO_UDP, len(udp))
    return inet_checksum(pseudo + udp)


def macswap(frame: bytes | bytearray | memoryview) -> bytes:
    """Swap destination and source MAC, as testpmd's ``macswap`` forwarding mode does."""
    raw = bytes(frame)
    return raw[6:12] + raw[0:6] + raw[12:]


# --- ARP -----------------------------------------------------------------------------------

ARP_REQUEST = 1
ARP_REPLY = 2
_ARP = struct.Struct(">HHBBH6s4s6s4s")  # htype, ptype, hlen, plen, op, sha, spa, tha, tpa


class ArpPacket(NamedTuple):
    """An Ethernet/IPv4 ARP message; addresses as bytes (use macaddr.mac_to_str / bytes_to_ip)."""

    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes
    eth_src: bytes
    eth_dst: bytes


def _pad(frame: bytes) -> bytes:
    """Pad to the 60-byte Ethernet minimum, as a NIC would before the FCS."""
    return frame + bytes(MIN_FRAME_SIZE - len(frame)) if len(frame) < MIN_FRAME_SIZE else frame


def _arp_frame(
    op: int, eth_dst: bytes, src_mac: bytes, src_ip: IPv4Like, target_mac: bytes, target_ip: IPv4Like
) -> bytes:
    body = _ARP.pack(
        1, ETHERTYPE_IPV4, 6, 4, op, src_mac, ip_to_bytes(src_ip), target_mac, ip_to_bytes(target_ip)
    )
    return _pad(_eth_header(eth_dst, src_mac, ETHERTYPE_ARP) + body)


def build_arp_request(src_mac: bytes, src_ip: IPv4Like, target_ip: IPv4Like) -> bytes:
    """A broadcast "who has target_ip, tell src_ip" (60 bytes)."""
    return _arp_frame(ARP_REQUEST, BROADCAST_MAC, src_mac, src_ip, bytes(6), target_ip)


def build_arp_reply(src_mac: bytes, src_ip: IPv4Like, dst_mac: bytes, dst_ip: IPv4Like) -> bytes:
    """A unicast "src_ip is at src_mac" addressed to dst_mac/dst_ip (60 bytes)."""
    return _arp_frame(ARP_REPLY, dst_mac, src_mac, src_ip, dst_mac, dst_ip)


def parse_arp(frame: bytes | bytearray | memoryview) -> ArpPacket | None:
    """Decode an Ethernet/IPv4 ARP request or reply; None for anything else."""
    if len(frame) < ETH_HEADER_SIZE + _ARP.size or frame[12:14] != b"\x08\x06":
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, ETH_HEADER_SIZE)
    if (htype, ptype, hlen, plen) != (1, ETHERTYPE_IPV4, 6, 4) or op not in (ARP_REQUEST, ARP_REPLY):
        return None
    return ArpPacket(op, sha, spa, tha, tpa, bytes(frame[6:12]), bytes(frame[0:6]))


def arp_reply_for(request: bytes | bytearray | memoryview, my_mac: bytes) -> bytes | None:
    """The reply a host with ``my_mac`` owes to an ARP request; None if it is not a request."""
    arp = parse_arp(request)
    if arp is None or arp.op != ARP_REQUEST:
        return None
    return build_arp_reply(my_mac, arp.target_ip, arp.sender_mac, arp.sender_ip)


# --- ICMP echo -----------------------------------------------------------------------------

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
_ICMP_ECHO = struct.Struct(">BBHHH")  # type, code, checksum, identifier, sequence


class IcmpEcho(NamedTuple):
    """An ICMP echo request or reply. ``checksums_ok`` covers both the IPv4 and ICMP checksums."""

    type: int
    ident: int
    seq: int
    payload: bytes
    src_ip: bytes
    dst_ip: bytes
    ttl: int
    checksums_ok: bool

    @property
    def is_reply(self) -> bool:
        return self.type == ICMP_ECHO_REPLY


def _icmp_frame(
    icmp_type: int,
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    ident: int,
    seq: int,
    payload: bytes,
    ttl: int,
) -> bytes:
    icmp = bytearray(_ICMP_ECHO.pack(icmp_type, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + payload)
    struct.pack_into(">H", icmp, 2, inet_checksum(icmp))
    ip = _ipv4_header(IPV4_HEADER_SIZE + len(icmp), IPPROTO_ICMP, src_ip, dst_ip, ttl)
    return _pad(_eth_header(dst_mac, src_mac, ETHERTYPE_IPV4) + ip + icmp)


def build_icmp_echo_request(
    *,
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: IPv4Like,
    dst_ip: IPv4Like,
    ident: int,
    seq: int,
    payload: bytes = b"memif-ct ping",
    ttl: int = 64,
) -> bytes:
    """An Ethernet/IPv4 ICMP echo request with correct IPv4 and ICMP checksums.

    ``ident`` and ``seq`` are truncated to 16 bits, as ping does when its counter wraps.
    """
    return _icmp_frame(
        ICMP_ECHO_REQUEST,
        src_mac,
        dst_mac,
        ip_to_bytes(src_ip),
        ip_to_bytes(dst_ip),
        ident,
        seq,
        payload,
        ttl,
    )


def parse_icmp_echo(frame: bytes | bytearray | memoryview) -> IcmpEcho | None:
    """Decode an ICMP echo request or reply; None for anything else.

    A damaged echo is returned with ``checksums_ok=False`` rather than dropped, so ping can say
    "bad checksum" instead of counting a silent loss.
    """
    if len(frame) < ETH_HEADER_SIZE + IPV4_HEADER_SIZE + _ICMP_ECHO.size or frame[12:14] != b"\x08\x00":
        return None
    ip_off = ETH_HEADER_SIZE
    ihl = (frame[ip_off] & 0x0F) * 4
    if frame[ip_off] >> 4 != 4 or ihl < IPV4_HEADER_SIZE or frame[ip_off + 9] != IPPROTO_ICMP:
        return None
    ip_len = (frame[ip_off + 2] << 8) | frame[ip_off + 3]
    end = min(ip_off + ip_len, len(frame))
    icmp_off = ip_off + ihl
    if end < icmp_off + _ICMP_ECHO.size:
        return None
    icmp_type, code, _, ident, seq = _ICMP_ECHO.unpack_from(frame, icmp_off)
    if icmp_type not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY) or code != 0:
        return None
    ok = (
        end == ip_off + ip_len
        and inet_checksum(frame[ip_off:icmp_off]) == 0
        and inet_checksum(frame[icmp_off:end]) == 0
    )
    return IcmpEcho(
        icmp_type,
        ident,
        seq,
        bytes(frame[icmp_off + _ICMP_ECHO.size : end]),
        bytes(frame[ip_off + 12 : ip_off + 16]),
        bytes(frame[ip_off + 16 : ip_off + 20]),
        frame[ip_off + 8],
        ok,
    )


def icmp_echo_reply_for(request: bytes | bytearray | memoryview) -> bytes | None:
    """The echo reply a responder owes to an intact echo request (MACs and IPs swapped).

    None when the frame is not an echo request or its checksums are wrong.
    """
    echo = parse_icmp_echo(request)
    if echo is None or echo.is_reply or not echo.checksums_ok:
        return None
    return _icmp_frame(
        ICMP_ECHO_REPLY,
        bytes(request[0:6]),
        bytes(request[6:12]),
        echo.dst_ip,
        echo.src_ip,
        echo.ident,
        echo.seq,
        echo.payload,
        64,
    )
