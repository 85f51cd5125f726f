"""One ring end as this process drives it: the only object for it.

A :class:`Queue` owns the C queue (``_native.CQueue``), the ring's interrupt eventfd, its pinned
scratch buffers and the teardown guard. A burst is one C call, which also signals the peer when
the ring asks for it; nothing is pinned per call. In interrupt mode the eventfd is read (and so
cleared) when a caller waits, never on every RX burst.

Teardown guard: every call that touches shared memory holds the queue's lock and checks
``alive``; :meth:`Queue.detach` clears ``alive`` under the same lock before the link unmaps the
regions, so a burst can never race an unmap. Counters live in process memory and stay readable.
"""

from __future__ import annotations

import array
import bisect
import collections
import contextlib
import operator
import logging
import numbers
import os
import select
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from types import TracebackType
from typing import overload

from . import _native
from .constants import MAX_BUFFER_SIZE
from .errors import ArgumentError, ArgumentTypeError, MemifError, NativeArgumentError

__all__ = ["MAX_BURST", "MemoryMap", "Packet", "Queue", "RxBurst", "TxBuffers"]

log = logging.getLogger(__name__)

Packet = bytes | bytearray | memoryview

MAX_BURST = 65535  # packets in one burst call
RX_SCRATCH_MIN_BYTES = 1 << 20  # a received packet larger than the scratch is dropped and counted
_RX_SCRATCH_PER_PACKET = 2048
_DEFAULT_BURST = 256
_POLL_SLICE_S = 0.05  # longest sleep before re-checking that the queue is still alive
_POLLING_SLEEP_S = 0.001  # polling mode: the peer never signals, so waits re-check this often

_tx_burst = _native.tx_burst_raw
_tx_burst_exact = _native.tx_burst_exact_raw
_tx_alloc = _native.tx_alloc_raw
_tx_buffers = _native.tx_buffers_raw
_pool_write = _native.pool_write_raw
_pool_free = _native.pool_free_raw
_U32_ZERO = _native.U32_ZERO
_pin = _native.pin
_unpin = _native.unpin
_rx_burst = _native.rx_burst_raw
_rx_burst_ex = _native.rx_burst_ex_raw
_check = _native.check
_ERR_TOO_BIG = _native.ERR_TOO_BIG
_ERR_ARG = _native.ERR_ARG
_ERR_STATE = _native.ERR_STATE
_MV_NBYTES = memoryview.nbytes.__get__
_FIRST = operator.itemgetter(0)
_RX_KEEP_TOO_BIG = _native.RX_KEEP_TOO_BIG
_NO_PACKETS = _native.PktArray(1)  # what a detached queue peeks: nothing (count 0)


def _nbytes(packet: object, index: int) -> int:
    try:
        return memoryview(packet).nbytes  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(
            f"packets[{index}] must be bytes, bytearray or memoryview, not {type(packet).__name__}"
        ) from None
    except ValueError as exc:  # a released memoryview (one of an RxBurst released since, say)
        raise ArgumentError(f"packets[{index}] cannot be sent: {exc}") from None


def _byte_lengths(packets: Sequence[object]) -> array.array[int]:
    """Each packet's size in bytes, measured one by one: the slow way, for what ``len()`` does
    not measure in bytes; ArgumentTypeError naming the first that is no buffer."""
    return array.array("I", [_nbytes(p, i) for i, p in enumerate(packets)])


def check_packets(packets: object, name: str = "packets") -> Sequence[Packet]:
    """``packets`` as a burst: a list or tuple (or other sequence) of bytes-like packets.

    ArgumentTypeError (a TypeError) for what used to slip through: None, a dict (whose keys
    would be sent), a single bytes object, or a generator (consumed and sent as nothing)."""
    if type(packets) is list or type(packets) is tuple:
        return packets
    hint = ""
    if isinstance(packets, (bytes, bytearray, memoryview, str)):
        hint = ": wrap a single packet in a list, [packet]"
    elif isinstance(packets, Iterator):
        hint = ": a generator or iterator is not a burst, pass list(...)"
    if hint or packets is None or isinstance(packets, (Mapping, AbstractSet)) or not isinstance(packets, Sequence):
        raise ArgumentTypeError(f"{name} must be a list of bytes-like packets, not {type(packets).__name__}{hint}")
    return packets


def _lengths_of(packets: Sequence[Packet]) -> array.array[int]:
    """u32 ``len()`` of each packet: its size in bytes for bytes, bytearray and byte views.
    The C call checks only their sum (memif_ct_tx_burst_exact: it must be the joined data's).
    Wider items or more dimensions make ``len()`` smaller than the byte size, and the sum falls
    short; only an array with a zero dimension (0 bytes, ``len()`` > 0) makes it larger. So the
    sum is wrong whenever one packet's is, unless such an array's excess cancels another's
    shortfall exactly: that mix of shapes gets its packets split wrongly (known, not checked
    per packet). An empty packet is left for C to refuse too: no per-packet scan here."""
    lengths = array.array("I")
    lengths.fromlist(list(map(len, packets)))  # the cheapest per-packet step found (callgrind)
    return lengths


_U32_FORMATS = frozenset({"I", "@I"})  # native only: what numpy reports for uint32
_LENGTHS_TYPE_ERROR = ("lengths must be array.array('I') or another 1-D C-contiguous buffer of 32-bit "
                       "unsigned ints (numpy.uint32)")


def _u32_view(lengths: object) -> memoryview:
    """``lengths`` as a 1-D memoryview of native 32-bit unsigned ints: ``array('I')``, a numpy
    ``uint32`` array, or any C-contiguous buffer of that format; ArgumentTypeError otherwise."""
    try:
        view = memoryview(lengths)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(f"{_LENGTHS_TYPE_ERROR}, not {type(lengths).__name__}") from None
    if view.format not in _U32_FORMATS or view.itemsize != 4 or view.ndim != 1 or not view.c_contiguous:
        what = f"format {view.format!r}, itemsize {view.itemsize}, ndim {view.ndim}"
        view.release()
        raise ArgumentTypeError(f"{_LENGTHS_TYPE_ERROR}, not a {type(lengths).__name__} of {what}")
    return view


def _u32_copy(lengths: object, count: int | None = None) -> array.array[int]:
    """A private ``array('I')`` copy of the first ``count`` (default all) entries of ``lengths``
    (see _u32_view): the caller's could be resized or rewritten by another thread mid-call."""
    with _u32_view(lengths) as view, view.cast("B") as raw:
        own = array.array("I")
        own.frombytes(raw if count is None else raw[:4 * count])
    return own


class _Tokens(dict[int, str]):
    """``n`` -> the struct format token ``"<n>s"`` (n bytes as one bytes object), made once per
    length; a hostile peer's endless distinct lengths are made each time, never kept."""

    def __missing__(self, n: int) -> str:
        token = f"{n}s"
        if n <= _TOKEN_CACHE_MAX_LENGTH:
            self[n] = token
        return token


_TOKEN_CACHE_MAX_LENGTH = 16384
_tokens = _Tokens()
_SPLITTER_CACHE_SIZE = 64  # burst shapes (lengths in order) remembered per RX queue
_SPLITTER_CACHE_MAX_PACKETS = 1024  # larger bursts build their Struct each time


def _splitter(cache: dict[bytes, struct.Struct], key: bytes, lengths: Iterable[int]) -> struct.Struct:
    """A Struct whose ``unpack_from`` cuts packets of ``lengths`` (``key``: their u32 bytes)
    out of a buffer as bytes, one C call for the whole burst: the per-packet work left is
    CPython making each bytes object. Cached per burst shape: fixed-size traffic hits every time."""
    splitter = cache.get(key)
    if splitter is None:
        splitter = struct.Struct("<" + "".join(map(_tokens.__getitem__, lengths)))
        if len(key) <= 4 * _SPLITTER_CACHE_MAX_PACKETS:
            if len(cache) >= _SPLITTER_CACHE_SIZE:
                del cache[next(iter(cache))]  # the oldest shape
            cache[key] = splitter
    return splitter


class MemoryMap:
    """The mapped regions of one link, to hand out views of shared memory by address.

    Built by ``link.py`` from each region's address and a writable view of all of it; views
    handed out are slices of those, so a mapping stays valid for as long as any of them lives
    (closing the region then only logs that the mapping outlives it), and never faults.
    """

    def __init__(self, regions: Iterable[tuple[int, memoryview]]) -> None:
        items = sorted(regions, key=lambda item: item[0])
        self._bases = [address for address, _view in items]
        self._rw = [view for _address, view in items]
        self._ro = [view.toreadonly() for view in self._rw]

    def view(self, address: int, length: int, *, readonly: bool) -> memoryview:
        """``length`` bytes at ``address``, which must lie inside one mapped region."""
        i = bisect.bisect_right(self._bases, address) - 1
        if i >= 0:
            offset = address - self._bases[i]
            views = self._ro if readonly else self._rw
            if offset + length <= views[i].nbytes:
                return views[i][offset:offset + length]
        raise ArgumentError(f"[{address:#x}, +{length}) is not inside a mapped region of this link")

    def window(self, address: int, length: int) -> tuple[int, int, memoryview]:
        """The read-only region holding ``[address, +length)``: ``(start, end, view of it)``,
        for slicing many packets of one region without a lookup each."""
        i = bisect.bisect_right(self._bases, address) - 1
        if i >= 0 and address + length <= self._bases[i] + self._ro[i].nbytes:
            return self._bases[i], self._bases[i] + self._ro[i].nbytes, self._ro[i]
        raise ArgumentError(f"[{address:#x}, +{length}) is not inside a mapped region of this link")

    def release(self) -> None:
        """Drop the root views (slices handed out keep their own reference)."""
        for view in (*self._ro, *self._rw):
            view.release()
        self._bases, self._rw, self._ro = [], [], []


class RxBurst(Sequence[memoryview]):
    """Packets received without copying, as read-only memoryviews (see ``Queue.rx_buffers``).

    Each view is one whole packet. It points into shared memory where the packet lies; a chain
    whose buffers are not contiguous in memory is assembled into the queue's scratch memory
    first, and its view points there. A view is made when it is first asked for (``burst[i]``,
    iterating), so a burst costs the same whether it holds one packet or 256 until it is read;
    ``lengths`` gives every packet's size in one array, without making views.

    ``release()`` (or leaving the ``with`` block) releases every view made (using one afterwards
    raises ValueError, as does asking the burst for one) and hands the slots back to the ring;
    the next ``rx_buffers``/``rx_burst`` on the queue does so too. Views derived from these
    (slices, ``numpy.frombuffer``) are not released with them: do not keep them past the burst,
    as the peer reuses the memory. A burst is for the thread that received it.
    """

    __slots__ = ("_entries", "_made", "_memory", "_queue", "_scratch", "_scratch_base", "_views")

    def __init__(self, queue: Queue | None, entries: bytes = b"", memory: MemoryMap | None = None,
                 scratch: memoryview | None = None, scratch_base: int = 0) -> None:
        self._queue = queue
        self._entries = entries  # memif_ct_pkt_t entries, copied out of the queue's peek array
        self._memory = memory
        self._scratch = scratch
        self._scratch_base = scratch_base
        self._views: list[memoryview | None] = [None] * (len(entries) // _native.PKT_SIZE)
        self._made = False  # no view yet: release has none to look for

    def __len__(self) -> int:
        return len(self._views)

    @overload
    def __getitem__(self, index: int) -> memoryview: ...
    @overload
    def __getitem__(self, index: slice) -> list[memoryview]: ...

    def __getitem__(self, index: int | slice) -> memoryview | list[memoryview]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._views)))]
        view = self._views[index]  # IndexError, TypeError as a list gives them
        if self._queue is None:
            raise ArgumentError("this burst was released: its packets went back to the ring")
        if view is None:
            view = self._make(index if index >= 0 else index + len(self._views))
        return view

    def __iter__(self) -> Iterator[memoryview]:
        views = self._views
        if not views:  # nothing received (or the link was down): nothing to release either
            return iter(())
        fresh, self._made = not self._made, True  # set before the check: a release now scans
        if self._queue is None:
            raise ArgumentError("this burst was released: its packets went back to the ring")
        if fresh and self._bulk():  # no view made yet (a flag: comparing views with None is dear)
            self._check_live()
        else:
            entries = _native.PKT_LAYOUT.iter_unpack(self._entries)
            for i, entry in enumerate(entries):
                if views[i] is None:
                    self._make(i, entry)
        return iter(views)  # type: ignore[arg-type]  # no None left

    def _check_live(self) -> None:
        """After storing views: if a release (the link going down, on the control thread) ran
        meanwhile, its scan may have missed them; release them here and say so."""
        if self._queue is None:
            _release_views([view for view in self._views if view is not None])
            raise ArgumentError("this burst was released: its packets went back to the ring")

    def _bulk(self) -> bool:
        """Make every view in one pass of slices when all packets lie in one mapped region and
        none in scratch (the usual burst); False, having made none, otherwise."""
        table = memoryview(self._entries)
        words, halves = table.cast("I"), table.cast("H")
        width = _native.PKT_SIZE // 4
        # addr is each entry's first field: every PKT_ADDR_WORDS-th pointer-sized word
        addresses = table.cast(_native.PKT_ADDR_FORMAT)[::_native.PKT_ADDR_WORDS]  # type: ignore[call-overload]
        lengths = words[_native.PKT_LENGTH_WORD::width]
        if any(halves[_native.PKT_SCRATCH_HALF::2 * width]):
            return False
        low = min(addresses)
        high = max(map(operator.add, addresses, lengths))
        assert self._memory is not None
        try:
            base, _end, root = self._memory.window(low, high - low)
        except ArgumentError:  # across regions: the careful way
            return False
        self._views[:] = [root[a - base:a - base + n] for a, n in zip(addresses, lengths, strict=True)]
        return True

    def _make(self, i: int, entry: tuple[int, int, int, int] | None = None) -> memoryview:
        self._made = True  # before the check: a release from now on scans for views
        if self._queue is None:
            raise ArgumentError("this burst was released: its packets went back to the ring")
        if entry is None:
            entry = _native.PKT_LAYOUT.unpack_from(self._entries, i * _native.PKT_SIZE)
        address, length, _slots, in_scratch = entry
        if in_scratch:
            assert self._scratch is not None
            offset = address - self._scratch_base
            view = self._scratch[offset:offset + length]
        else:
            assert self._memory is not None
            view = self._memory.view(address, length, readonly=True)
        self._views[i] = view
        self._check_live()
        return view

    @property
    def lengths(self) -> memoryview:
        """Every packet's size in bytes, in order, without a copy: a read-only memoryview of
        uint32 (format ``"I"``, strided over the packet table; ``len``, indexing, ``sum``,
        ``tolist()`` and ``numpy.asarray`` take it). It stays readable after the release."""
        return memoryview(self._entries).cast("I")[_native.PKT_LENGTH_WORD::_native.PKT_SIZE // 4]

    @property
    def released(self) -> bool:
        return self._queue is None

    def release(self) -> None:
        """Release every view made and return the slots to the ring. Idempotent."""
        queue, self._queue = self._queue, None
        if self._made:
            _release_views([view for view in self._views if view is not None])
        if queue is not None:
            queue.release_burst(self)

    def __enter__(self) -> RxBurst:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<memif_ct RxBurst {len(self._views)} packet(s){' released' if self.released else ''}>"


_GONE = memoryview(b"")  # what a sent or freed buffer's view is, if it was never made
_GONE.release()


class _Handout:
    """The buffers one alloc_buffers call handed out (shared by its TxBuffers and slices of it).

    A client's are pool buffers (``keys``: their indexes), a server's the ones the client
    posted (``starts``: their addresses, in ring order). A view is made the first time it is
    asked for; a sent or freed buffer's view is released (or a released stand-in if it was
    never made), and a handout whose link went down makes no view again. What a burst sent or
    freed whole without a view never needs is never made: the list of views, a client's
    per-buffer limits and default lengths.
    """

    __slots__ = ("_where", "count", "key_address", "keys", "limits", "made", "memory", "queue", "retired", "root",
                 "size", "sizes", "starts", "stride", "views")

    def __init__(self, queue: Queue | None, count: int, size: int, limits: array.array[int] | None,
                 keys: array.array[int] | None, starts: list[int] | None, root: memoryview | None, stride: int,
                 memory: MemoryMap | None) -> None:
        self.queue = queue
        self.count = count
        self.size = size  # the size asked for: a client's every buffer is that long
        self.limits = limits  # each view's length, as handed out (a client's: made when needed)
        self.sizes: array.array[int] | None = None  # what tx_buffers sends by default (write sets it)
        self.keys = keys  # never resized: its buffer stays where key_address says
        self.key_address = keys.buffer_info()[0] if keys else 0
        self.starts = starts
        self.root = root  # client: all of the pool's segment, writable (None: through memory)
        self.stride = stride  # client: the pool's buffer size
        self.memory = memory
        # None until needed; until then all buffers are the application's (retired == 0) or
        # none is (retired == count): see slots().
        self.views: list[memoryview | None] | None = None
        self.retired = 0  # buffers sent or freed: 0 spares the scan for them
        self.made = False  # a view was made: False spares the scan for views to release
        self._where: dict[int, int] | None = None

    def slots(self) -> list[memoryview | None]:
        """Each buffer's view: None if not made yet, ``_GONE`` once sent or freed."""
        views = self.views
        if views is None:
            views = self.views = [_GONE if self.retired else None] * self.count
        return views

    def all_limits(self) -> array.array[int]:
        """Each buffer's length as handed out."""
        limits = self.limits
        if limits is None:
            limits = self.limits = array.array("I", [self.size]) * self.count
        return limits

    def sizes_of(self, lo: int, hi: int) -> array.array[int]:
        """What tx_buffers sends for ``[lo, hi)`` by default: what write wrote, else the limits."""
        sizes = self.sizes
        return sizes[lo:hi] if sizes is not None else self.all_limits()[lo:hi]

    def set_sizes(self, lo: int, hi: int, sizes: array.array[int]) -> None:
        """write wrote ``sizes`` (a private array) into ``[lo, hi)``."""
        if lo == 0 and hi == self.count:
            self.sizes = sizes
            return
        if self.sizes is None:
            self.sizes = array.array("I", self.all_limits())
        self.sizes[lo:hi] = sizes

    def position(self, key: int) -> int | None:
        """Where pool index (client) or address (server) ``key`` is in this handout, if it is."""
        if self._where is None:  # built once, for the calls that are given views, not the object
            order = self.keys if self.keys is not None else self.starts
            assert order is not None
            self._where = {k: i for i, k in enumerate(order)}
        return self._where.get(key)

    def held(self) -> list[int]:
        """Client: the pool indexes of the buffers neither sent nor freed."""
        assert self.keys is not None
        return [key for key, view in zip(self.keys, self.slots(), strict=True) if view is not _GONE]

    def start(self, i: int) -> int:
        """Where buffer ``i`` starts: its address (server) or offset in the segment (client)."""
        if self.keys is not None:
            return self.keys[i] * self.stride
        assert self.starts is not None
        return self.starts[i]

    def make(self, lo: int, hi: int) -> None:
        """Make the views of ``[lo, hi)`` not made yet, under the queue's lock: sending, freeing
        and the link going down (which retire views) hold it too."""
        queue = self.queue
        if queue is None:
            self._make(lo, hi)
            return
        with queue.lock:
            self._make(lo, hi)

    def _make(self, lo: int, hi: int) -> None:
        # Fresh: every view is None, none made or retired (flags: comparing views with None is dear).
        fresh, self.made = not self.made and not self.retired, True
        views = self.slots()
        root, keys = self.root, self.keys
        if fresh and self.queue is not None and root is not None and keys is not None:
            stride, size = self.stride, self.size  # a client's whole burst: one pass of slices
            views[lo:hi] = [root[k * stride:k * stride + size] for k in keys[lo:hi]]
            return
        limits = self.all_limits()
        for i in range(lo, hi):
            if views[i] is None and self.queue is None:  # the link went down: released, as made ones are
                views[i] = _GONE
            elif views[i] is None:
                start, size = self.start(i), limits[i]
                if root is not None:
                    views[i] = root[start:start + size]
                else:
                    assert self.memory is not None and self.queue is not None
                    base = self.queue.pool_base if keys is not None else 0
                    views[i] = self.memory.view(base + start, size, readonly=False)

    def retire(self, positions: Iterable[int]) -> None:
        """Buffers sent or freed: their views are released, and none is made again."""
        views = self.slots()
        for i in positions:
            view, views[i] = views[i], _GONE
            self.retired += 1
            if view is not None:
                _release_views((view,))

    def retire_range(self, lo: int, hi: int) -> None:
        """Buffers ``[lo, hi)`` sent or freed, as retire()."""
        if self.views is None and (lo == hi or (lo == 0 and hi == self.count)):  # no view list needed
            self.retired += hi - lo
            return
        views = self.slots()
        if self.made:  # (comparing a view with None costs more than the scan spares)
            _release_views([view for view in views[lo:hi] if view is not None])
        views[lo:hi] = [_GONE] * (hi - lo)
        self.retired += hi - lo

    def kill(self) -> None:
        """The link went down: release every view made; no more are made."""
        self.queue = None
        if self.made and self.views is not None:
            _release_views([view for view in self.views if view is not None])


class TxBuffers(Sequence[memoryview]):
    """Buffers ``alloc_buffers`` handed out: writable views into shared memory, one per buffer.

    A view is made when it is first asked for (``bufs[i]``, iterating), so handing out and
    sending a whole burst costs the same for 1 buffer or 256 until they are written; sending
    the object itself (``tx_buffers(bufs)``, or a slice ``bufs[n:]``) needs no view at all.
    A slice (step 1) is a TxBuffers of the same buffers; other slices are lists of views. A
    sent or freed buffer's view is released (using it raises ValueError).
    """

    __slots__ = ("_h", "_hi", "_lo")

    def __init__(self, handout: _Handout, lo: int, hi: int) -> None:
        # Made by alloc_buffers and slicing; the queue hands the span to C as it is, so a
        # TxBuffers made by hand must still describe buffers of a real handout.
        if type(handout) is not _Handout or type(lo) is not int or type(hi) is not int \
                or not 0 <= lo <= hi <= handout.count:
            raise ArgumentError("TxBuffers are made by alloc_buffers (and by slicing those), not by hand")
        self._h, self._lo, self._hi = handout, lo, hi

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def span(self) -> tuple[_Handout, int, int]:
        """For the queue: the handout these buffers are of, and which of its buffers they are."""
        return self._h, self._lo, self._hi

    @overload
    def __getitem__(self, index: int) -> memoryview: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[memoryview]: ...

    def __getitem__(self, index: int | slice) -> memoryview | Sequence[memoryview]:
        n = self._hi - self._lo
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return TxBuffers(self._h, self._lo + start, self._lo + max(start, stop))
            return [self[i] for i in range(start, stop, step)]
        i = range(self._lo, self._hi)[index]  # IndexError, TypeError as for a list
        views = self._h.views  # read only: the list is made under the queue's lock (make), never here
        view = views[i] if views is not None else None
        if view is None:
            self._h.make(i, i + 1)
            view = self._h.slots()[i]  # made by now
        return view  # type: ignore[return-value]

    def __iter__(self) -> Iterator[memoryview]:
        self._h.make(self._lo, self._hi)
        return iter(self._h.slots()[self._lo:self._hi])  # type: ignore[arg-type]  # all made

    def write(self, data: object, lengths: object) -> None:
        """Fill these buffers from packets packed back to back in ``data`` (any C-contiguous
        buffer, numpy arrays too), ``lengths[i]`` bytes into buffer ``i`` (``array('I')``/numpy
        ``uint32``, or a sequence of ints; one per buffer): a client's in one C call, a server's
        one copy each, none through the views handed out. ``tx_buffers`` then sends those
        lengths (for this object, a slice of it, or its own views). ValueError, writing
        nothing, for a buffer sent or freed already or a length out of 1..its size; nothing
        happens once the link went down."""
        queue = self._h.queue
        if queue is not None:
            queue.write_buffers(self, data, lengths)

    def __repr__(self) -> str:
        return f"<memif_ct TxBuffers {len(self)} buffer(s)>"


def _lengths_arg(lengths: object, count: int) -> array.array[int]:
    """The buffer API's ``lengths`` as a private ``array('I')`` of ``count`` entries."""
    try:
        if type(lengths) is array.array and lengths.typecode == "I" and lengths.itemsize == 4:
            sizes = lengths[:]  # the usual: one copy, nothing to convert
        else:
            sizes = _u32_copy(lengths)  # numpy uint32 and other buffers: one copy, no per-item work
    except ArgumentTypeError:
        try:
            sizes = array.array("I", lengths)  # type: ignore[call-overload]
        except OverflowError as exc:
            raise ArgumentError(f"lengths are out of range: expected ints from 1 up to the buffer's size ({exc})") \
                from None
        except TypeError as exc:
            raise ArgumentTypeError(f"lengths must be a sequence of ints: {exc}") from None
    if len(sizes) != count:
        raise ArgumentError(f"lengths has {len(sizes)} entries for {count} buffers")
    return sizes


def _past_data(name: str, lengths: array.array[int], data_size: int) -> str | None:
    """What is wrong with packet lengths against the data they are cut from, if anything: an
    empty packet, or lengths adding up to more than the data."""
    if 0 in lengths:
        what = "empty" if name == "packets" else "0"  # a packet, or a length
        return f"{name}[{lengths.index(0)}] is {what}: a packet must have 1 or more bytes"
    if sum(lengths) > data_size:
        return f"{name} add up to {sum(lengths)} bytes, more than the {data_size} bytes of data"
    return None


def _check_write(sizes: array.array[int], limits: array.array[int], data_size: int) -> None:
    """TxBuffers.write's lengths against the buffers and the data: ArgumentError naming the
    first that does not fit."""
    for i, (n, most) in enumerate(zip(sizes, limits, strict=True)):
        if not 1 <= n <= most:
            raise ArgumentError(f"lengths[{i}]={n} is out of range: expected 1..{most}, the buffer's size")
    problem = _past_data("lengths", sizes, data_size)
    if problem is not None:
        raise ArgumentError(problem)


def no_buffers() -> TxBuffers:
    """What alloc_buffers hands out when it cannot: no buffer."""
    return TxBuffers(_Handout(None, 0, 0, array.array("I"), None, None, None, 0, None), 0, 0)


def _release_views(views: Iterable[memoryview]) -> None:
    remaining = iter(views)
    while True:
        try:
            collections.deque(map(memoryview.release, remaining), maxlen=0)  # one C-level pass
            return
        except BufferError:  # exported further (e.g. to numpy): that export keeps it; go on after it
            pass


class Queue:
    """One ring end: TX (we produce) or RX (we consume), with its eventfd.

    Built by ``link.py`` when a link comes up; a data-path call on a detached queue (its link
    went down) moves nothing: TX returns 0, RX returns nothing.
    """

    def __init__(self, cqueue: _native.CQueue, eventfd: int, *, index: int) -> None:
        self._cq = cqueue
        self._q = cqueue.address
        self._qp = cqueue.arg  # the same, as the bare functions' argument
        self._args = _native.Arg()  # their per-call arguments, set under self._lock
        self._eventfd = eventfd
        self.index = index
        self.is_tx = cqueue.is_tx
        self.ring_size = cqueue.ring_size
        self.buffer_size = cqueue.buffer_size  # client: bytes per buffer of its rings; server: 0 (the peer's)
        # The largest size alloc_buffers takes without a closer look (0 for RX: it always looks).
        self._alloc_most = (self.buffer_size or MAX_BUFFER_SIZE) if cqueue.is_tx else 0
        self.interrupt = False  # RX: clear MASK_INT so the peer signals (set_polling)
        self._lock = threading.Lock()
        self._alive = True
        cqueue.set_eventfd(eventfd if self.is_tx else -1)
        self._rx_data: bytearray | None = None
        self._rx_pin: _native.Pinned | None = None
        self._rx_lengths = array.array("I")
        self._rx_splitters: dict[bytes, struct.Struct] = {}
        if not self.is_tx:
            self._grow_rx(_DEFAULT_BURST)
        # Buffer API (alloc_buffers / tx_buffers / rx_buffers); set up by the link (attach_memory).
        self._memory: MemoryMap | None = None
        self._pool: _native.Pool | None = None  # client: where this queue's buffers come from
        self._pool_base = 0  # address of the pool's buffer 0 (one segment per queue)
        self._pool_view: memoryview | None = None  # all of that segment, writable
        self._live: set[_Handout] = set()  # client: handouts with buffers still the application's
        self._reserved: list[tuple[int, int, _Handout]] = []  # server TX: (address, capacity, handout)
        self._burst: RxBurst | None = None
        self._peek_pkts: _native.PktArray | None = None
        self._peek_scratch: bytearray | None = None
        self._peek_scratch_ro: memoryview | None = None
        self._peek_pin: _native.Pinned | None = None

    def __repr__(self) -> str:
        kind = "tx" if self.is_tx else "rx"
        return f"<memif_ct Queue {kind}{self.index} {'alive' if self._alive else 'detached'}>"

    # ---- state ---------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """False once the link this queue belongs to went down."""
        return self._alive

    @property
    def c_address(self) -> int:
        """Address of the C ``memif_ct_queue_t``, for C code that drives this queue itself
        (one thread at a time, and only while ``alive``)."""
        return self._q

    @property
    def eventfd(self) -> int:
        """The ring's interrupt eventfd (shared with the peer); -1 once released."""
        return self._eventfd

    def attach_memory(self, memory: MemoryMap, pool: _native.Pool | None = None) -> None:
        """Called by the link before traffic: where views of shared memory come from, and (a
        client's queues) the pool this queue's buffers come from, one segment per queue."""
        self._memory = memory
        if pool is not None:
            self._cq.set_pool(pool)
            self._pool = pool
            self._pool_base = pool.buffer(0)[0]
            try:  # one view over the whole segment: alloc_buffers slices it, no lookup per buffer
                self._pool_view = memory.view(self._pool_base, pool.count * pool.buffer_size, readonly=False)
            except ArgumentError:
                self._pool_view = None

    def detach(self) -> None:
        """Stop every later call from touching shared memory (the ring is about to be unmapped).

        Waits for a burst in progress on another thread to finish first. Views the buffer API
        handed out are released: the memory behind them belongs to a link that is gone."""
        with self._lock:
            was_alive, self._alive = self._alive, False
            burst, self._burst = self._burst, None
            app = [key for handout in self._live for key in handout.held()]
            for handout in {*self._live, *(h for _a, _c, h in self._reserved)}:
                handout.kill()
            pool_view, self._pool_view = self._pool_view, None
            if pool_view is not None:
                _release_views((pool_view,))
            if self._pool is not None and was_alive:
                try:
                    self._cq.drop_pool()  # ring slots' buffers back to the pool
                    self._pool.free(app)  # and the app's (every valid one, even if one is refused)
                except MemifError as exc:  # our bookkeeping and the pool's disagree: finish the teardown
                    log.warning("%r: buffers not all given back to the pool at teardown: %s", self, exc)
            self._live.clear()
            self._reserved.clear()
        if burst is not None:
            burst.release()

    def release(self) -> None:
        """Close the eventfd (after detach and unmapping). Idempotent."""
        self.detach()
        fd, self._eventfd = self._eventfd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
        if self._rx_pin is not None:
            self._rx_pin.release()
            self._rx_pin = None
        if self._peek_pin is not None:
            self._peek_pin.release()
            self._peek_pin = None

    # ---- TX ------------------------------------------------------------------------------

    def tx_burst(self, packets: Sequence[Packet]) -> int:
        """Queue packets; returns how many were queued (a prefix), 0 once detached.

        ArgumentError (a ValueError) for a packet the ring can never carry, naming its index and
        size: a client refuses the whole burst; a server queues the packets before it and
        reports it when it comes first in a call."""
        packets = check_packets(packets)
        if not packets:
            return 0
        try:
            data = b"".join(packets)
            lengths = _lengths_of(packets)
        except TypeError:  # a packet that is no buffer (named here), or one without len(): a 0-d array
            lengths = _byte_lengths(packets)
            try:
                data = b"".join(packets)
            except TypeError:  # a buffer the join cannot read whole
                i = next((i for i, p in enumerate(packets) if not memoryview(p).c_contiguous), 0)
                raise ArgumentTypeError(f"packets[{i}] is not C-contiguous: send bytes(packets[{i}])") from None
        # The lengths array is ours alone (no other thread can resize it): its address is
        # stable for the call without pinning.
        with self._lock:
            if not self._alive:
                return 0
            args = self._args
            args.size.value = len(data)
            args.p1.value = lengths.buffer_info()[0]
            rc: int = _tx_burst_exact(self._qp, data, args.size, args.p1, len(lengths))
        if rc >= 0:
            return rc
        if rc == _ERR_ARG and 0 not in lengths and sum(lengths) != len(data):
            # a view of wider items: len() counts items; send again with byte sizes
            lengths = _byte_lengths(packets)
            if 0 not in lengths:  # (an empty one is named below)
                with self._lock:
                    if not self._alive:
                        return 0
                    args = self._args
                    args.size.value = len(data)
                    args.p1.value = lengths.buffer_info()[0]
                    rc = _tx_burst(self._qp, data, args.size, args.p1, len(lengths))
                if rc >= 0:
                    return rc
        return self._tx_refused(rc, lengths, "packets", len(data))  # (C queued nothing of it)

    def tx_packed(self, data: object, lengths: object, count: int | None = None) -> int:
        """Queue ``count`` (default: all) packets packed back to back in ``data`` (bytes or any
        buffer, read-only ones too, e.g. a numpy array), their sizes in ``lengths``
        (``array('I')`` or a numpy ``uint32`` array)."""
        if type(lengths) is array.array and lengths.typecode == "I" and lengths.itemsize == 4:
            total = len(lengths)
        else:
            with _u32_view(lengths) as view:
                total = len(view)
        if count is None:
            count = total
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= total:
            raise ArgumentError(f"count={count!r} is out of range: expected 0..{total} (len(lengths))")
        if count == 0:
            return 0
        # The caller's lengths could be resized by another thread mid-call: send a copy.
        own = lengths[:count] if type(lengths) is array.array else _u32_copy(lengths, count)
        if isinstance(data, bytes):
            with self._lock:
                if not self._alive:
                    return 0
                args = self._args
                args.size.value = len(data)
                args.p1.value = own.buffer_info()[0]
                rc = _tx_burst(self._qp, data, args.size, args.p1, count)
        else:
            anchor, address, size = _pin(data, writable=False)
            try:
                with self._lock:
                    if not self._alive:
                        return 0
                    args = self._args
                    args.p2.value = address
                    args.size.value = size
                    args.p1.value = own.buffer_info()[0]
                    rc = _tx_burst(self._qp, args.p2, args.size, args.p1, count)
            finally:
                _unpin(anchor)
                del anchor  # the export goes now, not with a traceback that keeps this frame
        return rc if rc >= 0 else self._tx_refused(rc, own, "lengths", len(data) if isinstance(data, bytes) else size)

    def _tx_refused(self, rc: int, lengths: array.array[int], name: str, data_size: int) -> int:
        """Raise for a burst the C library refused, saying what of it was wrong: a length that
        is 0, lengths past the data, a packet too big for the ring, buffers still handed out."""
        reason = _native.strerror(rc)
        message = _past_data(name, lengths, data_size) if rc == _ERR_ARG else None
        if rc == _ERR_STATE and self._reserved:
            message = ("a server cannot send with tx_burst while it holds buffers alloc_buffers handed out: "
                       "send them (tx_buffers) or give them back (free_buffers) first")
        if message is not None:
            raise NativeArgumentError(message, code=rc, function="memif_ct_tx_burst", reason=reason)
        if rc != _ERR_TOO_BIG:
            return _check(rc, "memif_ct_tx_burst")
        if self.buffer_size:  # client: its own ring, checked before anything was queued
            most = self.ring_size * self.buffer_size
            i = next((i for i, n in enumerate(lengths) if n > most), 0)
            message = (f"{name}[{i}] is {lengths[i]} bytes, more than the ring can ever carry "
                       f"({self.ring_size} buffers of {self.buffer_size} bytes = {most} bytes); "
                       "nothing of this burst was queued")
        else:  # server: the first packet of this call, against what the peer posted
            message = (f"{name}[0] is {lengths[0]} bytes, more than the {self.ring_size} buffers the "
                       "peer posted on its whole ring hold together: the peer's buffers cannot carry it")
        raise NativeArgumentError(message, code=rc, function="memif_ct_tx_burst", reason=reason)

    def free(self) -> int:
        """Slots a producer could fill now (0 once detached)."""
        with self._lock:
            return self._cq.free() if self._alive else 0

    def needs_signal(self) -> bool:
        """TX: True if the peer asked to be signalled after each burst (interrupt mode)."""
        with self._lock:
            return self._alive and self._cq.needs_signal()

    # ---- buffer API: TX without copying ---------------------------------------------------

    @property
    def lock(self) -> threading.Lock:
        """The teardown guard: held by every call that touches the ring or its buffers."""
        return self._lock

    @property
    def pool_base(self) -> int:
        """Client: the address of its pool's buffer 0 (0 without a pool)."""
        return self._pool_base

    def alloc_buffers(self, count: int, size: int) -> TxBuffers:
        """Up to ``count`` writable buffers of ``size`` bytes in shared memory that the peer
        cannot be reading (see TxBuffers); none once detached or when none is free (see
        Interface.alloc_buffers)."""
        if (type(count) is not int or type(size) is not int or not 0 < count <= MAX_BURST
                or not 0 < size <= self._alloc_most):
            self._check_alloc(count, size)  # raises, unless an int subclass (IntEnum) was given
        with self._lock:
            if not self._alive or self._memory is None:
                return no_buffers()
            if self._pool is not None:  # client: any free buffer of our pool (reclaimed first)
                keys = _U32_ZERO * count
                self._args.p1.value = keys.buffer_info()[0]
                got = _tx_alloc(self._qp, self._args.p1, count)
                if got < count:
                    if got <= 0:
                        _check(got, "memif_ct_tx_alloc")
                        return no_buffers()
                    del keys[got:]
                handout = _Handout(self, len(keys), size, None, keys, None, self._pool_view,
                                   self._pool.buffer_size, self._memory)
                self._live.add(handout)
            else:  # server: the next buffers the client posted, in ring order
                posted = self._cq.tx_reserve(count)
                if not posted:
                    return no_buffers()
                limits = array.array("I", [min(size, capacity) for _address, capacity in posted])
                handout = _Handout(self, len(posted), size, limits, None, [address for address, _capacity in posted],
                                   None, 0, self._memory)
                self._reserved.extend((address, capacity, handout) for address, capacity in posted)
            return TxBuffers(handout, 0, handout.count)

    def _check_alloc(self, count: object, size: object) -> None:
        check_burst_size("count", count)
        if isinstance(size, bool) or not isinstance(size, int):
            raise ArgumentTypeError(f"size must be an int, not {type(size).__name__}")
        limit = self.buffer_size or MAX_BUFFER_SIZE
        if not 1 <= size <= limit:
            what = "the queue's buffer size (bsize)" if self.buffer_size else "the largest memif buffer"
            raise ArgumentError(f"size={size} is out of range: expected 1..{limit}, {what}; "
                                "tx_burst chains larger packets")
        if not self.is_tx:
            raise ArgumentError(f"alloc_buffers needs a TX queue; {self!r} receives")

    def tx_buffers(self, views: Sequence[memoryview], lengths: object = None) -> int:
        """Send buffers alloc_buffers handed out, one packet each, without copying; returns how
        many were sent (a prefix). Sent views are released; the rest stay the caller's."""
        if type(views) is TxBuffers:  # the object alloc_buffers returned, or a slice of it
            handout, lo, hi = views.span
            if lo == hi:
                return 0
            sizes = None if lengths is None else self._buffer_lengths(views, lengths)
            with self._lock:
                if not self._alive:
                    return 0
                if handout.queue is not self:
                    raise ArgumentError("bufs are not buffers alloc_buffers handed out on this queue "
                                        "(another queue's, or a link that went down)")
                if handout.retired:
                    self._check_owned(handout, lo, hi)
                if self._pool is not None:
                    return self._tx_pool_handout(handout, lo, hi, sizes)
                return self._tx_reserved([(handout, i) for i in range(lo, hi)],
                                         handout.sizes_of(lo, hi) if sizes is None else sizes)
        check_packets(views, "bufs")
        if not views:
            return 0
        sizes = self._buffer_lengths(views, lengths)
        with self._lock:
            if not self._alive:
                return 0
            located = self._locate(views)
            if lengths is None:  # a buffer's own view sends what write wrote, a slice its length
                sizes = array.array("I", [h.sizes_of(i, i + 1)[0] if view is h.slots()[i] else n
                                          for (h, i), view, n in zip(located, views, sizes, strict=True)])
            sent = (self._tx_pool(located, sizes) if self._pool is not None
                    else self._tx_reserved(located, sizes))
            # slices of the buffers' views, if that is what was given (a numpy array over one
            # holds its own export: not ours to release)
            _release_views([view for view in views[:sent] if type(view) is memoryview])
            return sent

    def _locate(self, views: Sequence[memoryview]) -> list[tuple[_Handout, int]]:
        """Which handout, and which buffer in it, each view is (it must start where its buffer
        does); ArgumentError naming the first that is none of ours."""
        out: list[tuple[_Handout, int]] = []
        reserved = {address: handout for address, _capacity, handout in self._reserved}
        for i, view in enumerate(views):
            try:
                address = _native.buffer_address(view)
            except ArgumentError:
                address = -1
            found = self._find(address, reserved) if address >= 0 else None
            if found is None:
                raise ArgumentError(f"bufs[{i}] is not a buffer alloc_buffers handed out on this queue (or it was "
                                    "sent or freed already, or it does not start where its buffer does)")
            out.append(found)
        if len(set(out)) != len(out):
            first = next(i for i, item in enumerate(out) if item in out[:i])
            raise ArgumentError(f"bufs[{first}] is not a buffer alloc_buffers handed out on this queue "
                                "(it is given twice)")
        return out

    def _find(self, address: int, reserved: dict[int, _Handout]) -> tuple[_Handout, int] | None:
        if self._pool is not None:
            try:
                key = self._pool.index_of(address)
            except MemifError:
                return None
            for handout in self._live:
                i = handout.position(key)
                if i is not None and handout.slots()[i] is not _GONE:
                    return handout, i
            return None
        owner = reserved.get(address)
        i = None if owner is None else owner.position(address)
        return None if owner is None or i is None else (owner, i)

    def free_buffers(self, views: Sequence[memoryview]) -> None:
        """Give back buffers alloc_buffers handed out and that will not be sent; their views are
        released. A client's go back to its pool, in any order; a server's must be the ones it
        handed out last (the posted buffers are taken in ring order), ValueError otherwise."""
        if type(views) is not TxBuffers:
            check_packets(views, "bufs")
        if not views:
            return
        with self._lock:
            if not self._alive:
                return
            if type(views) is TxBuffers:
                handout, lo, hi = views.span
                if handout.queue is not self:
                    raise ArgumentError("bufs are not buffers alloc_buffers handed out on this queue "
                                        "(another queue's, or a link that went down)")
                self._check_owned(handout, lo, hi)
                if self._pool is not None:  # a client's, by index in one C call: no view needed
                    self._args.p1.value = handout.key_address + 4 * lo
                    rc = _pool_free(self._pool.arg, self._args.p1, hi - lo)
                    # Retired whatever C says: it frees every APP buffer even when it refuses one
                    # (not all-or-nothing), and a refused one is not the application's either.
                    handout.retire_range(lo, hi)
                    self._forget((handout,))
                    _check(rc, "memif_ct_pool_free")
                    return
                located = [(handout, i) for i in range(lo, hi)]
            else:
                located = self._locate(views)
            rc = 0
            if self._pool is not None:  # checked once retired, as for a TxBuffers above
                keys = array.array("I", [h.keys[i] for h, i in located])  # type: ignore[index]
                self._args.p1.value = keys.buffer_info()[0]
                rc = _pool_free(self._pool.arg, self._args.p1, len(keys))
            else:
                n = len(located)
                tail = [(address, h) for address, _capacity, h in self._reserved[len(self._reserved) - n:]]
                given = [(h.start(i), h) for h, i in located]
                if n > len(self._reserved) or sorted(given, key=_FIRST) != sorted(tail, key=_FIRST):
                    raise ArgumentError("a server can give back only the buffers alloc_buffers handed out last: "
                                        "the client's posted buffers are taken in ring order")
                _check(self._cq.tx_unreserve(n), "memif_ct_tx_unreserve")
                del self._reserved[len(self._reserved) - n:]
            for h, i in located:
                h.retire((i,))
            self._forget({h for h, _i in located})
            if type(views) is not TxBuffers:
                _release_views([view for view in views if type(view) is memoryview])
            _check(rc, "memif_ct_pool_free")

    def write_buffers(self, bufs: TxBuffers, data: object, lengths: object) -> None:
        """TxBuffers.write: a client's in one C call (memif_ct_pool_write, which checks every
        length), a server's buffer by buffer through their views."""
        handout, lo, hi = bufs.span
        if lengths is None:
            raise ArgumentTypeError("lengths must be given: one per buffer, how many bytes of data each takes")
        sizes = _lengths_arg(lengths, hi - lo)
        if lo == hi:
            return
        # bytes go to C as they are (immutable, the object its own anchor), as tx_packed's do: a
        # ctypes.cast to address them cost 0.5 us; anything else is pinned.
        direct = type(data) is bytes
        anchor, address, size = (data, 0, len(data)) if direct else _pin(data, writable=False)  # type: ignore[arg-type]
        try:
            with self._lock:
                if not self._alive or handout.queue is not self:
                    return
                if handout.retired:
                    self._check_owned(handout, lo, hi)
                if self._pool is not None:
                    args = self._args
                    args.p1.value = handout.key_address + 4 * lo
                    args.p2.value = address
                    args.size.value = size
                    args.p3.value = sizes.buffer_info()[0]
                    rc = _pool_write(self._pool.arg, args.p1, hi - lo, data if direct else args.p2, args.size,
                                     args.p3, handout.size)
                    if rc < 0:
                        _check_write(sizes, handout.all_limits()[lo:hi], size)
                        _check(rc, "memif_ct_pool_write")
                else:  # a server's: through views of its own (the caller may have released theirs)
                    _check_write(sizes, handout.all_limits()[lo:hi], size)
                    assert self._memory is not None
                    targets = [self._memory.view(handout.start(lo + i), n, readonly=False)
                               for i, n in enumerate(sizes)]
                    with memoryview(data) as view:  # type: ignore[arg-type]
                        whole = view.cast("B")
                        pos = 0
                        for target, n in zip(targets, sizes, strict=True):
                            target[:] = whole[pos:pos + n]
                            pos += n
                        _release_views([*targets, whole])
                handout.set_sizes(lo, hi, sizes)
        finally:
            _unpin(anchor)
            del anchor

    def _check_owned(self, handout: _Handout, lo: int, hi: int) -> None:
        """Every buffer of ``handout[lo:hi]`` is still the application's: neither sent nor freed."""
        if not handout.retired:
            return
        views = handout.slots()[lo:hi]
        if _GONE in views:  # released views compare by identity: one C-level pass
            i = next(i for i, view in enumerate(views) if view is _GONE)
            raise ArgumentError(f"bufs[{i}] is not a buffer alloc_buffers handed out on this queue "
                                "(it was sent or freed already)")

    def _buffer_lengths(self, views: Sequence[memoryview], lengths: object) -> array.array[int]:
        if lengths is None:
            try:
                sizes = array.array("I", map(_MV_NBYTES, views))  # memoryviews: one C-level pass
            except (TypeError, ValueError):  # another buffer, or a released view: say which
                sizes = _byte_lengths(views)
        else:
            sizes = _lengths_arg(lengths, len(views))
        problem = _past_data("lengths", sizes, sum(sizes))  # (no data here: only an empty one)
        if problem is not None:
            raise ArgumentError(problem)
        return sizes

    def _check_sizes(self, sizes: array.array[int], limit: int) -> None:
        if max(sizes) > limit:
            i = next(i for i, n in enumerate(sizes) if n > limit)
            raise ArgumentError(f"lengths[{i}]={sizes[i]} is out of range: expected 1..{limit}, the buffer's size")

    def _tx_pool_handout(self, handout: _Handout, lo: int, hi: int, sizes: array.array[int] | None) -> int:
        """Client, under the lock: send ``handout[lo:hi]`` by pool index, no view needed, with
        ``sizes`` (None: the handout's own, which write checked; the C call only reads them)."""
        if sizes is not None:
            self._check_sizes(sizes, self.buffer_size)
            at = sizes.buffer_info()[0]
        else:
            own = handout.sizes if handout.sizes is not None else handout.all_limits()
            at = own.buffer_info()[0] + 4 * lo
        args = self._args
        args.p1.value = handout.key_address + 4 * lo
        args.p2.value = at
        sent: int = _tx_buffers(self._qp, args.p1, args.p2, hi - lo)
        if sent < 0:
            _check(sent, "memif_ct_tx_buffers")
        handout.retire_range(lo, lo + sent)
        if handout.retired == handout.count:
            self._live.discard(handout)
        return sent

    def _tx_pool(self, located: list[tuple[_Handout, int]], sizes: array.array[int]) -> int:
        self._check_sizes(sizes, self.buffer_size)
        keys = array.array("I", [h.keys[i] for h, i in located])  # type: ignore[index]
        sent = _check(self._cq.tx_buffers(keys, sizes), "memif_ct_tx_buffers")
        for h, i in located[:sent]:
            h.retire((i,))
        self._forget({h for h, _i in located[:sent]})
        return sent

    def _forget(self, handouts: Iterable[_Handout]) -> None:
        """Client: stop tracking handouts none of whose buffers is the application's any more."""
        for handout in handouts:
            if handout.retired == handout.count:
                self._live.discard(handout)

    def _tx_reserved(self, located: list[tuple[_Handout, int]], sizes: array.array[int]) -> int:
        if len(located) > len(self._reserved):
            raise ArgumentError(f"{len(located)} buffers given, but only {len(self._reserved)} were handed out "
                                "by alloc_buffers and not sent yet")
        for i, (h, k) in enumerate(located):
            expected, capacity, owner = self._reserved[i]
            if owner is not h or h.start(k) != expected:
                raise ArgumentError(f"bufs[{i}] is not the buffer expected: a server sends the buffers "
                                    "alloc_buffers handed out in the order it handed them out")
            if sizes[i] > capacity:
                raise ArgumentError(f"lengths[{i}]={sizes[i]} is out of range: expected 1..{capacity}, "
                                    "the size of the buffer the peer posted")
        sent = _check(self._cq.tx_commit(sizes), "memif_ct_tx_commit")
        for h, k in located[:sent]:
            h.retire((k,))
        del self._reserved[:sent]
        return sent

    def buffer_counts(self) -> dict[str, int]:
        """Client: where this queue's pool buffers are: ``free``, ``app`` (handed out),
        ``ring`` (in slots) and ``total``; {} for a server's queue (its buffers are the peer's)."""
        if self._pool is None:
            return {}
        free, app, ring = self._pool.counts()
        return {"free": free, "app": app, "ring": ring, "total": self._pool.count}

    # ---- the buffer API over whole bursts in C (what the tools use) -------------------------

    def tx_frames(self, stamper: _native.FrameStamper, first_seq: int, count: int) -> int:
        """Stamp ``count`` test frames from ``first_seq`` straight into TX buffers and send them
        (memif_ct_tx_frames: no copy, no Python object per frame); how many went, 0 once detached.
        NativeArgumentError with code ERR_TOO_BIG when a frame is larger than a buffer."""
        if type(count) is not int or not 0 < count <= MAX_BURST:
            check_burst_size("count", count)  # raises, unless an int subclass (IntEnum) was given
        with self._lock:
            if not self._alive:
                return 0
            self._args.u64.value = first_seq
            rc = _native.tx_frames_raw(self._qp, stamper.arg, self._args.u64, count)
        return _check(rc, "memif_ct_tx_frames")

    def rx_check(self, max_packets: int, checker: _native.FrameChecker | None = None,
                 checker_queue: int = 0) -> tuple[int, int]:
        """Receive up to ``max_packets`` without copying them (rx_peek), check them where they
        lie with ``checker`` if given (as RX queue ``checker_queue``), and give the slots back:
        ``(packets, bytes)``; (0, 0) once detached."""
        with self._peeked(max_packets) as (pkts, n):
            if not n:
                return 0, 0
            if checker is not None:
                checker.check_pkts(checker_queue, pkts, n)
            return n, pkts.total_length(n)

    def reflect(self, tx: Queue, max_packets: int, *, macswap: bool = False,
                deadline_s: float = 0.05) -> tuple[int, int]:
        """Receive up to ``max_packets`` without copying and send each back on ``tx`` with one
        copy into a TX buffer (memif_ct_tx_pkts; MACs swapped if asked; a packet larger than a
        buffer goes as a chain), retrying up to ``deadline_s`` while ``tx`` is full; then the
        slots go back. ``(received, sent)``; (0, 0) once detached."""
        if type(tx) is not Queue:
            raise ArgumentTypeError(f"tx must be a Queue, not {type(tx).__name__}")
        if tx is self:  # its lock is held while the packets are peeked: it would wait for itself
            raise ArgumentError("reflect: tx must be another queue than the one received on")
        _check_deadline(deadline_s)
        with self._peeked(max_packets) as (pkts, n):
            return n, tx.send_pkts(pkts, n, macswap, deadline_s) if n else 0

    @contextlib.contextmanager
    def _peeked(self, max_packets: int) -> Iterator[tuple[_native.PktArray, int]]:
        """rx_peek under the lock for the body, which reads the packets where they lie; the
        slots go back when it ends, however it ends. Nothing is peeked once detached."""
        check_burst_size("max_packets", max_packets)
        self._end_burst()
        with self._lock:
            if not self._alive:
                yield _NO_PACKETS, 0
                return
            pkts, n = self._peek_into(max_packets)
            try:
                yield pkts, n
            finally:
                self._cq.rx_release()

    def _end_burst(self) -> None:
        """Release the rx_buffers burst still open on this queue, if any: it holds the slots
        in front of the next receive."""
        burst = self._burst
        if burst is not None:  # (None, the usual case: no lock round trip per burst)
            burst.release()  # which clears self._burst, under the lock

    def _peek_into(self, max_packets: int) -> tuple[_native.PktArray, int]:
        """rx_peek into this queue's packet array (under the lock); the caller releases."""
        if self._peek_pkts is None or len(self._peek_pkts) < max_packets:
            self._grow_peek(max_packets)
        assert self._peek_pkts is not None and self._peek_scratch is not None
        n = _check(_native.rx_peek_raw(self._qp, self._peek_pkts.arg, max_packets, self._peek_scratch_arg,
                                       self._peek_scratch_size), "memif_ct_rx_peek")
        return self._peek_pkts, n

    def send_pkts(self, pkts: _native.PktArray, count: int, macswap: bool, deadline_s: float) -> int:
        """TX: send packets where another queue peeked them (see reflect); how many went."""
        if type(pkts) is not _native.PktArray or type(count) is not int or not 0 <= count <= len(pkts):
            raise ArgumentError("send_pkts takes a PktArray a queue peeked into and a count within it (see reflect)")
        _check_deadline(deadline_s)
        sent = 0
        end = None
        with self._lock:
            while sent < count and self._alive:
                args = self._args
                args.p1.value = pkts.address + _native.PKT_SIZE * sent
                rc = _native.tx_pkts_raw(self._qp, args.p1, count - sent, 1 if macswap else 0)
                if rc == _ERR_TOO_BIG:  # larger than a buffer: the copy API chains it
                    address, length, _slots, _scratch = pkts.entry(sent)
                    data = _native.read_memory(address, length)
                    if macswap and length >= 12:
                        data = data[6:12] + data[0:6] + data[12:]
                    lengths = array.array("I", [length])
                    args.size.value = length
                    args.p1.value = lengths.buffer_info()[0]
                    rc = _tx_burst(self._qp, data, args.size, args.p1, 1)
                k = _check(rc, "memif_ct_tx_pkts")
                sent += k
                if not k:
                    end = end if end is not None else time.monotonic() + deadline_s
                    if time.monotonic() >= end:
                        break
                    time.sleep(0.0001)
        return sent

    # ---- RX ------------------------------------------------------------------------------

    def _grow_rx(self, max_packets: int) -> None:
        size = max(RX_SCRATCH_MIN_BYTES, max_packets * _RX_SCRATCH_PER_PACKET)
        if self._rx_pin is not None:
            self._rx_pin.release()
        self._rx_data = bytearray(size)
        self._rx_pin = _native.Pinned(self._rx_data)
        self._rx_lengths = array.array("I", bytes(4 * max_packets))
        self._rx_lengths_bytes = memoryview(self._rx_lengths).cast("B")
        self._rx_arg = _native.pointer_arg(self._rx_pin.address)
        self._rx_size_arg = _native.size_arg(size)
        self._rx_lengths_arg = _native.pointer_arg(self._rx_lengths.buffer_info()[0])

    def rx_burst(self, max_packets: int) -> list[bytes]:
        """Up to ``max_packets`` packets as bytes, chains reassembled; [] once detached."""
        # Checked here, not only by Interface: a Queue is public (Interface.rx_queue), and a
        # negative count would reach C as a huge u32 and run past the lengths array.
        check_burst_size("max_packets", max_packets)
        self._end_burst()
        with self._lock:
            if not self._alive:
                return []
            if max_packets > len(self._rx_lengths):
                self._grow_rx(max_packets)
            n = _rx_burst(self._qp, self._rx_arg, self._rx_size_arg, self._rx_lengths_arg, max_packets)
            if n <= 0:
                _check(n, "memif_ct_rx_burst")
                return []
            # bytes straight out of the scratch, cut by one Struct.unpack_from (no Python code
            # per packet): 5-6x faster than slicing one bytes copy per packet.
            key = self._rx_lengths_bytes[:4 * n].tobytes()
            splitter = _splitter(self._rx_splitters, key, self._rx_lengths[:n])
            assert self._rx_data is not None
            return list(splitter.unpack_from(self._rx_data))

    def rx_into(self, out: object, lengths: object) -> int:
        """Receive into the caller's writable buffer (bytearray, mmap, numpy array, ...),
        lengths into ``lengths`` (a writable ``array('I')`` or numpy ``uint32`` array; its
        length is the most packets taken); 0 once detached.

        A next packet larger than the whole buffer is not dropped: it stays in the ring and
        ArgumentError (a ValueError) names its size and the buffer's, so a larger buffer (or
        ``rx_burst``, which drops and counts such packets) can take it."""
        if type(lengths) is array.array and lengths.typecode == "I" and lengths.itemsize == 4:
            max_packets = len(lengths)
        else:
            with _u32_view(lengths) as view:
                max_packets = len(view)
        if max_packets == 0:
            return 0
        self._end_burst()
        out_anchor, out_address, out_size = _pin(out)
        try:
            len_anchor, len_address, len_size = _pin(lengths)
            max_packets = min(max_packets, len_size // 4)  # as pinned: no thread can shrink it now
            try:
                with self._lock:
                    if not self._alive:
                        return 0
                    args = self._args
                    args.p1.value = out_address
                    args.size.value = out_size
                    args.p2.value = len_address
                    rc: int = _rx_burst_ex(self._qp, args.p1, args.size, args.p2, max_packets, _RX_KEEP_TOO_BIG)
            finally:
                _unpin(len_anchor)
                del len_anchor  # the export goes now, not with a traceback that keeps this frame
        finally:
            _unpin(out_anchor)
            del out_anchor
        if rc >= 0:
            return rc
        if rc != _ERR_TOO_BIG:
            return _check(rc, "memif_ct_rx_burst_ex")
        with _u32_view(lengths) as view:
            size = view[0]
        raise NativeArgumentError(
            f"the next packet is {size} bytes, larger than the {out_size}-byte buffer given: it stays "
            f"in the ring; pass a buffer of at least {size} bytes (rx_burst drops such packets)",
            code=rc, function="memif_ct_rx_burst_ex", reason=_native.strerror(rc),
        )

    def rx_buffers(self, max_packets: int) -> RxBurst:
        """Up to ``max_packets`` packets as read-only views into shared memory, without copying
        (see RxBurst); an empty burst once detached. Releases a burst still open on this queue."""
        check_burst_size("max_packets", max_packets)
        self._end_burst()
        with self._lock:
            if not self._alive or self._memory is None:
                return RxBurst(None)
            pkts, n = self._peek_into(max_packets)
            try:  # views are made when asked for (RxBurst): nothing per packet here
                burst = RxBurst(self, pkts.raw(n), self._memory, self._peek_scratch_ro, self._peek_scratch_address)
            except BaseException:  # no burst will release the peeked slots: they would block the ring
                self._cq.rx_release()
                raise
            self._burst = burst
            return burst

    def _grow_peek(self, max_packets: int) -> None:
        if self._peek_pin is not None:
            self._peek_pin.release()
        if self._peek_scratch_ro is not None:
            self._peek_scratch_ro.release()
        self._peek_pkts = _native.PktArray(max_packets)
        self._peek_scratch = bytearray(max(RX_SCRATCH_MIN_BYTES, max_packets * _RX_SCRATCH_PER_PACKET))
        self._peek_pin = _native.Pinned(self._peek_scratch)
        self._peek_scratch_address = self._peek_pin.address
        self._peek_scratch_arg = _native.pointer_arg(self._peek_scratch_address)
        self._peek_scratch_size = _native.size_arg(len(self._peek_scratch))
        self._peek_scratch_ro = memoryview(self._peek_scratch).toreadonly()

    def release_burst(self, burst: RxBurst) -> None:
        """Called by ``RxBurst.release``: hand its slots back to the ring, if it is the burst
        open on this queue (not one released already, nor one made by hand)."""
        with self._lock:
            if self._burst is not burst:
                return
            self._burst = None
            if self._alive:
                self._cq.rx_release()

    def pending(self) -> int:
        """Slots the peer published that we have not consumed (0 once detached)."""
        with self._lock:
            return self._cq.pending() if self._alive else 0

    def set_polling(self, polling: bool) -> None:
        """RX: set MASK_INT (we poll, the peer must not signal) or clear it (interrupt mode)."""
        with self._lock:
            if self._alive and not self.is_tx:
                self._cq.set_polling(polling)
                self.interrupt = not polling

    def refill(self) -> int:
        """Client RX: post every free buffer to the server."""
        with self._lock:
            return self._cq.refill() if self._alive else 0

    def clear_signal(self) -> None:
        """Consume a pending interrupt on the eventfd (never blocks, whatever the peer did)."""
        fd = self._eventfd
        if fd >= 0:
            _native.eventfd_clear_raw(fd)

    def wait(self, timeout_s: float | None) -> bool:
        """Sleep until packets are pending, the queue is detached, or ``timeout_s`` passes.

        True if packets are pending. Interrupt mode: the eventfd is cleared *before* the ring is
        checked (no lost wakeup), then slept on; a signal with no packet behind it costs one
        check, never a spin. Polling mode: the ring is re-checked every millisecond.
        """
        timeout_s = check_timeout("timeout_s", timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        poller: select.poll | None = None
        while True:
            with self._lock:
                if not self._alive:
                    return False
                fd = self._eventfd if self.interrupt else -1
                if fd >= 0:
                    _native.eventfd_clear_raw(fd)
                if self._cq.pending():
                    return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if fd < 0:
                time.sleep(_POLLING_SLEEP_S if left is None else min(left, _POLLING_SLEEP_S))
                continue
            if poller is None:
                poller = select.poll()  # not select(): fd numbers above 1023 are fine
                poller.register(fd, select.POLLIN)
            step = _POLL_SLICE_S if left is None else min(left, _POLL_SLICE_S)
            if any(ev & select.POLLNVAL for _fd, ev in poller.poll(step * 1000)):
                time.sleep(step)  # closed under us (link going down): never spin

    # ---- counters ------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """A snapshot of the queue's counters (``_native.STATS_FIELDS``); readable after detach."""
        return self._cq.stats()


_MOST_DEADLINE_S = 1.0  # reflect holds both queues' locks while it waits: detach waits as long


def _check_deadline(deadline_s: object) -> None:
    if type(deadline_s) is float and 0.0 <= deadline_s <= _MOST_DEADLINE_S:
        return  # the usual: reflect runs this each burst
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, numbers.Real):
        raise ArgumentTypeError(f"deadline_s must be a number of seconds, not {type(deadline_s).__name__}")
    if not 0 <= float(deadline_s) <= _MOST_DEADLINE_S:  # (False for NaN)
        raise ArgumentError(f"deadline_s={deadline_s} is out of range: expected 0..{_MOST_DEADLINE_S:g} seconds")


def check_timeout(name: str, value: object) -> float | None:
    """A wait's timeout: None (no limit) or a number of seconds, as threading's waits take it
    (0 or less: do not wait; past threading.TIMEOUT_MAX, infinity too: None). TypeError for
    anything else, ValueError for NaN, which would make the wait's deadline never come."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # (numpy scalars are Real)
        raise ArgumentTypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if isinstance(value, int) and abs(value) > 1 << 62:  # past any wait (and some past any float)
        return None if value > 0 else 0.0
    seconds = float(value)
    if seconds != seconds:
        raise ArgumentError(f"{name}=nan is not a number of seconds: expected seconds (0 or less: do not wait), "
                            "or None to wait without a limit")
    return None if seconds > threading.TIMEOUT_MAX else seconds  # (what the waits below can take)


def check_burst_size(name: str, value: object) -> int:
    """A burst size argument: an int in 1..MAX_BURST."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= MAX_BURST:
        raise ArgumentError(f"{name}={value} is out of range: expected 1..{MAX_BURST}")
    return value
