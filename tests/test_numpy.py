"""numpy arrays through the packed, into and buffer APIs, with numpy an optional dependency.

memif-ct never imports numpy: it takes any buffer (read-only ones for TX) and any 1-D
C-contiguous buffer of 32-bit unsigned ints as lengths, which a numpy ``uint32`` array is. The
whole module skips when numpy is not installed (CI installs it with the ``test`` extra).
"""

from __future__ import annotations

import array
import os
import time
from collections.abc import Iterator

import pytest

from memif_ct import ArgumentError, ArgumentTypeError

from peers import Loopback

np = pytest.importorskip("numpy")

FAST = dict(reconnect_interval_s=0.01, handshake_timeout_s=2.0, interrupt=False)


@pytest.fixture
def pair() -> Iterator[Loopback]:
    p = Loopback(f"@memif-ct-numpy-{os.getpid()}-{time.monotonic_ns()}", **FAST, log2_ring_size=8)
    try:
        yield p
    finally:
        p.close()


def frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size), dtype=np.uint8)


def receive_into(intf: object, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Receive ``n`` packets into one numpy buffer; (bytes, lengths) of what arrived."""
    out = np.zeros(n * size, np.uint8)
    lengths = np.zeros(n, np.uint32)
    got, used, deadline = 0, 0, time.monotonic() + 5
    while got < n and time.monotonic() < deadline:
        part = np.zeros(n - got, np.uint32)
        k = intf.rx_burst_into(out[used:], part)  # type: ignore[attr-defined]
        lengths[got:got + k] = part[:k]
        used += int(part[:k].sum())
        got += k
    assert got == n
    return out[:used], lengths


@pytest.mark.parametrize("size", [64, 1500, 3000])  # 3000: chains over 2048-byte buffers
def test_packed_tx_from_numpy_into_numpy(pair: Loopback, size: int) -> None:
    data = frames(32, size)
    lengths = np.full(32, size, np.uint32)
    assert pair.client.tx_burst_packed(data, lengths) == 32  # a 2-D array: its bytes, row by row
    out, got_lengths = receive_into(pair.server, 32, size)
    assert got_lengths.tolist() == [size] * 32
    assert np.array_equal(out.reshape(32, size), data)


def test_read_only_data_and_lengths_are_fine_for_tx(pair: Loopback) -> None:
    data = frames(8, 100)
    data.setflags(write=False)
    lengths = np.full(8, 100, np.uint32)
    lengths.setflags(write=False)
    assert pair.client.tx_burst_packed(data, lengths, count=5) == 5
    assert pair.client.tx_burst_packed(np.frombuffer(data[5:].tobytes(), np.uint8), lengths[5:]) == 3
    assert b"".join(pair.server.rx_burst(16)) == data.tobytes()


def test_numpy_lengths_must_be_uint32_and_contiguous(pair: Loopback) -> None:
    data = frames(4, 64)
    for bad in (np.full(4, 64, np.int64), np.full(4, 64, np.int32), np.full(4, 64, np.uint16),
                np.full(8, 64, np.uint32)[::2], np.full((2, 2), 64, np.uint32), [64, 64, 64, 64]):
        with pytest.raises(ArgumentTypeError, match=r"numpy\.uint32"):
            pair.client.tx_burst_packed(data, bad)
        with pytest.raises(ArgumentTypeError, match=r"numpy\.uint32"):
            pair.server.rx_burst_into(bytearray(4096), bad)
    with pytest.raises(ArgumentError, match=r"count=5 is out of range: expected 0\.\.4"):
        pair.client.tx_burst_packed(data, np.full(4, 64, np.uint32), count=5)


def test_rx_into_needs_writable_numpy_arrays(pair: Loopback) -> None:
    ro = np.zeros(4, np.uint32)
    ro.setflags(write=False)
    with pytest.raises(TypeError, match="writable"):
        pair.server.rx_burst_into(np.zeros(4096, np.uint8), ro)
    out = np.zeros(4096, np.uint8)
    out.setflags(write=False)
    with pytest.raises(TypeError, match="writable"):
        pair.server.rx_burst_into(out, np.zeros(4, np.uint32))


def test_rx_into_a_numpy_array_of_another_dtype(pair: Loopback) -> None:
    pair.client.tx_burst([bytes(range(64))] * 4)
    out = np.zeros(64, np.uint64)  # 512 bytes, filled as bytes
    lengths = np.zeros(8, np.uint32)
    deadline = time.monotonic() + 5
    n = 0
    while n == 0 and time.monotonic() < deadline:
        n = pair.server.rx_burst_into(out, lengths)
    assert n == 4 and lengths[:4].tolist() == [64] * 4
    assert out.view(np.uint8)[:256].tobytes() == bytes(range(64)) * 4


def test_rx_into_too_big_names_the_size(pair: Loopback) -> None:
    pair.client.tx_burst([b"x" * 300])
    deadline = time.monotonic() + 5
    while not pair.server.rx_queue(0).pending() and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(ArgumentError, match="the next packet is 300 bytes, larger than the 100-byte buffer"):
        pair.server.rx_burst_into(np.zeros(100, np.uint8), np.zeros(4, np.uint32))


def test_buffer_api_with_numpy(pair: Loopback) -> None:
    bufs = pair.client.alloc_buffers(16, 128)
    assert len(bufs) == 16
    want = frames(16, 128, seed=3)
    for buf, row in zip(bufs, want, strict=True):
        np.frombuffer(buf, np.uint8)[:] = row  # writes straight into shared memory
    lengths = np.arange(64, 80, dtype=np.uint32)
    assert pair.client.tx_buffers(bufs, lengths) == 16
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 16 and time.monotonic() < deadline:
        with pair.server.rx_buffers(16) as burst:
            got += [np.frombuffer(view, np.uint8).copy() for view in burst]
    assert [g.tobytes() for g in got] == [row[:n].tobytes() for row, n in zip(want, range(64, 80), strict=True)]


def test_burst_lengths_as_a_numpy_array(pair: Loopback) -> None:
    sizes = [60, 1500, 9000, 64]  # 9,000 bytes: a chain (2,048-byte buffers)
    assert pair.client.tx_burst([bytes([i]) * n for i, n in enumerate(sizes)]) == 4
    got: list[int] = []
    deadline = time.monotonic() + 5
    while len(got) < 4 and time.monotonic() < deadline:
        with pair.server.rx_buffers(8) as burst:
            lengths = np.asarray(burst.lengths)
            assert lengths.dtype == np.uint32 and lengths.shape == (len(burst),)
            assert lengths.tolist() == [v.nbytes for v in burst]
            got += lengths.tolist()
    assert got == sizes


def test_buffer_api_lengths_of_any_int_dtype(pair: Loopback) -> None:
    bufs = pair.client.alloc_buffers(2, 64)
    assert pair.client.tx_buffers(bufs, np.array([10, 20], np.int64)) == 2  # converted, as a list would be
    bufs = pair.client.alloc_buffers(1, 64)
    with pytest.raises(ArgumentError, match=r"lengths has 2 entries for 1 buffers"):
        pair.client.tx_buffers(bufs, np.array([10, 20], np.uint32))
    pair.client.free_buffers(bufs)


def test_array_lengths_still_work(pair: Loopback) -> None:
    assert pair.client.tx_burst_packed(b"a" * 10 + b"b" * 20, array.array("I", [10, 20])) == 2
    assert pair.server.rx_burst(4) == [b"a" * 10, b"b" * 20]


def test_a_zero_dimensional_array_is_a_packet_of_its_bytes(pair: Loopback) -> None:
    """``len()`` of a 0-d array raises; tx_burst measures it in bytes instead (4 for a uint32)."""
    scalar = np.array(0x01020304, dtype=np.uint32)
    assert pair.client.tx_burst([b"ab", scalar, np.arange(3, dtype=np.uint16)]) == 3
    deadline = time.monotonic() + 5
    got: list[bytes] = []
    while len(got) < 3 and time.monotonic() < deadline:
        got += pair.server.rx_burst(8)
    assert got == [b"ab", scalar.tobytes(), np.arange(3, dtype=np.uint16).tobytes()]
