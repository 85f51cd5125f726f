"""The C burst functions driven through queue objects over one memfd mapped twice (client and
server)."""

from __future__ import annotations

import array
import random
import struct

import pytest

from memif_ct import _native, constants as c
from memif_ct.errors import ArgumentError, ArgumentTypeError, MemifError, NativeArgumentError
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


@pytest.fixture(params=_native.COPY_METHODS)
def copy_method(request):
    """Each way TX can copy into shared memory (memif_ct_copy_method), restored after."""
    before = _native.copy_method()
    try:
        _native.copy_method(request.param)
    except ArgumentError:
        pytest.skip(f"copy method {request.param} is not available on this CPU or in this build")
    yield request.param
    _native.copy_method(before)


@pytest.mark.parametrize("direction", ["s2m", "m2s"])
def test_every_size_1_to_9000_bytes_equal(pair, direction, copy_method):
    assert _native.copy_method() == copy_method
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
        assert (s["packets"], s["bytes"], s["chains"]) == (len(packets), total, chains)
        assert (s["bad_desc"], s["bad_ring"], s["drops"]) == (0, 0, 0)


def test_multi_queue_isolation():
    p = make_pair(num_s2m=4, num_m2s=2, log2_ring_size=6)
    try:
        for i in range(4):
            assert p.client_tx[i].tx_burst([bytes([i]) * (100 + i)]) == 1
        for i in range(4):
            assert p.server_rx[i].rx_burst(64) == [bytes([i]) * (100 + i)]
        for i in range(2):
            assert p.server_tx[i].tx_burst([b"m2s" * (i + 1)]) == 1
            assert p.client_rx[i].rx_burst(64) == [b"m2s" * (i + 1)]
    finally:
        p.close()


def test_ring_full_returns_partial_count(pair):
    tx = pair.client_tx[0]
    packets = [b"x" * 60] * 1500
    assert tx.tx_burst(packets) == 1024  # ring of 1024 slots
    assert tx.free() == 0 and tx.stats()["no_space"] == 1
    assert pair.server_rx[0].pending() == 1024


def test_m2s_without_posted_buffers_sends_nothing(pair):
    tx = pair.server_tx[0]
    packets = [b"y" * 100] * 1100
    assert tx.tx_burst(packets) == 1024  # the client posted 1024 buffers
    assert tx.tx_burst(packets) == 0  # none left until the client consumes
    assert len(pair.client_rx[0].rx_burst(2048)) == 1024  # consume + refill
    assert tx.tx_burst(packets) == 1024


def test_packed_and_into_variants(pair):
    data = bytearray(b"abc" + b"defgh")
    lengths = array.array("I", [3, 5])
    assert pair.client_tx[0].tx_packed(data, lengths, 2) == 2
    out = bytearray(64)
    got_lengths = array.array("I", [0] * 8)
    assert pair.server_rx[0].rx_into(out, got_lengths) == 2
    assert list(got_lengths[:2]) == [3, 5] and bytes(out[:8]) == b"abcdefgh"


def test_rx_into_a_buffer_too_small_says_so_and_keeps_the_packet(pair):
    """Issue 8 item 10: it used to drop the packet silently. Now the caller hears the sizes and
    the packet waits in the ring for a bigger buffer; nothing is dropped."""
    pair.client_tx[0].tx_burst([b"A" * 1000, b"B" * 10])
    out, got = bytearray(500), array.array("I", [0] * 4)
    with pytest.raises(ArgumentError, match="1000 bytes, larger than the 500-byte buffer"):
        pair.server_rx[0].rx_into(out, got)
    big = bytearray(2000)
    assert pair.server_rx[0].rx_into(big, got) == 2
    assert list(got[:2]) == [1000, 10] and bytes(big[:1010]) == b"A" * 1000 + b"B" * 10
    assert pair.server_rx[0].stats()["drops"] == 0


def test_rx_burst_still_drops_and_counts_what_its_scratch_cannot_hold():
    """The queue's own scratch (1 MiB) keeps dropping what does not fit, so no peer can wedge it."""
    p = make_pair(log2_ring_size=10, buffer_size=2048)
    try:
        huge = b"H" * (1 << 20) + b"!"  # one byte more than the scratch, chained over 513 slots
        assert p.client_tx[0].tx_burst([huge, b"small"]) == 2
        assert p.server_rx[0].rx_burst(8) == [b"small"]
        assert p.server_rx[0].stats()["drops"] == 1
    finally:
        p.close()


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
    got = pair.server_rx[0].rx_burst(16)
    s = pair.server_rx[0].stats()
    if flags & c.DESC_FLAG_NEXT:
        # the bad head segment swallows the next slot as its chain continuation
        assert got == [] and s["drops"] == 1
    else:
        assert got == [b"good"] and s["drops"] == 1 and s["bad_desc"] == 1


def test_impossible_head_is_counted_and_adopted(pair):
    set_head(pair, 5000)  # more than a 1024-slot ring can hold
    assert pair.server_rx[0].rx_burst(16) == []
    assert pair.server_rx[0].stats()["bad_ring"] == 1
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
    assert pair.server_rx[0].rx_burst(16) == []
    assert pair.server_rx[0].pending() == 1  # not consumed
    poke_desc(pair, 1, 0, 0, 8, off + BSIZE)
    set_head(pair, 2)
    assert pair.server_rx[0].rx_burst(16) == [b"part1...part2..."]


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
    tx = pair.client_tx[0]
    with pytest.raises(ArgumentError, match=r"packets\[1\] is empty"):
        tx.tx_burst([b"a", b"", b"c"])
    with pytest.raises(TypeError):
        tx.tx_burst(["text"])  # type: ignore[list-item]
    lengths = array.array("I", [10])
    with pytest.raises(NativeArgumentError, match="lengths add up to 10 bytes, more than the 5 bytes of data") as err:
        tx.tx_packed(b"short", lengths, 1)  # lengths run past the data
    assert err.value.code == _native.ERR_ARG and err.value.function == "memif_ct_tx_burst"
    with pytest.raises(ArgumentError, match="count"):
        tx.tx_packed(b"x", array.array("I", [1]), 2)
    with pytest.raises(ArgumentTypeError, match="array"):
        tx.tx_packed(b"x", array.array("H", [1]), 1)  # type: ignore[arg-type]
    # a chain longer than the ring can never be sent
    small = make_pair(log2_ring_size=1, buffer_size=64)
    try:
        with pytest.raises(NativeArgumentError, match="more than the ring can ever carry") as err:
            small.client_tx[0].tx_packed(b"z" * 129, array.array("I", [129]), 1)
        assert err.value.code == _native.ERR_TOO_BIG
    finally:
        small.close()


def test_packets_whose_len_is_not_their_size_in_bytes(pair):
    """len() of a memoryview counts items of its first dimension, not bytes. tx_burst's C call
    refuses lengths that do not add up to the joined data, and every byte is sent all the same."""
    tx, rx = pair.client_tx[0], pair.server_rx[0]
    wide = memoryview(array.array("I", range(8)))  # len 8, 32 bytes
    grid = memoryview(bytes(range(24))).cast("B", (4, 6))  # len 4, 24 bytes
    assert len(wide) != wide.nbytes and len(grid) != grid.nbytes
    assert tx.tx_burst([b"head", wide, grid, bytearray(b"tail")]) == 4
    assert rx.rx_burst(8) == [b"head", wide.tobytes(), grid.tobytes(), b"tail"]
    assert tx.stats()["bytes"] == 4 + 32 + 24 + 4
    empty = memoryview(array.array("I"))  # a view of no item: len 0, the C call refuses it first
    with pytest.raises(ArgumentError, match=r"packets\[1\] is empty"):
        tx.tx_burst([b"x", empty])


def test_a_packet_of_no_bytes_whose_len_is_positive(pair):
    """numpy's zeros((3, 0)): len() 3, 0 bytes. The sum C checks is off; the byte sizes taken
    then name the empty packet, and nothing is queued."""
    np = pytest.importorskip("numpy")
    tx = pair.client_tx[0]
    hollow = np.zeros((3, 0), dtype=np.uint8)
    assert len(hollow) == 3 and hollow.nbytes == 0
    with pytest.raises(ArgumentError, match=r"packets\[1\] is empty"):
        tx.tx_burst([b"abcd", hollow, b"efgh"])
    assert tx.stats()["packets"] == 0


def test_wrong_direction_is_refused_with_the_c_error_code(pair):
    with pytest.raises(NativeArgumentError, match="role and ring type") as err:
        pair.server_rx[0].tx_burst([b"x"])
    assert err.value.code == _native.ERR_DIRECTION
    with pytest.raises(NativeArgumentError, match="role and ring type") as err:
        pair.client_tx[0].rx_into(bytearray(8), array.array("I", [0]))
    assert err.value.code == _native.ERR_DIRECTION
    assert isinstance(err.value, MemifError) and isinstance(err.value, ValueError)


def test_queue_rejects_ring_outside_region_and_bad_cookie_by_code():
    with Region.create(1 << 16) as region:
        table = _native.RegionTable(1)
        table.set(0, region.address, region.size)
        with pytest.raises(NativeArgumentError, match="cookie") as err:
            _native.CQueue(region.address, 4, role=c.ROLE_SERVER, ring_type=0, regions=table)
        assert err.value.code == _native.ERR_COOKIE
        with pytest.raises(NativeArgumentError, match="outside") as err:
            _native.CQueue(region.address + region.size - 64, 4, role=c.ROLE_SERVER, ring_type=0, regions=table)
        assert err.value.code == _native.ERR_LAYOUT
        table.clear()


def test_a_detached_queue_moves_nothing_and_keeps_its_counters(pair):
    tx, rx = pair.client_tx[0], pair.server_rx[0]
    assert tx.tx_burst([b"abc"]) == 1
    tx.detach()
    rx.detach()
    assert tx.tx_burst([b"abc"]) == 0
    assert rx.rx_burst(8) == []
    assert rx.pending() == 0 and tx.free() == 0
    assert rx.wait(0.01) is False
    assert tx.stats()["packets"] == 1


def test_interrupt_mask_and_eventfd(pair):
    import os

    rx, tx = pair.server_rx[0], pair.client_tx[0]
    rx.set_polling(False)
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


def test_a_tx_burst_signals_the_peer_from_c_and_rx_leaves_the_signal_to_wait(pair):
    tx, rx = pair.client_tx[0], pair.server_rx[0]
    rx.set_polling(False)  # interrupt mode: the receiver asks for signals
    assert tx.tx_burst([b"a", b"b"]) == 2
    assert tx.tx_burst([b"c"]) == 1
    assert rx.rx_burst(8) == [b"a", b"b", b"c"]
    assert _native.eventfd_clear(rx.eventfd) == 2  # one per burst, and rx_burst did not read it
    rx.set_polling(True)
    assert tx.tx_burst([b"d"]) == 1
    assert _native.eventfd_clear(rx.eventfd) == 0  # a polling receiver is never signalled
    assert rx.rx_burst(8) == [b"d"]
    rx.set_polling(False)
    assert tx.tx_burst([b"e"]) == 1
    assert rx.wait(1.0) is True
    assert _native.eventfd_clear(rx.eventfd) == 0  # the wait consumed it


def test_a_signal_with_no_packet_behind_it_does_not_make_wait_spin(pair):
    import os
    import time

    rx = pair.server_rx[0]
    rx.set_polling(False)
    os.eventfd_write(rx.eventfd, 1)
    t0 = time.process_time()
    assert rx.wait(0.5) is False
    assert time.process_time() - t0 < 0.2


@pytest.mark.parametrize("bad", [0, -1, 65536, 1.5, True])
def test_a_queue_refuses_a_burst_size_out_of_range_itself(pair, bad):
    """Queue objects are public (Interface.rx_queue): a size the C call would wrap to a huge
    u32 must be refused by the queue, not only by Interface."""
    with pytest.raises((ArgumentError, ArgumentTypeError), match="max_packets"):
        pair.server_rx[0].rx_burst(bad)
    pair.client_tx[0].tx_burst([b"still fine"])
    assert pair.server_rx[0].rx_burst(4) == [b"still fine"]
