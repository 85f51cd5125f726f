"""The ctypes wrappers of the zero-copy C API (ABI 5): SegmentTable and memseg math, Pool, a pool
client's queues, tx_buffers_raw, tx_reserve_raw/tx_commit_raw and rx_peek_raw.

The memory is a zero-copy client's layout (memif-protocol.md section 5, "Zero-copy"): region 0
holds the two rings only (ring_init and CQueue with NO_REGION), region 1 is an arena with one
pool segment per queue. Both ends of each ring are driven from this process.
"""

from __future__ import annotations

import array
import ctypes
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from memif_ct import _native
from memif_ct import constants as c
from memif_ct.errors import ArgumentError, NativeArgumentError

LOG2 = 3
N = 1 << LOG2
BSIZE = 256


def _buffer(size: int) -> ctypes.Array[ctypes.c_uint64]:
    return (ctypes.c_uint64 * ((size + 7) // 8))()


@dataclass
class ZeroCopy:
    rings: ctypes.Array[ctypes.c_uint64]
    arena: ctypes.Array[ctypes.c_uint64]
    regions: _native.RegionTable
    ptx: _native.Pool
    prx: _native.Pool
    ctx: _native.CQueue
    srx: _native.CQueue
    crx: _native.CQueue
    stx: _native.CQueue


@pytest.fixture
def zc() -> Iterator[ZeroCopy]:
    rb = _native.ring_bytes(LOG2)
    rings = _buffer(2 * rb)
    arena_size = 2 * N * BSIZE
    arena = _buffer(arena_size)
    base, abase = ctypes.addressof(rings), ctypes.addressof(arena)
    regions = _native.RegionTable(2)
    regions.set(0, base, 2 * rb)
    regions.set(1, abase, arena_size)
    for i in range(2):
        _native.ring_init(base + i * rb, LOG2, _native.NO_REGION, 0, BSIZE)
    ptx = _native.Pool([(abase, N * BSIZE, 1, 0)], BSIZE)
    prx = _native.Pool([(abase + N * BSIZE, N * BSIZE, 1, N * BSIZE)], BSIZE)

    def queue(i: int, role: int, ring_type: int) -> _native.CQueue:
        extra = {"buffer_region": _native.NO_REGION, "buffer_size": BSIZE} if role == c.ROLE_CLIENT else {}
        return _native.CQueue(base + i * rb, LOG2, role=role, ring_type=ring_type, regions=regions, **extra)

    z = ZeroCopy(
        rings, arena, regions, ptx, prx,
        queue(0, c.ROLE_CLIENT, c.RING_TYPE_S2M), queue(0, c.ROLE_SERVER, c.RING_TYPE_S2M),
        queue(1, c.ROLE_CLIENT, c.RING_TYPE_M2S), queue(1, c.ROLE_SERVER, c.RING_TYPE_M2S),
    )
    yield z


def test_abi_and_error_codes() -> None:
    assert _native.ABI_VERSION == 5 == _native.abi_version()
    assert (_native.ERR_RANGE, _native.ERR_STATE) == (-9, -10)
    assert _native.strerror(_native.ERR_RANGE) != _native.strerror(_native.ERR_STATE)
    assert "unknown" not in _native.strerror(_native.ERR_STATE)


def test_structs_have_the_c_sizes() -> None:
    assert ctypes.sizeof(_native.Segment) == 32
    assert ctypes.sizeof(_native.Buf) == 24
    assert ctypes.sizeof(_native.Pkt) == 16


def test_memseg_both_ways() -> None:
    mem = _buffer(8192)
    base = ctypes.addressof(mem)
    table = _native.SegmentTable([(base, 4096, 1, 0), (base + 4096, 4096, 2, 0xFFFFF000)])
    assert _native.memseg_to_desc(table, base, 1) == (1, 0)
    assert _native.memseg_to_desc(table, base + 4095, 1) == (1, 4095)
    assert _native.memseg_to_desc(table, base + 8191, 1) == (2, 0xFFFFFFFF)
    for bad in ((base + 4095, 2), (base, 0), (base + 8192, 1)):
        with pytest.raises(NativeArgumentError) as err:
            _native.memseg_to_desc(table, *bad)
        assert err.value.code == _native.ERR_RANGE
    assert _native.memseg_to_addr(table, 1, 4095, 1) == base + 4095
    assert _native.memseg_to_addr(table, 1, 4096, 1) is None
    assert _native.memseg_to_addr(table, 2, 0xFFFFF000, 4096) == base + 4096
    assert _native.memseg_to_addr(table, 3, 0, 1) is None
    with pytest.raises(ArgumentError):
        _native.SegmentTable([])


def test_pool_alloc_free_and_accounting() -> None:
    mem = _buffer(64 * 10 + 63)
    base = ctypes.addressof(mem)
    pool = _native.Pool([(base, 64 * 10 + 63, 4, 128)], 64)
    assert (pool.count, pool.buffer_size) == (10, 64)
    assert pool.counts() == (10, 0, 0)
    got = pool.alloc(3)
    assert type(got).__name__ == "array" and got.typecode == "I"
    assert list(got) == [0, 1, 2]
    assert pool.counts() == (7, 3, 0)
    assert pool.buffer(1) == (base + 64, 4, 128 + 64, 64, _native.BUF_APP)
    assert pool.index_of(base + 9 * 64) == 9
    with pytest.raises(NativeArgumentError) as err:
        pool.index_of(base + 1)
    assert err.value.code == _native.ERR_RANGE
    pool.free([1])
    with pytest.raises(NativeArgumentError) as err:
        pool.free([1, 2])  # 1 is a double free; 2 is freed all the same
    assert err.value.code == _native.ERR_STATE
    assert pool.counts() == (9, 1, 0)
    assert list(pool.alloc(20)) == [2, 1, 3, 4, 5, 6, 7, 8, 9]  # LIFO
    assert list(pool.alloc(1)) == []
    with pytest.raises(ArgumentError):
        _native.Pool([(base, 63, 0, 0)], 64)  # not one whole buffer
    with pytest.raises(ArgumentError):
        _native.Pool([(base, 640, 0, 0), (base + 320, 320, 1, 0)], 64)  # overlapping


def test_pool_client_round_trip_both_ways(zc: ZeroCopy) -> None:
    with pytest.raises(NativeArgumentError) as err:
        zc.crx.refill()
    assert err.value.code == _native.ERR_STATE
    with pytest.raises(NativeArgumentError) as err:
        zc.srx.set_pool(zc.ptx)
    assert err.value.code == _native.ERR_DIRECTION
    zc.ctx.set_pool(zc.ptx)
    zc.crx.set_pool(zc.prx)
    assert zc.prx.counts() == (0, 0, N)
    assert zc.crx.refill() == N

    # Client S2M by pool buffer index.
    idx = zc.ptx.alloc(3)
    for i, b in enumerate(idx):
        ctypes.memset(zc.ptx.buffer(b)[0], 0x41 + i, 100)
    idx_arr = (ctypes.c_uint32 * 3)(*idx)
    lens = (ctypes.c_uint32 * 3)(100, 50, 1)
    assert _native.tx_buffers_raw(zc.ctx.arg, idx_arr, lens, 3) == 3
    assert zc.ptx.counts() == (N - 3, 0, 3)
    pkts = (_native.Pkt * 8)()
    scratch = _buffer(4096)
    assert _native.rx_peek_raw(zc.srx.arg, pkts, 8, scratch, ctypes.c_size_t(4096)) == 3
    assert zc.srx.rx_peeked() == 3
    assert [p.length for p in pkts[:3]] == [100, 50, 1]
    assert ctypes.string_at(pkts[0].addr, 100) == b"A" * 100
    assert ctypes.string_at(pkts[1].addr, 50) == b"B" * 50
    assert zc.srx.rx_release() == 3
    assert zc.ctx.reclaim() == 3
    assert zc.ptx.counts() == (N, 0, 0)

    # alloc: reclaim and alloc in one call; Pool.write fills APP buffers, all or nothing.
    got = zc.ctx.alloc(2)
    assert len(got) == 2 and zc.ptx.counts() == (N - 2, 2, 0)
    data, lens2 = b"x" * 7 + b"y" * 9, array.array("I", [7, 9])
    pinned = _native.pin_readonly(data)
    assert zc.ptx.write(got, pinned.address, len(data), array.array("I", [7, 10])) == _native.ERR_ARG
    assert zc.ptx.write(got, pinned.address, len(data), lens2, 8) == _native.ERR_ARG  # 9 > max_length
    assert zc.ptx.write(got, pinned.address, len(data), lens2) == 2
    pinned.release()
    assert ctypes.string_at(zc.ptx.buffer(got[1])[0], 9) == b"y" * 9
    assert _native.tx_buffers_raw(zc.ctx.arg, ctypes.c_void_p(got.buffer_info()[0]),
                                  ctypes.c_void_p(lens2.buffer_info()[0]), 2) == 2
    assert _native.rx_peek_raw(zc.srx.arg, pkts, 8, scratch, ctypes.c_size_t(4096)) == 2
    assert zc.srx.rx_release() == 2
    assert len(zc.ctx.alloc(N + 5)) == N  # the 2 released come back first: all N, no more
    assert zc.ptx.counts() == (0, N, 0)
    assert len(zc.ctx.alloc(1)) == 0
    with pytest.raises(NativeArgumentError) as err:
        zc.crx.alloc(1)
    assert err.value.code == _native.ERR_DIRECTION
    with pytest.raises(ValueError, match=r"n=65536 is out of range"):
        zc.ctx.alloc(65536)
    zc.ptx.free(list(range(N)))
    assert zc.ptx.counts() == (N, 0, 0)

    # Server M2S into reserved posted buffers.
    bufs = (_native.Buf * 4)()
    assert _native.tx_reserve_raw(zc.stx.arg, bufs, 4) == 4
    assert zc.stx.tx_reserved() == 4
    assert all(b.capacity == BSIZE and b.region == 1 for b in bufs)
    for i, b in enumerate(bufs):
        ctypes.memset(b.addr, 0x61 + i, 10 + i)
    commit = (ctypes.c_uint32 * 4)(10, 11, 12, 13)
    assert _native.tx_commit_raw(zc.stx.arg, commit, 2) == 2
    assert zc.stx.tx_reserved() == 2
    assert _native.tx_commit_raw(zc.stx.arg, ctypes.byref(commit, 8), 2) == 2
    assert _native.rx_peek_raw(zc.crx.arg, pkts, 8, None, ctypes.c_size_t(0)) == 4
    assert [ctypes.string_at(p.addr, p.length) for p in pkts[:4]] == [
        bytes([0x61 + i]) * (10 + i) for i in range(4)
    ]
    out, out_lens = _buffer(4096), (ctypes.c_uint32 * 8)()
    assert _native.rx_burst_raw(zc.crx.arg, out, ctypes.c_size_t(4096), out_lens, 8) == _native.ERR_STATE
    assert zc.crx.rx_release() == 4
    assert zc.crx.stats()["packets"] == 4

    # Teardown gives every slot's buffer back.
    assert zc.crx.drop_pool() == N
    assert zc.prx.counts() == (N, 0, 0)
    assert zc.ctx.drop_pool() == 0
    with pytest.raises(NativeArgumentError) as err:
        zc.ctx.drop_pool()
    assert err.value.code == _native.ERR_STATE
