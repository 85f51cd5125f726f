"""PcapWriter: file header bytes, record layout, snaplen, timestamps, link types; read back by a
small independent reader and by tcpdump."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from memif_ct import constants
from memif_ct.frames import build_udp_frame
from memif_ct.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    LINKTYPE_USER0,
    PcapWriter,
    linktype_for_mode,
)


class Capture(NamedTuple):
    nanosecond: bool
    snaplen: int
    linktype: int
    records: list[tuple[int, int, int, bytes]]  # (seconds, fraction, orig_len, data)


def read_pcap(raw: bytes) -> Capture:
    """A minimal classic-pcap reader, either byte order, written from the format description."""
    magic_le = struct.unpack("<I", raw[:4])[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        order = "<"
    else:
        order = ">"
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack(order + "IHHiIII", raw[:24])
    assert (major, minor, zone, sigfigs) == (2, 4, 0, 0)
    records = []
    off = 24
    while off < len(raw):
        sec, frac, incl, orig = struct.unpack(order + "IIII", raw[off : off + 16])
        off += 16
        data = raw[off : off + incl]
        assert len(data) == incl
        off += incl
        records.append((sec, frac, orig, data))
    return Capture(magic == 0xA1B23C4D, snaplen, linktype, records)


def test_header_bytes_microsecond(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    with PcapWriter(path):
        pass
    assert path.read_bytes() == bytes.fromhex("d4c3b2a1 0200 0400 00000000 00000000 00000400 01000000")


def test_header_bytes_nanosecond_raw_ip() -> None:
    buf = io.BytesIO()
    with PcapWriter(buf, linktype=LINKTYPE_RAW, nanosecond=True, snaplen=65535):
        pass
    assert buf.getvalue() == bytes.fromhex("4d3cb2a1 0200 0400 00000000 00000000 ffff0000 65000000")
    assert not buf.closed  # a caller's file object stays open


def test_record_layout_microsecond() -> None:
    buf = io.BytesIO()
    packet = build_udp_frame(64, 1)
    with PcapWriter(buf) as writer:
        writer.write(packet, timestamp_ns=1_700_000_000_123_456_789)
    raw = buf.getvalue()
    assert len(raw) == 24 + 16 + 64
    assert struct.unpack("<IIII", raw[24:40]) == (1_700_000_000, 123_456, 64, 64)
    assert raw[40:] == packet


def test_records_read_back_nanosecond(tmp_path: Path) -> None:
    path = tmp_path / "b.pcap"
    packets = [build_udp_frame(size, seq) for seq, size in enumerate([60, 64, 1500, 9000])]
    with PcapWriter(path, nanosecond=True) as writer:
        for i, packet in enumerate(packets):
            writer.write(packet, timestamp_ns=5_000_000_000 + i)
        assert writer.packets_written == 4
    cap = read_pcap(path.read_bytes())
    assert cap.nanosecond and cap.linktype == LINKTYPE_ETHERNET and cap.snaplen == 262144
    assert [r[3] for r in cap.records] == packets
    assert [(r[0], r[1], r[2]) for r in cap.records] == [(5, i, len(p)) for i, p in enumerate(packets)]


def test_snaplen_truncates_but_keeps_original_length() -> None:
    buf = io.BytesIO()
    packet = build_udp_frame(1500, 3)
    with PcapWriter(buf, snaplen=100) as writer:
        writer.write(bytearray(packet), timestamp_ns=0)
        writer.write(memoryview(packet)[:80], timestamp_ns=0)
    cap = read_pcap(buf.getvalue())
    assert cap.records == [(0, 0, 1500, packet[:100]), (0, 0, 80, packet[:80])]


def test_default_timestamp_is_now() -> None:
    buf = io.BytesIO()
    before = time.time()
    with PcapWriter(buf) as writer:
        writer.write(b"\0" * 60)
    sec, usec, _, _ = read_pcap(buf.getvalue()).records[0]
    assert before - 1 <= sec + usec / 1e6 <= time.time() + 1


def test_close_flushes_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    writer = PcapWriter(path)
    writer.write(b"x" * 60, timestamp_ns=0)
    writer.close()
    writer.close()
    assert writer.closed
    assert len(read_pcap(path.read_bytes()).records) == 1
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x", timestamp_ns=0)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="snaplen"):
        PcapWriter(io.BytesIO(), snaplen=0)
    with pytest.raises(ValueError, match="linktype"):
        PcapWriter(io.BytesIO(), linktype=-1)
    with PcapWriter(io.BytesIO()) as writer, pytest.raises(ValueError, match="negative"):
        writer.write(b"x", timestamp_ns=-1)


def test_linktype_for_mode() -> None:
    assert linktype_for_mode(constants.MODE_ETHERNET) == LINKTYPE_ETHERNET == 1
    assert linktype_for_mode(constants.MODE_IP) == LINKTYPE_RAW == 101
    assert linktype_for_mode(constants.MODE_PUNT_INJECT) == LINKTYPE_USER0
    with pytest.raises(ValueError, match="mode 9"):
        linktype_for_mode(9)
    buf = io.BytesIO()
    PcapWriter.for_mode(buf, constants.MODE_IP).close()
    assert read_pcap(buf.getvalue()).linktype == LINKTYPE_RAW


def test_tcpdump_reads_it(tmp_path: Path) -> None:
    """A real pcap reader (installed by .ci/run) parses our file: not just our own reader."""
    tcpdump = shutil.which("tcpdump") or shutil.which("tcpdump", path="/usr/sbin:/usr/bin")
    assert tcpdump, "tcpdump is not installed: .ci/run installs it (apt-get install tcpdump)"
    path = tmp_path / "t.pcap"
    with PcapWriter(path, nanosecond=True) as writer:
        for seq in range(3):
            writer.write(build_udp_frame(64, seq), timestamp_ns=seq)
    out = subprocess.run(
        [tcpdump, "-nn", "-r", str(path)], capture_output=True, text=True, check=True, timeout=60
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout
    assert all("UDP" in line and ".9:" in line for line in lines), out.stdout
