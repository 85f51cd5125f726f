"""The C burst functions driven from Python over one memfd mapped twice (client and server)."""

from __future__ import annotations

import array
import random
import struct

import pytest

from memif_ct import _native, constants as c
from memif_ct.burst import RxScratch, pack_packets, rx_into, tx_packed
from memif_ct.region import Region

from ringpair import make_pair, transfer

BSIZE = 2048


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def pair():
    p = make_pair(buffer_size=BSIZE)
    yield p
    p.close()


@pytest.mark.parametrize("direction", ["s2m", "m2s"])
def test_every_size_1_to_9000_bytes_equal(pair, direction):
    packets = [payload(size, size) for size in range(1, 9001)]
    if direction == "s2m":
        tx, rx = pair.client_tx[0], pair.server_rx[0]
    else:
        tx, rx = pair.server_tx[0], pair.client_rx[0]
    got = transfer(tx, rx, packets)
    assert len(got) == len(packets)
    for i, (a, b) in enumerate(zip(packets, got, strict=True)):
        assert a == b, f"packet {i} ({len(a)} bytes) differs"
    total = sum(map(len, packets))
    chains = sum(1 for p in packets if len(p) > BSIZE)
    for q in (tx, rx):
        s = q.stats()
        assert (s.packets, s.bytes, s.chains) == (len(packets), total, chains)
        assert (s.bad_desc, s.bad_ring, s.drops) == (0, 0, 0)


def test_multi_queue_isolation():
    p = make_pair(num_s2m=4, num_m2s=2, log2_ring_size=6)
    try:
        for i in range(4):
            data, lengths = pack_packets([bytes([i]) * (100 + i)])
            assert tx_packed(p.client_tx[i], data, lengths) == 1
        scratch = RxScratch(1 << 16, 64)
        for i in range(4):
            assert scratch.receive(p.server_rx[i], 64) == [bytes([i]) * (100 + i)]
        for i in range(2):
            data, lengths = pack_packets([b"m2s" * (i + 1)])
            assert tx_packed(p.server_tx[i], data, lengths) == 1
            assert scratch.receive(p.client_rx[i], 64) == [b"m2s" * (i + 1)]
    finally:
        p.close()


def test_ring_full_returns_partial_count(pair):
    tx = pair.client_tx[0]
    packets = [b"x" * 60] * 1500
    data, lengths = pack_packets(packets)
    assert tx_packed(tx, data, lengths) == 1024  # ring of 1024 slots
    assert tx.free() == 0 and tx.stats().no_space == 1
    assert pair.server_rx[0].pending() == 1024


def test_m2s_without_posted_buffers_sends_nothing(pair):
    scratch = RxScratch(1 << 20, 2048)
    tx = pair.server_tx[0]
    data, lengths = pack_packets([b"y" * 100] * 1100)
    assert tx_packed(tx, data, lengths) == 1024  # the client posted 1024 buffers
    assert tx_packed(tx, data, lengths) == 0  # none left until the client consumes
    assert len(scratch.receive(pair.client_rx[0], 2048)) == 1024  # consume + refill
    assert tx_packed(tx, data, lengths) == 1024


def test_packed_and_into_variants(pair):
    data = bytearray(b"abc" + b"defgh")
    lengths = array.array("I", [3, 5])
    assert tx_packed(pair.client_tx[0], data, lengths) == 2
    out = bytearray(64)
    got_lengths = array.array("I", [0] * 8)
    assert rx_into(pair.server_rx[0], out, got_lengths) == 2
    assert list(got_lengths[:2]) == [3, 5] and bytes(out[:8]) == b"abcdefgh"


def test_rx_buffer_too_small_drops_and_counts(pair):
    data, lengths = pack_packets([b"A" * 1000, b"B" * 10])
    tx_packed(pair.client_tx[0], data, lengths)
    out, got = bytearray(500), array.array("I", [0] * 4)
    assert rx_into(pair.server_rx[0], out, got) == 1
    assert got[0] == 10 and bytes(out[:10]) == b"B" * 10
    assert pair.server_rx[0].stats().drops == 1


# ---- hostile descriptors written straight into shared memory ------------------------------

DESC = struct.Struct("<HHIII")


def poke_desc(pair, slot: int, flags: int, region: int, length: int, offset: int, ring_type=c.RING_TYPE_S2M):
    view = pair.ring_view(ring_type, 0, server=False)
    DESC.pack_into(view, 2 * _native.cacheline_size() + 16 * slot, flags, region, length, offset, 0)
    view.release()


def set_head(pair, value: int, ring_type=c.RING_TYPE_S2M):
    view = pair.ring_view(ring_type, 0, server=False)
    view[6:8] = value.to_bytes(2, "little")
    view.release()


@pytest.mark.parametrize(
    "flags,region,length,offset",
    [
        (0, 1, 64, 0),  # region index beyond the table
        (0, 0xFFFF, 64, 0),
        (0, 0, 64, 0xFFFFFFF0),  # offset beyond the region
        (0, 0, 0x20, 0xFFFFFFF0),  # offset + length overflows u32
        (0, 0, 0xFFFFFFFF, 0),  # length beyond the region
        (0, 0, 0, 0),  # empty packet
        (c.DESC_FLAG_NEXT, 0, 64, 0xFFFFFFFF),  # bad first segment of a chain
    ],
)
def test_hostile_descriptor_is_skipped_and_counted(pair, flags, region, length, offset):
    good = pair.layout.buffer_offset(c.RING_TYPE_S2M, 0)
    pair.client_region.view(good, 4)[:] = b"good"
    poke_desc(pair, 0, flags, region, length, offset)
    poke_desc(pair, 1, 0, 0, 4, good)  # a valid packet after it is still delivered
    set_head(pair, 2)
    got = RxScratch(1 << 16, 16).receive(pair.server_rx[0], 16)
    s = pair.server_rx[0].stats()
    if flags & c.DESC_FLAG_NEXT:
        # the bad head segment swallows the next slot as its chain continuation
        assert got == [] and s.drops == 1
    else:
        assert got == [b"good"] and s.drops == 1 and s.bad_desc == 1


def test_impossible_head_is_counted_and_adopted(pair):
    set_head(pair, 5000)  # more than a 1024-slot ring can hold
    assert RxScratch(1 << 16, 16).receive(pair.server_rx[0], 16) == []
    assert pair.server_rx[0].stats().bad_ring == 1
    view = pair.ring_view(c.RING_TYPE_S2M, 0)
    tail = int.from_bytes(view[_native.cacheline_size():_native.cacheline_size() + 2], "little")
    view.release()
    assert tail == 5000  # the server released up to that head: the ring is back in step


def test_next_on_last_published_slot_waits_for_the_rest(pair):
    off = pair.layout.buffer_offset(c.RING_TYPE_S2M, 0)
    pair.client_region.view(off, 8)[:] = b"part1..."
    pair.client_region.view(off + BSIZE, 8)[:] = b"part2..."
    poke_desc(pair, 0, c.DESC_FLAG_NEXT, 0, 8, off)
    set_head(pair, 1)
    scratch = RxScratch(1 << 16, 16)
    assert scratch.receive(pair.server_rx[0], 16) == []
    assert pair.server_rx[0].pending() == 1  # not consumed
    poke_desc(pair, 1, 0, 0, 8, off + BSIZE)
    set_head(pair, 2)
    assert scratch.receive(pair.server_rx[0], 16) == [b"part1...part2..."]


# ---- argument validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(num_s2m=0), "num_s2m"),
        (dict(num_m2s=256), "num_m2s"),
        (dict(log2_ring_size=0), "log2_ring_size"),
        (dict(log2_ring_size=15), "log2_ring_size"),
        (dict(buffer_size=63), "buffer_size"),
        (dict(buffer_size=65536), "buffer_size"),
    ],
)
def test_layout_rejects_out_of_range(kwargs, name):
    args = dict(num_s2m=1, num_m2s=1, log2_ring_size=10, buffer_size=2048) | kwargs
    with pytest.raises(ValueError, match=name) as err:
        _native.Layout.compute(**args)
    assert "expected" in str(err.value)


def test_layout_rejects_wrong_types():
    with pytest.raises(TypeError, match="log2_ring_size"):
        _native.Layout.compute(1, 1, "10", 2048)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="buffer_size"):
        _native.Layout.compute(1, 1, 10, 2048.0)  # type: ignore[arg-type]


def test_layout_values():
    cl = _native.cacheline_size()
    lay = _native.Layout.compute(2, 3, 4, 1024)
    assert lay.ring_bytes == 2 * cl + 16 * 16
    assert lay.buffers_offset == 5 * lay.ring_bytes
    assert lay.total_size == lay.buffers_offset + 5 * 16 * 1024
    assert lay.ring_offset(c.RING_TYPE_M2S, 0) == 2 * lay.ring_bytes
    assert lay.buffer_offset(c.RING_TYPE_M2S, 2) == lay.buffers_offset + 4 * 16 * 1024
    with pytest.raises(ValueError, match="index"):
        lay.ring_offset(c.RING_TYPE_S2M, 2)


def test_bad_packets_from_caller(pair):
    with pytest.raises(ValueError, match=r"packets\[1\] is empty"):
        pack_packets([b"a", b"", b"c"])
    with pytest.raises(TypeError, match=r"packets\[0\]"):
        pack_packets(["text"])  # type: ignore[list-item]
    lengths = array.array("I", [10])
    with pytest.raises(ValueError, match="argument out of range"):
        tx_packed(pair.client_tx[0], b"short", lengths)  # lengths run past the data
    with pytest.raises(ValueError, match="count"):
        pair.client_tx[0].tx_burst(b"x", array.array("I", [1]), 2)
    with pytest.raises(TypeError, match="array"):
        pair.client_tx[0].tx_burst(b"x", array.array("H", [1]), 1)  # type: ignore[arg-type]
    # a chain longer than the ring can never be sent
    small = make_pair(log2_ring_size=1, buffer_size=64)
    try:
        with pytest.raises(ValueError, match="argument out of range"):
            tx_packed(small.client_tx[0], b"z" * 129, array.array("I", [129]))
    finally:
        small.close()


def test_wrong_direction_is_refused(pair):
    with pytest.raises(ValueError, match="role and ring type"):
        tx_packed(pair.server_rx[0], b"x", array.array("I", [1]))
    with pytest.raises(ValueError, match="role and ring type"):
        rx_into(pair.client_tx[0], bytearray(8), array.array("I", [0]))


def test_queue_rejects_ring_outside_region_and_bad_cookie():
    with Region.create(1 << 16) as region:
        table = _native.RegionTable(1)
        table.set(0, region.address, region.size)
        with pytest.raises(ValueError, match="cookie"):
            _native.NativeQueue(region.address, 4, role=c.ROLE_SERVER, ring_type=0, regions=table)
        with pytest.raises(ValueError, match="outside"):
            _native.NativeQueue(region.address + region.size - 64, 4, role=c.ROLE_SERVER, ring_type=0, regions=table)
        table.clear()


def test_interrupt_mask_and_eventfd(pair):
    import os

    rx, tx = pair.server_rx[0], pair.client_tx[0]
    assert tx.needs_signal()
    rx.set_polling(True)
    assert not tx.needs_signal()
    rx.set_polling(False)
    assert tx.needs_signal()
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        assert _native.eventfd_clear(fd) == 0
        _native.eventfd_signal(fd)
        _native.eventfd_signal(fd)
        assert _native.eventfd_clear(fd) == 2
    finally:
        os.close(fd)
