"""Packing Python packets into one C burst call, and unpacking a received burst.

One ctypes call moves a whole burst (style.md): TX joins the packets into one bytes object and
a u32 lengths array; RX lands in a per-queue pinned buffer and is sliced into ``bytes``. The
``*_packed`` / ``*_into`` variants skip the Python objects altogether for callers with their own
buffers (numpy arrays, bytearrays).
"""

from __future__ import annotations

import array
import itertools
from collections.abc import Sequence

from . import _native

__all__ = ["Packet", "RxScratch", "pack_packets", "tx_packed", "rx_into"]

Packet = bytes | bytearray | memoryview


def _nbytes(packet: object, index: int) -> int:
    if type(packet) is bytes or type(packet) is bytearray:
        return len(packet)
    try:
        return memoryview(packet).nbytes  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"packets[{index}] must be bytes, bytearray or memoryview, not {type(packet).__name__}"
        ) from None


def pack_packets(packets: Sequence[Packet]) -> tuple[bytes, array.array[int]]:
    """Join packets into one buffer plus a lengths array; ValueError names an empty packet."""
    lengths = array.array("I", [_nbytes(p, i) for i, p in enumerate(packets)])
    if 0 in lengths:
        raise ValueError(f"packets[{lengths.index(0)}] is empty: a packet must have 1 or more bytes")
    return b"".join(packets), lengths


def tx_packed(queue: _native.NativeQueue, data: object, lengths: array.array[int], count: int | None = None) -> int:
    """Transmit ``count`` packets packed in ``data`` (bytes or a writable buffer)."""
    n = len(lengths) if count is None else count
    if isinstance(data, bytes):
        return queue.tx_burst(data, lengths, n)
    pinned = _native.address_of(data)
    try:
        return queue.tx_burst(pinned, lengths, n)
    finally:
        pinned.release()


def rx_into(queue: _native.NativeQueue, out: object, lengths: array.array[int], max_packets: int | None = None) -> int:
    """Receive into a caller's writable buffer; lengths land in ``lengths``."""
    n = len(lengths) if max_packets is None else max_packets
    pinned = _native.address_of(out)
    try:
        return queue.rx_burst(pinned, lengths, n)
    finally:
        pinned.release()


class RxScratch:
    """A queue's reusable receive buffer: pinned once, sliced into bytes per burst."""

    def __init__(self, capacity: int, max_packets: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity={capacity} must be > 0")
        if max_packets <= 0:
            raise ValueError(f"max_packets={max_packets} must be > 0")
        self._buffer = bytearray(capacity)
        self._pin = _native.address_of(self._buffer)
        self._view = memoryview(self._buffer)
        self.lengths = array.array("I", bytes(4 * max_packets))
        self.capacity = capacity
        self.max_packets = max_packets

    def receive(self, queue: _native.NativeQueue, max_packets: int) -> list[bytes]:
        """One rx burst on ``queue``, at most ``max_packets`` (clamped to the scratch size)."""
        n = queue.rx_burst(self._pin, self.lengths, min(max_packets, self.max_packets))
        if n == 0:
            return []
        # One copy out of the pinned buffer, then bytes slices: about twice as fast as making
        # each packet from its own memoryview slice.
        offsets = list(itertools.accumulate(self.lengths[:n], initial=0))
        data = bytes(self._view[: offsets[-1]])
        return [data[a:b] for a, b in itertools.pairwise(offsets)]
