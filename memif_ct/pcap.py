"""Classic pcap writer, so that what crossed a memif link can be opened in Wireshark or tcpdump.

Classic pcap rather than pcapng: it is a 24-byte header plus a 16-byte header per packet,
every tool reads it, and writing it costs one ``struct.pack`` per packet. The link type follows
the memif interface mode: ethernet frames are LINKTYPE_ETHERNET, ``mode=ip`` carries bare IP
packets (LINKTYPE_RAW), and punt/inject carries bytes whose format only the two ends know
(LINKTYPE_USER0, so Wireshark shows them raw instead of misparsing them).

Records are written little-endian; readers detect the byte order from the magic number.
"""

from __future__ import annotations

import os
import struct
import time
from types import TracebackType
from typing import BinaryIO, Final

from memif_ct import constants
from memif_ct.errors import ArgumentError

__all__ = [
    "DEFAULT_SNAPLEN",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_USER0",
    "MAGIC_NSEC",
    "MAGIC_USEC",
    "PcapWriter",
    "linktype_for_mode",
]

MAGIC_USEC: Final = 0xA1B2C3D4
MAGIC_NSEC: Final = 0xA1B23C4D
VERSION_MAJOR: Final = 2
VERSION_MINOR: Final = 4
DEFAULT_SNAPLEN: Final = 262144  # what tcpdump and Wireshark use since 2014

LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101  # starts with the IPv4/IPv6 header, version nibble tells which
LINKTYPE_USER0: Final = 147

_FILE_HEADER: Final = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, network
_RECORD_HEADER: Final = struct.Struct("<IIII")  # ts_sec, ts_usec or ts_nsec, incl_len, orig_len


def linktype_for_mode(mode: int) -> int:
    """The pcap link type for a memif interface mode (constants.MODE_*); ValueError otherwise."""
    if mode == constants.MODE_ETHERNET:
        return LINKTYPE_ETHERNET
    if mode == constants.MODE_IP:
        return LINKTYPE_RAW
    if mode == constants.MODE_PUNT_INJECT:
        return LINKTYPE_USER0
    raise ArgumentError(f"memif mode {mode} is unknown: expected 0 (ethernet), 1 (ip) or 2 (punt-inject)")


class PcapWriter:
    """Write packets to a classic pcap file; use as a context manager so it is flushed.

    ``target`` is a path (created or truncated, closed by :meth:`close`) or a binary file object
    that stays open (only flushed). ``nanosecond=True`` writes the nanosecond-resolution magic,
    worth it because memif packets arrive far less than a microsecond apart. Packets longer than
    ``snaplen`` are cut to it, with their original length recorded.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        linktype: int = LINKTYPE_ETHERNET,
        nanosecond: bool = False,
        snaplen: int = DEFAULT_SNAPLEN,
    ) -> None:
        if not 0 <= linktype <= 0xFFFF:
            raise ArgumentError(f"linktype {linktype} is out of range: must be 0..65535")
        if not 1 <= snaplen <= 0xFFFFFFFF:
            raise ArgumentError(f"snaplen {snaplen} is out of range: must be 1..4294967295")
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self.packets_written = 0
        self._owns_file = isinstance(target, (str, os.PathLike))
        # Closed by close()/__exit__, not a with-block: the writer outlives this call.
        self._file: BinaryIO = open(target, "wb") if isinstance(target, (str, os.PathLike)) else target
        self._closed = False
        self._file.write(
            _FILE_HEADER.pack(
                MAGIC_NSEC if nanosecond else MAGIC_USEC,
                VERSION_MAJOR,
                VERSION_MINOR,
                0,
                0,
                snaplen,
                linktype,
            )
        )

    @classmethod
    def for_mode(
        cls, target: str | os.PathLike[str] | BinaryIO, mode: int, *, nanosecond: bool = False
    ) -> PcapWriter:
        """A writer whose link type matches a memif interface mode (constants.MODE_*)."""
        return cls(target, linktype=linktype_for_mode(mode), nanosecond=nanosecond)

    def write(self, packet: bytes | bytearray | memoryview, timestamp_ns: int | None = None) -> None:
        """Append one packet; ``timestamp_ns`` is nanoseconds since the epoch (default: now)."""
        if self._closed:
            raise ArgumentError("write to a closed PcapWriter")
        if timestamp_ns is None:
            timestamp_ns = time.time_ns()
        if timestamp_ns < 0:
            raise ArgumentError(f"timestamp_ns {timestamp_ns} is negative: pcap stores unsigned epoch seconds")
        seconds, rest_ns = divmod(timestamp_ns, 1_000_000_000)
        fraction = rest_ns if self.nanosecond else rest_ns // 1000
        length = len(packet)
        captured = min(length, self.snaplen)
        self._file.write(_RECORD_HEADER.pack(seconds & 0xFFFFFFFF, fraction, captured, length))
        self._file.write(packet if captured == length else memoryview(packet)[:captured])
        self.packets_written += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._file.flush()
        if self._owns_file:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
