"""The only module that touches ctypes: loads libmemif_ct.so and wraps it in typed Python.

The library is loaded by absolute path from this package's directory, so neither the current
directory nor LD_LIBRARY_PATH can substitute another copy by accident. ``MEMIF_CT_LIBRARY``
names a different build on purpose (a sanitizer build, say); its ABI version is checked the same.
"""

from __future__ import annotations

import array
import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import constants as _c
from .errors import NativeLibraryError

__all__ = [
    "ABI_VERSION",
    "LIBRARY_PATH",
    "Layout",
    "NativeQueue",
    "QueueStats",
    "RegionTable",
    "abi_version",
    "address_of",
    "build_info",
    "c_constants",
    "cacheline_size",
    "eventfd_clear",
    "eventfd_signal",
    "library_version",
    "ring_bytes",
    "ring_init",
]

ABI_VERSION: Final = 1  # must equal MEMIF_CT_ABI_VERSION in csrc/memif_ct.h
_LIBRARY_NAME: Final = "libmemif_ct.so"


def _library_path() -> Path:
    override = os.environ.get("MEMIF_CT_LIBRARY")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().with_name(_LIBRARY_NAME)


LIBRARY_PATH: Final = _library_path()


class _Region(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("size", ctypes.c_uint64)]


class _Layout(ctypes.Structure):
    _fields_ = [
        ("num_s2m", ctypes.c_uint32),
        ("num_m2s", ctypes.c_uint32),
        ("log2_ring_size", ctypes.c_uint32),
        ("buffer_size", ctypes.c_uint32),
        ("ring_bytes", ctypes.c_uint64),
        ("buffers_offset", ctypes.c_uint64),
        ("total_size", ctypes.c_uint64),
    ]


class _Stats(ctypes.Structure):
    _fields_ = [
        ("packets", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("chains", ctypes.c_uint64),
        ("bad_desc", ctypes.c_uint64),
        ("bad_ring", ctypes.c_uint64),
        ("drops", ctypes.c_uint64),
        ("no_space", ctypes.c_uint64),
    ]


class _Constant(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_uint64)]


def _load() -> ctypes.CDLL:
    path = LIBRARY_PATH
    if not path.is_file():
        raise NativeLibraryError(
            f"memif-ct's C library is missing: {path} does not exist. The package was not built; "
            "install it with 'pip install .' (it compiles csrc/ and needs a C compiler)"
        )
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise NativeLibraryError(f"memif-ct's C library {path} could not be loaded: {exc}") from exc
    lib.memif_ct_abi_version.restype = ctypes.c_uint32
    lib.memif_ct_abi_version.argtypes = []
    found = lib.memif_ct_abi_version()
    if found != ABI_VERSION:
        raise NativeLibraryError(
            f"memif-ct's C library {path} has ABI version {found}, but this Python package needs "
            f"ABI version {ABI_VERSION}: reinstall memif-ct so both come from the same build"
        )
    p = ctypes.POINTER
    vp = ctypes.c_void_p
    protos: dict[str, tuple[object, list[object]]] = {
        "memif_ct_version": (ctypes.c_char_p, []),
        "memif_ct_cacheline_size": (ctypes.c_uint32, []),
        "memif_ct_build_info": (ctypes.c_char_p, []),
        "memif_ct_strerror": (ctypes.c_char_p, [ctypes.c_int]),
        "memif_ct_constants": (p(_Constant), [p(ctypes.c_size_t)]),
        "memif_ct_queue_sizeof": (ctypes.c_size_t, []),
        "memif_ct_ring_bytes": (ctypes.c_uint64, [ctypes.c_uint32]),
        "memif_ct_layout_init": (
            ctypes.c_int,
            [p(_Layout), ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32],
        ),
        "memif_ct_layout_ring_offset": (ctypes.c_uint64, [p(_Layout), ctypes.c_uint32, ctypes.c_uint32]),
        "memif_ct_layout_buffer_offset": (ctypes.c_uint64, [p(_Layout), ctypes.c_uint32, ctypes.c_uint32]),
        "memif_ct_ring_init": (
            ctypes.c_int,
            [vp, ctypes.c_uint32, ctypes.c_uint16, ctypes.c_uint64, ctypes.c_uint32],
        ),
        "memif_ct_queue_init": (
            ctypes.c_int,
            [
                vp, vp, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                p(_Region), ctypes.c_uint16, ctypes.c_uint16, ctypes.c_uint64, ctypes.c_uint32,
            ],
        ),
        "memif_ct_tx_burst": (ctypes.c_int, [vp, vp, ctypes.c_size_t, vp, ctypes.c_uint32]),
        "memif_ct_rx_burst": (ctypes.c_int, [vp, vp, ctypes.c_size_t, vp, ctypes.c_uint32]),
        "memif_ct_refill": (ctypes.c_int, [vp]),
        "memif_ct_queue_pending": (ctypes.c_uint32, [vp]),
        "memif_ct_queue_free": (ctypes.c_uint32, [vp]),
        "memif_ct_queue_set_polling": (None, [vp, ctypes.c_int]),
        "memif_ct_queue_needs_signal": (ctypes.c_int, [vp]),
        "memif_ct_eventfd_signal": (ctypes.c_int, [ctypes.c_int]),
        "memif_ct_eventfd_clear": (ctypes.c_int64, [ctypes.c_int]),
        "memif_ct_queue_stats": (None, [vp, p(_Stats)]),
        "memif_ct_queue_stats_reset": (None, [vp]),
    }
    for name, (restype, argtypes) in protos.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as exc:
            raise NativeLibraryError(f"memif-ct's C library {path} lacks the function {name}") from exc
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


_lib: Final = _load()


def _check(rc: int, what: str) -> int:
    if rc < 0:
        reason = _lib.memif_ct_strerror(rc).decode()
        raise ValueError(f"{what} failed: {reason} (error {rc})")
    return rc


# ---- identity ----------------------------------------------------------------------------


def abi_version() -> int:
    """ABI version the loaded C library was built with."""
    return int(_lib.memif_ct_abi_version())


def library_version() -> str:
    """Version string of the loaded C library."""
    return str(_lib.memif_ct_version().decode())


def cacheline_size() -> int:
    """Cache-line size (64 or 128) baked into the ring layout of the loaded library."""
    return int(_lib.memif_ct_cacheline_size())


def build_info() -> str:
    """Compiler and flags the library was built with."""
    return str(_lib.memif_ct_build_info().decode())


def c_constants() -> dict[str, int]:
    """Every protocol constant of csrc/memif_ct.h, by name without the MEMIF_CT_ prefix."""
    count = ctypes.c_size_t()
    table = _lib.memif_ct_constants(ctypes.byref(count))
    return {table[i].name.decode(): int(table[i].value) for i in range(count.value)}


_QUEUE_SIZE: Final = int(_lib.memif_ct_queue_sizeof())


# ---- layout ------------------------------------------------------------------------------


def _require_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} is out of range: expected {lo}..{hi}")
    return value


def ring_bytes(log2_ring_size: int) -> int:
    """Bytes of one ring (header and descriptors) of ``1 << log2_ring_size`` slots."""
    _require_int("log2_ring_size", log2_ring_size, _c.MIN_LOG2_RING_SIZE, _c.MAX_LOG2_RING_SIZE)
    return int(_lib.memif_ct_ring_bytes(log2_ring_size))


@dataclass(frozen=True)
class Layout:
    """One region holding every ring, then every buffer: the DPDK/VPP layout (protocol doc s5)."""

    num_s2m: int
    num_m2s: int
    log2_ring_size: int
    buffer_size: int
    ring_bytes: int
    buffers_offset: int
    total_size: int

    @classmethod
    def compute(cls, num_s2m: int, num_m2s: int, log2_ring_size: int, buffer_size: int) -> Layout:
        """Lay out a region; each argument is range-checked with a ValueError naming it."""
        _require_int("num_s2m", num_s2m, 1, _c.MAX_RINGS_PER_DIRECTION)
        _require_int("num_m2s", num_m2s, 1, _c.MAX_RINGS_PER_DIRECTION)
        _require_int("log2_ring_size", log2_ring_size, _c.MIN_LOG2_RING_SIZE, _c.MAX_LOG2_RING_SIZE)
        _require_int("buffer_size", buffer_size, _c.MIN_BUFFER_SIZE, _c.MAX_BUFFER_SIZE)
        raw = _Layout()
        _check(
            _lib.memif_ct_layout_init(ctypes.byref(raw), num_s2m, num_m2s, log2_ring_size, buffer_size),
            "memif_ct_layout_init",
        )
        return cls(
            num_s2m, num_m2s, log2_ring_size, buffer_size,
            int(raw.ring_bytes), int(raw.buffers_offset), int(raw.total_size),
        )

    def _raw(self) -> _Layout:
        return _Layout(
            self.num_s2m, self.num_m2s, self.log2_ring_size, self.buffer_size,
            self.ring_bytes, self.buffers_offset, self.total_size,
        )

    def _index(self, ring_type: int, index: int) -> None:
        _require_int("ring_type", ring_type, _c.RING_TYPE_S2M, _c.RING_TYPE_M2S)
        count = self.num_s2m if ring_type == _c.RING_TYPE_S2M else self.num_m2s
        _require_int("index", index, 0, count - 1)

    def ring_offset(self, ring_type: int, index: int) -> int:
        """Offset of ring ``index`` of ``ring_type`` from the region start."""
        self._index(ring_type, index)
        return int(_lib.memif_ct_layout_ring_offset(ctypes.byref(self._raw()), ring_type, index))

    def buffer_offset(self, ring_type: int, index: int) -> int:
        """Offset of the first buffer owned by ring ``index`` of ``ring_type``."""
        self._index(ring_type, index)
        return int(_lib.memif_ct_layout_buffer_offset(ctypes.byref(self._raw()), ring_type, index))


# ---- memory ------------------------------------------------------------------------------


class BufferAddress:
    """The address of a writable Python buffer (mmap, bytearray), kept valid while held.

    Holding it keeps a buffer export alive, so an mmap cannot be closed under the C code's
    feet; call ``release()`` before closing the mapping.
    """

    __slots__ = ("_anchor", "address", "size")

    def __init__(self, buffer: object) -> None:
        view = memoryview(buffer)  # type: ignore[arg-type]
        if view.readonly:
            raise TypeError("buffer must be writable")
        self.size = view.nbytes
        if self.size == 0:
            raise ValueError("buffer must not be empty")
        self._anchor: object | None = (ctypes.c_char * self.size).from_buffer(view)
        self.address = ctypes.addressof(self._anchor)

    def release(self) -> None:
        self._anchor = None
        self.address = 0


def address_of(buffer: object) -> BufferAddress:
    """Pin a writable buffer and return its address (see BufferAddress)."""
    return BufferAddress(buffer)


def ring_init(address: int, log2_ring_size: int, buffer_region: int, buffer_offset: int, buffer_size: int) -> None:
    """Client: write a fresh ring header and descriptors at ``address`` (see memif_ct_ring_init)."""
    _require_int("log2_ring_size", log2_ring_size, _c.MIN_LOG2_RING_SIZE, _c.MAX_LOG2_RING_SIZE)
    _require_int("buffer_region", buffer_region, 0, _c.MAX_REGIONS - 1)
    _require_int("buffer_size", buffer_size, _c.MIN_BUFFER_SIZE, _c.MAX_BUFFER_SIZE)
    _require_int("buffer_offset", buffer_offset, 0, 0xFFFFFFFF)
    if not address:
        raise ValueError("ring address must not be NULL")
    _check(
        _lib.memif_ct_ring_init(address, log2_ring_size, buffer_region, buffer_offset, buffer_size),
        "memif_ct_ring_init",
    )


class RegionTable:
    """The C table of mapped regions that every queue of one connection validates against."""

    def __init__(self, count: int) -> None:
        _require_int("count", count, 1, _c.MAX_REGIONS)
        self._array = (_Region * count)()
        self.count = count

    def set(self, index: int, address: int, size: int) -> None:
        """Record that region ``index`` is mapped at ``address`` for ``size`` bytes."""
        _require_int("index", index, 0, self.count - 1)
        if size < 0:
            raise ValueError(f"region size must be >= 0, got {size}")
        self._array[index].base = address or None
        self._array[index].size = size

    def clear(self) -> None:
        """Forget every mapping: any descriptor naming a region is now invalid."""
        for i in range(self.count):
            self._array[i].base = None
            self._array[i].size = 0


# ---- queues ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueStats:
    """Counters of one queue (see memif_ct_stats_t)."""

    packets: int = 0
    bytes: int = 0
    chains: int = 0
    bad_desc: int = 0
    bad_ring: int = 0
    drops: int = 0
    no_space: int = 0


class NativeQueue:
    """One end of one ring driven by this process: burst TX/RX through the C library."""

    def __init__(
        self,
        ring_address: int,
        log2_ring_size: int,
        *,
        role: int,
        ring_type: int,
        regions: RegionTable,
        buffer_region: int = 0,
        buffer_offset: int = 0,
        buffer_size: int = 0,
    ) -> None:
        _require_int("log2_ring_size", log2_ring_size, _c.MIN_LOG2_RING_SIZE, _c.MAX_LOG2_RING_SIZE)
        _require_int("role", role, _c.ROLE_CLIENT, _c.ROLE_SERVER)
        _require_int("ring_type", ring_type, _c.RING_TYPE_S2M, _c.RING_TYPE_M2S)
        if role == _c.ROLE_CLIENT:
            _require_int("buffer_size", buffer_size, _c.MIN_BUFFER_SIZE, _c.MAX_BUFFER_SIZE)
            _require_int("buffer_region", buffer_region, 0, regions.count - 1)
        self._mem = ctypes.create_string_buffer(_QUEUE_SIZE)
        self._q = ctypes.addressof(self._mem)
        self._regions = regions  # the C queue points into it: keep it alive
        rc = _lib.memif_ct_queue_init(
            self._q, ring_address, log2_ring_size, role, ring_type,
            regions._array, regions.count, buffer_region, buffer_offset, buffer_size,
        )
        if rc < 0:
            reason = _lib.memif_ct_strerror(rc).decode()
            raise ValueError(f"ring at offset-resolved address {ring_address:#x} rejected: {reason}")
        self.role = role
        self.ring_type = ring_type
        self.detached = False
        self.ring_size = 1 << log2_ring_size
        self.is_tx = (role == _c.ROLE_CLIENT) == (ring_type == _c.RING_TYPE_S2M)

    def detach(self) -> None:
        """Forget the ring (it is about to be unmapped): every later call that would touch
        shared memory raises instead of reading freed pages. Counters stay readable."""
        self.detached = True

    def _ring(self) -> int:
        if self.detached:
            raise ValueError("queue is detached: its ring was unmapped when the link went down")
        return self._q

    def tx_burst(self, data: bytes | BufferAddress, lengths: array.array[int], count: int) -> int:
        """Queue ``count`` packets packed back to back in ``data``, lengths in ``lengths`` ('I').

        The C side checks that the lengths stay inside ``data``; this side checks ``count``
        against the lengths array. Returns how many packets were queued (a prefix).
        """
        if lengths.typecode != "I" or lengths.itemsize != 4:
            raise TypeError("lengths must be array.array('I') of 32-bit unsigned ints")
        if not 0 <= count <= len(lengths):
            raise ValueError(f"count={count} is out of range: lengths holds {len(lengths)}")
        if isinstance(data, bytes):
            ptr: object = data
            size = len(data)
        else:
            ptr, size = data.address, data.size
        # Pinned for the call: another thread resizing the array would free what C reads.
        pinned = (ctypes.c_uint32 * len(lengths)).from_buffer(lengths) if len(lengths) else None
        return _check(_lib.memif_ct_tx_burst(self._ring(), ptr, size, pinned, count), "tx_burst")

    def rx_burst(self, out: BufferAddress, lengths: array.array[int], max_packets: int) -> int:
        """Receive up to ``max_packets`` packets back to back into ``out``; see memif_ct_rx_burst."""
        if lengths.typecode != "I" or lengths.itemsize != 4:
            raise TypeError("lengths must be array.array('I') of 32-bit unsigned ints")
        if not 0 <= max_packets <= len(lengths):
            raise ValueError(f"max_packets={max_packets} is out of range: lengths holds {len(lengths)}")
        if not out.address:
            raise ValueError("output buffer was released")
        # Pinned for the call: another thread resizing the array would free what C writes.
        pinned = (ctypes.c_uint32 * len(lengths)).from_buffer(lengths) if len(lengths) else None
        return _check(_lib.memif_ct_rx_burst(self._ring(), out.address, out.size, pinned, max_packets), "rx_burst")

    def refill(self) -> int:
        """Client M2S: post every free buffer to the server."""
        return _check(_lib.memif_ct_refill(self._ring()), "refill")

    def pending(self) -> int:
        """Slots published and not yet consumed (see memif_ct_queue_pending)."""
        return int(_lib.memif_ct_queue_pending(self._ring()))

    def free(self) -> int:
        """Slots a producer could fill now."""
        return int(_lib.memif_ct_queue_free(self._ring()))

    def set_polling(self, polling: bool) -> None:
        """Receiver: set MASK_INT (poll) or clear it (ask the peer for interrupts)."""
        _lib.memif_ct_queue_set_polling(self._ring(), 1 if polling else 0)

    def needs_signal(self) -> bool:
        """Transmitter: True if the peer wants an eventfd signal after a burst."""
        return bool(_lib.memif_ct_queue_needs_signal(self._ring()))

    def stats(self) -> QueueStats:
        """A snapshot of the queue's counters."""
        raw = _Stats()
        _lib.memif_ct_queue_stats(self._q, ctypes.byref(raw))
        return QueueStats(
            int(raw.packets), int(raw.bytes), int(raw.chains), int(raw.bad_desc),
            int(raw.bad_ring), int(raw.drops), int(raw.no_space),
        )


def eventfd_signal(fd: int) -> None:
    """Write 1 to an eventfd (one system call); OSError on failure."""
    rc = int(_lib.memif_ct_eventfd_signal(fd))
    if rc < 0:
        raise OSError(-rc, f"eventfd write failed: {os.strerror(-rc)}")


def eventfd_clear(fd: int) -> int:
    """Read an eventfd's counter (clearing it); 0 if nothing was pending."""
    rc = int(_lib.memif_ct_eventfd_clear(fd))
    if rc < 0:
        raise OSError(-rc, f"eventfd read failed: {os.strerror(-rc)}")
    return rc
