"""The only module that touches ctypes: the thin FFI layer over libmemif_ct.so.

The library is loaded by absolute path from this package's directory, so neither the current
directory nor LD_LIBRARY_PATH can substitute another copy by accident. ``MEMIF_CT_LIBRARY``
names a different build on purpose (a sanitizer build, say); its ABI version is checked the same.

What this layer gives the layers above (``queue.py``, ``region.py``, ``wire.py``):

* every C prototype, declared once at import;
* ``check(rc, function)``, which turns a negative ``memif_ct_error_t`` into a
  ``NativeArgumentError`` carrying the code (compare ``.code`` with ``ERR_*``, never the text);
* ``CQueue``, one C ``memif_ct_queue_t``, and ``STATS_FIELDS``, read off the C stats struct;
* the burst entry points ``tx_burst_raw``/``rx_burst_raw``/``rx_burst_ex_raw``: the C functions
  bound a second time without argtypes, so that a burst is one call with nothing in between (their
  callers own every check and pass ctypes objects, never an int, for a pointer: see "the burst
  path" below, ``Arg`` and each object's ``arg``);
* zero-copy (ABI 5): ``Segment``/``SegmentTable`` and ``memseg_to_desc``/``memseg_to_addr``, a
  ``Pool`` of fixed-size buffers owning its C memory, ``CQueue.set_pool``/``reclaim``/``drop_pool``,
  and the bare ``tx_buffers_raw``, ``tx_reserve_raw``/``tx_commit_raw`` and ``rx_peek_raw`` with
  their ``Buf``/``Pkt`` structs;
* ``fd_fs_magic``: which file system a peer's fd lives on, asked of the fd itself (fstatfs);
* ``Pinned``/``pin_readonly``: the address of a Python buffer, held still while C uses it.
"""

from __future__ import annotations

import array
import ctypes
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import constants as _c
from .errors import ArgumentError, ArgumentTypeError, NativeArgumentError, NativeLibraryError, SocketError

__all__ = [
    "PKT_SIZE",
    "PktArray",
    "read_memory",
    "buffer_address",
    "ABI_VERSION",
    "BUF_APP",
    "BUF_FREE",
    "BUF_RING",
    "ERR_ALIGN",
    "ERR_ARG",
    "ERR_COOKIE",
    "ERR_DIRECTION",
    "ERR_LAYOUT",
    "ERR_NULL",
    "ERR_OVERFLOW",
    "ERR_RANGE",
    "ERR_STATE",
    "ERR_TOO_BIG",
    "HUGETLBFS_MAGIC",
    "LIBRARY_PATH",
    "NO_REGION",
    "RX_KEEP_TOO_BIG",
    "STATS_FIELDS",
    "Buf",
    "CQueue",
    "Layout",
    "Pinned",
    "Pkt",
    "Pool",
    "RegionTable",
    "Segment",
    "SegmentTable",
    "abi_version",
    "build_info",
    "c_constants",
    "COPY_METHODS",
    "copy_method",
    "cacheline_size",
    "check",
    "eventfd_clear",
    "eventfd_clear_raw",
    "eventfd_guard",
    "eventfd_signal",
    "eventfd_signal_raw",
    "fd_fs_magic",
    "library_version",
    "memseg_to_addr",
    "memseg_to_desc",
    "pin_readonly",
    "ring_bytes",
    "ring_init",
    "rx_burst_ex_raw",
    "rx_burst_raw",
    "rx_peek_raw",
    "strerror",
    "tx_buffers_raw",
    "tx_burst_raw",
    "tx_commit_raw",
    "tx_reserve_raw",
]

ABI_VERSION: Final = 5  # must equal MEMIF_CT_ABI_VERSION in csrc/memif_ct.h
_LIBRARY_NAME: Final = "libmemif_ct.so"

# memif_ct_error_t (csrc/memif_ct.h); a test proves these equal the header's.
ERR_ARG: Final = -1  # an argument is out of range
ERR_NULL: Final = -2  # a required pointer is NULL
ERR_LAYOUT: Final = -3  # a ring or buffer lies outside its region
ERR_COOKIE: Final = -4  # ring header does not carry the memif cookie
ERR_DIRECTION: Final = -5  # the call does not fit the queue's role and ring type
ERR_OVERFLOW: Final = -6  # a size computation overflowed
ERR_ALIGN: Final = -7  # a ring is not aligned for its 16-bit atomic indexes
ERR_TOO_BIG: Final = -8  # a packet is larger than the ring (TX) or the buffer (RX) holds
ERR_RANGE: Final = -9  # an address or buffer lies outside every segment, or the pool
ERR_STATE: Final = -10  # the call does not fit the object's state (double free, no pool yet, ...)

# Pool buffer states (MEMIF_CT_BUF_*) and the buffer_region of a client whose buffers come from a pool.
BUF_FREE: Final = 0  # in the pool
BUF_APP: Final = 1  # handed to the application by Pool.alloc
BUF_RING: Final = 2  # held by a queue's slot
NO_REGION: Final = 0xFFFF  # MEMIF_CT_NO_REGION

RX_KEEP_TOO_BIG: Final = 1  # memif_ct_rx_burst_ex: leave a packet too big for the buffer in the ring
HUGETLBFS_MAGIC: Final = 0x958458F6  # linux/magic.h: what fd_fs_magic() says of a hugetlbfs file

_U64_MAX: Final = (1 << 64) - 1
_FD_MAX: Final = (1 << 31) - 1


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
    """memif_ct_stats_t, field for field: the one Python list of statistics names."""

    _fields_ = [
        ("packets", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("chains", ctypes.c_uint64),
        ("bad_desc", ctypes.c_uint64),
        ("bad_ring", ctypes.c_uint64),
        ("drops", ctypes.c_uint64),
        ("no_space", ctypes.c_uint64),
        ("bad_chain", ctypes.c_uint64),
        ("skipped", ctypes.c_uint64),
    ]


STATS_FIELDS: Final[tuple[str, ...]] = tuple(field[0] for field in _Stats._fields_)


class Segment(ctypes.Structure):
    """memif_ct_segment_t: memory a client exposes, addressed as ``region`` at ``offset + (addr - base)``."""

    _fields_ = [
        ("base", ctypes.c_void_p),
        ("size", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("region", ctypes.c_uint16),
        ("pad", ctypes.c_uint16 * 3),
    ]


class Buf(ctypes.Structure):
    """memif_ct_buf_t: where one buffer is (Pool.buffer, tx_reserve_raw's output)."""

    _fields_ = [
        ("addr", ctypes.c_void_p),
        ("offset", ctypes.c_uint64),
        ("capacity", ctypes.c_uint32),
        ("region", ctypes.c_uint16),
        ("state", ctypes.c_uint16),
    ]


class Pkt(ctypes.Structure):
    """memif_ct_pkt_t: one packet rx_peek_raw saw, in shared memory or in the caller's scratch."""

    _fields_ = [
        ("addr", ctypes.c_void_p),
        ("length", ctypes.c_uint32),
        ("slots", ctypes.c_uint16),
        ("scratch", ctypes.c_uint16),
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
        "memif_ct_copy_method": (ctypes.c_int, [ctypes.c_int]),
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
        "memif_ct_queue_set_eventfd": (ctypes.c_int, [vp, ctypes.c_int]),
        "memif_ct_tx_burst": (ctypes.c_int, [vp, vp, ctypes.c_size_t, vp, ctypes.c_uint32]),
        "memif_ct_tx_burst_exact": (ctypes.c_int, [vp, vp, ctypes.c_size_t, vp, ctypes.c_uint32]),
        "memif_ct_rx_burst": (ctypes.c_int, [vp, vp, ctypes.c_size_t, vp, ctypes.c_uint32]),
        "memif_ct_rx_burst_ex": (ctypes.c_int, [vp, vp, ctypes.c_size_t, vp, ctypes.c_uint32, ctypes.c_uint32]),
        "memif_ct_refill": (ctypes.c_int, [vp]),
        "memif_ct_queue_pending": (ctypes.c_uint32, [vp]),
        "memif_ct_queue_free": (ctypes.c_uint32, [vp]),
        "memif_ct_queue_set_polling": (None, [vp, ctypes.c_int]),
        "memif_ct_queue_needs_signal": (ctypes.c_int, [vp]),
        "memif_ct_eventfd_signal": (ctypes.c_int, [ctypes.c_int]),
        "memif_ct_eventfd_clear": (ctypes.c_int64, [ctypes.c_int]),
        "memif_ct_eventfd_guard": (ctypes.c_int, []),
        "memif_ct_fd_fs_magic": (ctypes.c_int64, [ctypes.c_int]),
        "memif_ct_memseg_to_desc": (
            ctypes.c_int,
            [p(Segment), ctypes.c_uint32, vp, ctypes.c_uint64, p(ctypes.c_uint16), p(ctypes.c_uint32)],
        ),
        "memif_ct_memseg_to_addr": (
            vp, [p(Segment), ctypes.c_uint32, ctypes.c_uint16, ctypes.c_uint64, ctypes.c_uint64],
        ),
        "memif_ct_pool_bytes": (ctypes.c_uint64, [p(Segment), ctypes.c_uint32, ctypes.c_uint32]),
        "memif_ct_pool_init": (
            ctypes.c_int, [vp, ctypes.c_size_t, p(Segment), ctypes.c_uint32, ctypes.c_uint32],
        ),
        "memif_ct_pool_count": (ctypes.c_uint32, [vp]),
        "memif_ct_pool_buffer_size": (ctypes.c_uint32, [vp]),
        "memif_ct_pool_counts": (None, [vp, p(ctypes.c_uint32), p(ctypes.c_uint32), p(ctypes.c_uint32)]),
        "memif_ct_pool_alloc": (ctypes.c_uint32, [vp, vp, ctypes.c_uint32]),
        "memif_ct_pool_free": (ctypes.c_int, [vp, vp, ctypes.c_uint32]),
        "memif_ct_pool_write": (ctypes.c_int, [vp, vp, ctypes.c_uint32, vp, ctypes.c_size_t, vp, ctypes.c_uint32]),
        "memif_ct_pool_buffer": (ctypes.c_int, [vp, ctypes.c_uint32, p(Buf)]),
        "memif_ct_pool_index_of": (ctypes.c_int, [vp, vp, p(ctypes.c_uint32)]),
        "memif_ct_queue_set_pool": (ctypes.c_int, [vp, vp, vp]),
        "memif_ct_queue_reclaim": (ctypes.c_int, [vp]),
        "memif_ct_tx_alloc": (ctypes.c_int, [vp, vp, ctypes.c_uint32]),
        "memif_ct_queue_drop_pool": (ctypes.c_int, [vp]),
        "memif_ct_tx_buffers": (ctypes.c_int, [vp, vp, vp, ctypes.c_uint32]),
        "memif_ct_tx_reserve": (ctypes.c_int, [vp, vp, ctypes.c_uint32]),
        "memif_ct_tx_commit": (ctypes.c_int, [vp, vp, ctypes.c_uint32]),
        "memif_ct_tx_reserved": (ctypes.c_uint32, [vp]),
        "memif_ct_tx_unreserve": (ctypes.c_int, [vp, ctypes.c_uint32]),
        "memif_ct_rx_peek": (ctypes.c_int, [vp, vp, ctypes.c_uint32, vp, ctypes.c_size_t]),
        "memif_ct_rx_release": (ctypes.c_int, [vp]),
        "memif_ct_rx_peeked": (ctypes.c_uint32, [vp]),
        "memif_ct_pkts_bytes": (ctypes.c_uint64, [vp, ctypes.c_uint32]),
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

# ---- the burst path: bare C functions, called without argtypes ----------------------------
# With argtypes, ctypes converts each argument through a from_param call that makes a new object:
# about 150 ns an argument on these machines, over 1 us for pool_write's seven, as much as the C
# work of a small burst. The burst path's functions are therefore a second binding of the same
# symbols, without argtypes, and their callers pass only what ctypes hands to C as it is:
#
#   pointer  a c_void_p (see Arg; each object here has one as ``arg``), a ctypes array, byref(),
#            bytes (what C only reads: a const pointer), or None. Never an int: ctypes would
#            pass it as a 32-bit C int. ``out``: a pointer C writes through, never bytes.
#   u32      an int in 0..2**31-1 (ctypes passes a C int: the C parameter is 32 bits wide)
#   int      an int in -2**31..2**31-1
#   size_t   a c_size_t (Arg.size)
#   u64      a c_uint64 (Arg.u64)
#
# MEMIF_CT_CHECK_CALLS=1 (the test suite sets it) wraps each function in a check of exactly this,
# so a caller that passes an int for a pointer fails its tests instead of truncating an address.
# Each returns the C int; no checks in between: the caller passes a live queue, pinned buffers with
# their true sizes, a count within its lengths array ('I', 32-bit), and hands a negative result
# to check().

CHECK_CALLS: Final = os.environ.get("MEMIF_CT_CHECK_CALLS", "") == "1"
_POINTER, _OUT, _U32, _INT, _SIZE, _U64 = "pointer", "out", "u32", "int", "size_t", "u64"
_CARG: Final = type(ctypes.byref(ctypes.c_int()))  # byref()'s type, which from_param() results share
BARE_PARAMETERS: dict[str, tuple[str, ...]] = {}  # each bare function's parameter kinds, by C name
BARE_RESTYPES: dict[str, type] = {}  # and its result's ctypes type


def _argument_problem(kind: str, arg: object) -> str | None:
    if kind in (_POINTER, _OUT):
        ok = (arg is None or isinstance(arg, (ctypes.c_void_p, ctypes.Array))
              or (type(arg) is _CARG and repr(arg).startswith("<cparam 'P'"))  # byref(), not a value
              or (kind == _POINTER and type(arg) is bytes))
    elif kind == _SIZE:
        ok = type(arg) is ctypes.c_size_t
    elif kind == _U64:
        ok = type(arg) is ctypes.c_uint64
    else:
        lo = 0 if kind == _U32 else -(1 << 31)
        ok = isinstance(arg, int) and lo <= arg < (1 << 31)
    return None if ok else f"its {kind} parameter takes no {type(arg).__name__} {arg!r}"


def _checked(fn: Callable[..., int], name: str, params: tuple[str, ...]) -> Callable[..., int]:
    def call(*args: object) -> int:
        if len(args) != len(params):
            raise ArgumentTypeError(f"{name} takes {len(params)} arguments, not {len(args)}")
        for i, (kind, arg) in enumerate(zip(params, args, strict=True)):
            problem = _argument_problem(kind, arg)
            if problem is not None:
                raise ArgumentTypeError(f"{name} argument {i}: {problem}")
        return fn(*args)
    call.__name__ = name
    return call


def _bare(name: str, *params: str, restype: type = ctypes.c_int) -> Callable[..., int]:
    """``name`` bound without argtypes (see above)."""
    fn = _lib[name]  # a new function object: the argtypes bound by _load stay on _lib.<name>
    fn.restype = restype
    BARE_PARAMETERS[name] = params
    BARE_RESTYPES[name] = restype
    return _checked(fn, name, params) if CHECK_CALLS else fn


class Arg:
    """Reusable arguments for the bare functions: set ``.value`` and pass the object. Setting one
    costs a fifth of making one. The owner uses them under one lock: ctypes reads the value
    when the call starts, so only a concurrent setter could race."""

    __slots__ = ("p1", "p2", "p3", "size", "u64")

    def __init__(self) -> None:
        self.p1 = ctypes.c_void_p()
        self.p2 = ctypes.c_void_p()
        self.p3 = ctypes.c_void_p()
        self.size = ctypes.c_size_t()
        self.u64 = ctypes.c_uint64()


def pointer_arg(address: int) -> ctypes.c_void_p:
    """``address`` as a bare function's pointer argument."""
    return ctypes.c_void_p(address or None)


def size_arg(size: int) -> ctypes.c_size_t:
    """``size`` as a bare function's size_t argument."""
    return ctypes.c_size_t(size)


tx_burst_raw: Final = _bare("memif_ct_tx_burst", _OUT, _POINTER, _SIZE, _POINTER, _U32)
"""tx_burst_raw(q, data, data_size, lengths, count) -> int (memif_ct_tx_burst)."""
tx_burst_exact_raw: Final = _bare("memif_ct_tx_burst_exact", _OUT, _POINTER, _SIZE, _POINTER, _U32)
"""tx_burst_exact_raw(q, data, data_size, lengths, count) -> int (memif_ct_tx_burst_exact: ERR_ARG unless
the lengths add up to data_size)."""
rx_burst_raw: Final = _bare("memif_ct_rx_burst", _OUT, _OUT, _SIZE, _OUT, _U32)
"""rx_burst_raw(q, out, out_size, lengths, max_pkts) -> int (memif_ct_rx_burst)."""
rx_burst_ex_raw: Final = _bare("memif_ct_rx_burst_ex", _OUT, _OUT, _SIZE, _OUT, _U32, _U32)
"""rx_burst_ex_raw(q, out, out_size, lengths, max_pkts, flags) -> int (memif_ct_rx_burst_ex; with
RX_KEEP_TOO_BIG, ERR_TOO_BIG and the packet's size in lengths[0])."""
tx_buffers_raw: Final = _bare("memif_ct_tx_buffers", _OUT, _POINTER, _POINTER, _U32)
"""tx_buffers_raw(q, idx, lengths, count) -> int (memif_ct_tx_buffers: client S2M with a pool publishes APP
buffers by index, one packet each)."""
tx_alloc_raw: Final = _bare("memif_ct_tx_alloc", _OUT, _OUT, _U32)
"""tx_alloc_raw(q, idx, n) -> int (memif_ct_tx_alloc: client S2M with a pool reclaims, then hands up to n
FREE buffers to the application, their indexes into idx)."""
pool_write_raw: Final = _bare("memif_ct_pool_write", _OUT, _POINTER, _U32, _POINTER, _SIZE, _POINTER, _U32)
"""pool_write_raw(pool, idx, n, data, data_size, lengths, max_length) -> int (memif_ct_pool_write: all or
nothing)."""
pool_free_raw: Final = _bare("memif_ct_pool_free", _OUT, _POINTER, _U32)
"""pool_free_raw(pool, idx, n) -> int (memif_ct_pool_free: APP -> FREE)."""
tx_reserve_raw: Final = _bare("memif_ct_tx_reserve", _OUT, _OUT, _U32)
"""tx_reserve_raw(q, bufs (Buf array), max) -> int (memif_ct_tx_reserve: server M2S)."""
tx_commit_raw: Final = _bare("memif_ct_tx_commit", _OUT, _POINTER, _U32)
"""tx_commit_raw(q, lengths, count) -> int (memif_ct_tx_commit: the first count reserved)."""
rx_peek_raw: Final = _bare("memif_ct_rx_peek", _OUT, _OUT, _U32, _OUT, _SIZE)
"""rx_peek_raw(q, pkts (Pkt array), max_pkts, scratch, scratch_size) -> int (memif_ct_rx_peek; the packets
stay valid until CQueue.rx_release())."""
eventfd_signal_raw: Final = _bare("memif_ct_eventfd_signal", _INT)
"""eventfd_signal_raw(fd) -> 0 or -errno; never blocks past a 5 ms bound (memif_ct_eventfd_signal)."""
eventfd_clear_raw: Final = _bare("memif_ct_eventfd_clear", _INT, restype=ctypes.c_int64)
"""eventfd_clear_raw(fd) -> counter read, 0 if none, or -errno; never blocks (memif_ct_eventfd_clear)."""


# ---- errors ------------------------------------------------------------------------------


def strerror(code: int) -> str:
    """The C library's text for a ``memif_ct_error_t``."""
    return str(_lib.memif_ct_strerror(code).decode())


def _native_error(rc: int, function: str, what: str) -> NativeArgumentError:
    reason = strerror(rc)
    return NativeArgumentError(f"{what}: {reason} (error {rc})", code=rc, function=function, reason=reason)


def check(rc: int, function: str) -> int:
    """``rc`` when it is >= 0; else raise NativeArgumentError with ``code=rc`` for C ``function``."""
    if rc < 0:
        raise _native_error(rc, function, f"{function} failed")
    return rc


def _require_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ArgumentError(f"{name}={value} is out of range: expected {lo}..{hi}")
    return value


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


COPY_METHODS: Final = ("memcpy", "movsb")  # MEMIF_CT_COPY_MEMCPY, MEMIF_CT_COPY_MOVSB


def copy_method(method: str | None = None) -> str:
    """How TX calls copy the caller's packets into shared memory, for every queue of the
    process: ``"movsb"`` (``rep movsb`` for copies of 512 bytes or more; the default where the
    CPU has ERMS) or ``"memcpy"``. Reflecting (``Queue.reflect``) copies what the peer wrote and
    always uses memcpy. Given a method, set it first: ArgumentError for one this CPU or build
    cannot use."""
    if method is None:
        return COPY_METHODS[_lib.memif_ct_copy_method(-1)]
    if not isinstance(method, str):
        raise ArgumentTypeError(f"copy method must be a str ({', '.join(COPY_METHODS)}), not {type(method).__name__}")
    if method not in COPY_METHODS:
        raise ArgumentError(f"copy method {method!r} is not one of {', '.join(COPY_METHODS)}")
    if _lib.memif_ct_copy_method(COPY_METHODS.index(method)) < 0:
        raise ArgumentError(f"copy method {method!r} is not available here: it needs x86-64 with ERMS "
                            "(and a build without ASan)")
    return method


def c_constants() -> dict[str, int]:
    """Every protocol constant of csrc/memif_ct.h, by name without the MEMIF_CT_ prefix."""
    count = ctypes.c_size_t()
    table = _lib.memif_ct_constants(ctypes.byref(count))
    return {table[i].name.decode(): int(table[i].value) for i in range(count.value)}


_QUEUE_SIZE: Final = int(_lib.memif_ct_queue_sizeof())


# ---- layout ------------------------------------------------------------------------------


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
        """Lay out a region; each argument is range-checked with an ArgumentError naming it."""
        _require_int("num_s2m", num_s2m, 1, _c.MAX_RINGS_PER_DIRECTION)
        _require_int("num_m2s", num_m2s, 1, _c.MAX_RINGS_PER_DIRECTION)
        _require_int("log2_ring_size", log2_ring_size, _c.MIN_LOG2_RING_SIZE, _c.MAX_LOG2_RING_SIZE)
        _require_int("buffer_size", buffer_size, _c.MIN_BUFFER_SIZE, _c.MAX_BUFFER_SIZE)
        raw = _Layout()
        check(
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


class _PyBuffer(ctypes.Structure):
    """Py_buffer (stable ABI since Python 3.11; unchanged since 3.3)."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),  # a strong reference, dropped by PyBuffer_Release
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_void_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_PyObject_GetBuffer: Final = ctypes.pythonapi.PyObject_GetBuffer
_PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_PyObject_GetBuffer.restype = ctypes.c_int
_PyBuffer_Release: Final = ctypes.pythonapi.PyBuffer_Release
_PyBuffer_Release.argtypes = [ctypes.POINTER(_PyBuffer)]
_PyBuffer_Release.restype = None
_PyBUF_SIMPLE: Final = 0  # contiguous bytes; read-only allowed


class _ReadOnlyExport:
    """A buffer export of a read-only object, held until released. ctypes' from_buffer() only
    takes writable buffers, so this asks CPython for the export itself: no copy is made."""

    __slots__ = ("_lock", "_held", "_view")

    def __init__(self, obj: object) -> None:
        self._lock = threading.Lock()
        self._held = False
        self._view = _PyBuffer()
        _PyObject_GetBuffer(obj, ctypes.byref(self._view), _PyBUF_SIMPLE)  # raises BufferError
        self._held = True

    @property
    def address(self) -> int:
        return int(self._view.buf or 0)

    @property
    def size(self) -> int:
        return int(self._view.len)

    def release(self) -> None:
        with self._lock:  # released once, whichever thread or finalizer gets here first
            if self._held:
                self._held = False
                _PyBuffer_Release(ctypes.byref(self._view))

    def __del__(self) -> None:
        self.release()


_PIN_BYTE = ctypes.c_char  # from_buffer on it exports (and so pins) the whole buffer


class Pinned:
    """The address of a C-contiguous Python buffer, held still while pinned.

    Holding a buffer export keeps the memory where it is: an mmap cannot be closed and a
    bytearray or array.array cannot be resized under the C code. ``Pinned(obj)`` needs a
    writable buffer (RX output, lengths arrays, a mapped region); ``Pinned(obj, writable=False)``
    (see ``pin_readonly``) also takes read-only ones, such as TX data. No copy is ever made.
    Call ``release()`` (or leave the ``with`` block) before closing what was pinned; ``address``
    is 0 afterwards.
    """

    __slots__ = ("_anchor", "address", "readonly", "size")

    def __init__(self, obj: object, *, writable: bool = True) -> None:
        # A writable buffer, the common case, in one ctypes call (a burst call pins two: this
        # halves what that costs). Whatever it refuses (read-only, not contiguous, empty, not a
        # buffer) goes the long way below, which names the problem or pins it read-only.
        try:
            anchor = _PIN_BYTE.from_buffer(obj)  # type: ignore[arg-type]
        except (TypeError, ValueError, BufferError):
            pass
        else:
            self.readonly = False
            self._anchor: object | None = anchor
            self.address = ctypes.addressof(anchor)
            self.size = memoryview(obj).nbytes  # type: ignore[arg-type]
            return
        try:
            with memoryview(obj) as view:  # type: ignore[arg-type]
                readonly, contiguous, size = view.readonly, view.c_contiguous, view.nbytes
        except TypeError:
            raise ArgumentTypeError(
                f"buffer must support the buffer protocol (bytes, bytearray, memoryview, mmap, array), "
                f"not {type(obj).__name__}"
            ) from None
        except ValueError as exc:  # a released memoryview, a closed mmap
            raise ArgumentError(f"buffer cannot be used: {exc}") from None
        if not contiguous:
            raise ArgumentTypeError(f"buffer must be C-contiguous; this {type(obj).__name__} is not")
        if readonly and writable:
            raise ArgumentTypeError(
                f"buffer must be writable, but this {type(obj).__name__} is read-only "
                "(pin_readonly() takes data C only reads)"
            )
        self.readonly = readonly
        if readonly:
            try:
                export = _ReadOnlyExport(obj)
            except BufferError as exc:
                raise ArgumentTypeError(f"cannot pin this {type(obj).__name__}: {exc}") from None
            self._anchor = export
            self.address = export.address
            self.size = export.size
        else:
            array = (ctypes.c_char * size).from_buffer(obj)  # type: ignore[arg-type]
            self._anchor = array
            self.address = ctypes.addressof(array)
            self.size = size

    def release(self) -> None:
        """Drop the export: the buffer may be closed or resized again. Idempotent."""
        anchor, self._anchor = self._anchor, None
        self.address = 0
        self.size = 0
        if isinstance(anchor, _ReadOnlyExport):
            anchor.release()

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_ADDRESS_OF = ctypes.addressof
_CAST = ctypes.cast
_VOID_P = ctypes.c_void_p
U32_ZERO: Final = array.array("I", [0])  # times n: n zeroed uint32s, the cheapest way to make them


def pin(obj: object, *, writable: bool = True) -> tuple[object, int, int]:
    """``(anchor, address, size)`` of a buffer, pinned while ``anchor`` lives; hand the anchor to
    ``unpin`` when done. A burst call's fast path: an array.array costs a memoryview, a bytearray
    or a writable memoryview one ctypes call (a Pinned object and its ``with`` cost three times
    that), bytes C only reads one ``ctypes.cast`` (immutable: the object itself is the anchor;
    a Pinned took eight times that); anything else (an empty one too) is a Pinned."""
    kind = type(obj)
    if kind is bytes and not writable and obj:
        return obj, _CAST(obj, _VOID_P).value, len(obj)  # type: ignore[arg-type,return-value]  # (not NULL)
    if kind is array.array and len(obj):  # type: ignore[arg-type]
        # A memoryview holds the export (no resize while it lives) and buffer_info() gives the
        # address: 40% less than a ctypes export.
        view = memoryview(obj)  # type: ignore[arg-type]
        return view, obj.buffer_info()[0], view.nbytes  # type: ignore[attr-defined]
    if kind is bytearray or kind is memoryview:
        try:
            anchor = _PIN_BYTE.from_buffer(obj)  # type: ignore[arg-type]
        except (TypeError, ValueError, BufferError):  # empty, read-only, strided: Pinned names it
            pass
        else:
            size = len(obj) if kind is bytearray else obj.nbytes  # type: ignore[arg-type,attr-defined]
            return anchor, _ADDRESS_OF(anchor), size
    pinned = Pinned(obj, writable=writable)
    return pinned, pinned.address, pinned.size


def unpin(anchor: object) -> None:
    """Release what ``pin`` returned (a ctypes export goes with its last reference)."""
    kind = type(anchor)
    if kind is memoryview or kind is Pinned:
        anchor.release()  # type: ignore[attr-defined]


def pin_readonly(obj: object) -> Pinned:
    """Pin a buffer C only reads (TX data): bytes, a read-only memoryview or mmap, a numpy array,
    or any writable buffer. Zero-copy; see Pinned."""
    return Pinned(obj, writable=False)


def ring_init(address: int, log2_ring_size: int, buffer_region: int, buffer_offset: int, buffer_size: int) -> None:
    """Client: write a fresh ring header and descriptors at ``address`` (see memif_ct_ring_init);
    ``buffer_region=NO_REGION`` for a ring whose buffers come from a pool."""
    _require_int("address", address, 0, _U64_MAX)
    _require_int("log2_ring_size", log2_ring_size, _c.MIN_LOG2_RING_SIZE, _c.MAX_LOG2_RING_SIZE)
    if buffer_region != NO_REGION:  # NO_REGION: buffers from a pool, every descriptor zeroed
        _require_int("buffer_region", buffer_region, 0, _c.MAX_REGIONS - 1)
    _require_int("buffer_size", buffer_size, _c.MIN_BUFFER_SIZE, _c.MAX_BUFFER_SIZE)
    _require_int("buffer_offset", buffer_offset, 0, 0xFFFFFFFF)
    if not address:
        raise ArgumentError("ring address must not be NULL (0)")
    check(
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
        """Record that region ``index`` is mapped at ``address`` (0: not mapped) for ``size`` bytes."""
        _require_int("index", index, 0, self.count - 1)
        _require_int("address", address, 0, _U64_MAX)
        _require_int("size", size, 0, _U64_MAX)
        self._array[index].base = address or None
        self._array[index].size = size

    def clear(self) -> None:
        """Forget every mapping: any descriptor naming a region is now invalid."""
        for i in range(self.count):
            self._array[i].base = None
            self._array[i].size = 0

    @property
    def c_array(self) -> ctypes.Array[_Region]:
        """The C table itself (what memif_ct_queue_init points into): keep the table alive."""
        return self._array


# ---- segments and pools (zero-copy) -------------------------------------------------------


class SegmentTable:
    """A C table of segments: ``(base_address, size, region, region_offset)`` each, where a
    descriptor addresses byte ``base_address + k`` as ``region`` at ``region_offset + k``."""

    def __init__(self, segments: list[tuple[int, int, int, int]]) -> None:
        count = len(segments)
        _require_int("len(segments)", count, 1, _c.MAX_REGIONS)
        self._array = (Segment * count)()
        for i, (base, size, region, offset) in enumerate(segments):
            self._array[i].base = _require_int(f"segments[{i}].base_address", base, 1, _U64_MAX)
            self._array[i].size = _require_int(f"segments[{i}].size", size, 0, 1 << 32)
            self._array[i].region = _require_int(f"segments[{i}].region", region, 0, _c.MAX_REGIONS - 1)
            self._array[i].offset = _require_int(f"segments[{i}].region_offset", offset, 0, 0xFFFFFFFF)
        self.count = count

    @property
    def c_array(self) -> ctypes.Array[Segment]:
        """The C table itself: keep the SegmentTable alive while C uses it."""
        return self._array


def memseg_to_desc(table: SegmentTable, address: int, length: int) -> tuple[int, int]:
    """``(region, offset)`` a descriptor gives ``[address, address + length)``; NativeArgumentError
    with ``code=ERR_RANGE`` when no segment holds it all (memif_ct_memseg_to_desc)."""
    _require_int("address", address, 1, _U64_MAX)
    _require_int("length", length, 0, _U64_MAX)
    region, offset = ctypes.c_uint16(), ctypes.c_uint32()
    check(
        _lib.memif_ct_memseg_to_desc(
            table.c_array, table.count, address, length, ctypes.byref(region), ctypes.byref(offset)
        ),
        "memif_ct_memseg_to_desc",
    )
    return int(region.value), int(offset.value)


def memseg_to_addr(table: SegmentTable, region: int, offset: int, length: int) -> int | None:
    """The address of ``[offset, offset + length)`` of ``region``, or None if no segment holds it."""
    _require_int("region", region, 0, 0xFFFF)
    _require_int("offset", offset, 0, _U64_MAX)
    _require_int("length", length, 0, _U64_MAX)
    addr = _lib.memif_ct_memseg_to_addr(table.c_array, table.count, region, offset, length)
    return int(addr) if addr else None


class Pool:
    """A C buffer pool (memif_ct_pool_t) over segments, in memory this object owns.

    Buffers are ``buffer_size`` bytes, indexed 0..count-1, each FREE, APP (``alloc``) or RING (a
    queue's slot holds it). Driven by one thread at a time: the queue's. The segments' memory is
    the caller's and must outlive the pool and every queue using it.
    """

    __slots__ = ("_mem", "_segments", "address", "arg", "buffer_size", "count")

    def __init__(self, segments: list[tuple[int, int, int, int]], buffer_size: int) -> None:
        _require_int("buffer_size", buffer_size, _c.MIN_BUFFER_SIZE, _c.MAX_BUFFER_SIZE)
        self._segments = SegmentTable(segments)
        size = int(_lib.memif_ct_pool_bytes(self._segments.c_array, self._segments.count, buffer_size))
        if size == 0:
            raise ArgumentError(
                f"segments {segments} cannot make a pool of {buffer_size}-byte buffers: each needs "
                "region_offset + size <= 2**32, none may overlap another, and at least one buffer"
            )
        self._mem = (ctypes.c_uint64 * ((size + 7) // 8))()
        self.address: int = ctypes.addressof(self._mem)
        self.arg = ctypes.c_void_p(self.address)  # the address as a bare function's argument
        check(
            _lib.memif_ct_pool_init(self.address, size, self._segments.c_array, self._segments.count, buffer_size),
            "memif_ct_pool_init",
        )
        self.count = int(_lib.memif_ct_pool_count(self.address))
        self.buffer_size = buffer_size

    def alloc(self, n: int) -> array.array[int]:
        """Up to ``n`` FREE buffers for the application (-> APP): their indexes."""
        _require_int("n", n, 0, 0xFFFFFFFF)
        n = min(n, self.count)
        out = array.array("I", bytes(4 * max(n, 1)))
        got = int(_lib.memif_ct_pool_alloc(self.address, out.buffer_info()[0], n))
        del out[got:]
        return out

    def free(self, indexes: list[int]) -> None:
        """Give APP buffers back (-> FREE). NativeArgumentError with ``code=ERR_STATE`` if one was
        not APP (a double free) or out of range; the valid ones are freed all the same."""
        arr = (ctypes.c_uint32 * max(len(indexes), 1))()
        for i, idx in enumerate(indexes):
            arr[i] = _require_int(f"indexes[{i}]", idx, 0, 0xFFFFFFFF)
        check(_lib.memif_ct_pool_free(self.address, arr, len(indexes)), "memif_ct_pool_free")

    def write(self, indexes: array.array[int], address: int, size: int, lengths: array.array[int],
              max_length: int = 0) -> int:
        """Copy packets packed at ``address`` (``size`` bytes, ``lengths`` each, pinned by the
        caller) into APP buffers ``indexes`` (memif_ct_pool_write): all or nothing; the raw
        code (ERR_ARG: a length out of 1..max_length or past the data; ERR_STATE: not APP)."""
        if len(indexes) != len(lengths):
            raise ArgumentError(f"{len(indexes)} indexes but {len(lengths)} lengths")
        return int(_lib.memif_ct_pool_write(self.address, indexes.buffer_info()[0], len(indexes), address, size,
                                            lengths.buffer_info()[0], max_length))

    def buffer(self, idx: int) -> tuple[int, int, int, int, int]:
        """``(address, region, offset, capacity, state)`` of buffer ``idx``."""
        _require_int("idx", idx, 0, self.count - 1)
        raw = Buf()
        check(_lib.memif_ct_pool_buffer(self.address, idx, ctypes.byref(raw)), "memif_ct_pool_buffer")
        return int(raw.addr or 0), int(raw.region), int(raw.offset), int(raw.capacity), int(raw.state)

    def index_of(self, address: int) -> int:
        """The index of the buffer starting at ``address``; NativeArgumentError ``ERR_RANGE`` if none."""
        _require_int("address", address, 1, _U64_MAX)
        idx = ctypes.c_uint32()
        check(_lib.memif_ct_pool_index_of(self.address, address, ctypes.byref(idx)), "memif_ct_pool_index_of")
        return int(idx.value)

    def counts(self) -> tuple[int, int, int]:
        """Buffers ``(free, app, ring)``: they sum to ``count``."""
        free, app, ring = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
        _lib.memif_ct_pool_counts(self.address, ctypes.byref(free), ctypes.byref(app), ctypes.byref(ring))
        return int(free.value), int(app.value), int(ring.value)


# ---- queues ------------------------------------------------------------------------------


class CQueue:
    """One C ``memif_ct_queue_t``: one end of one ring as this process drives it.

    ``address`` is the C struct's address, stable for the object's life: pass it to
    ``tx_burst_raw``/``rx_burst_raw``. This is the bare C object: it neither locks nor knows
    whether the ring is still mapped; whoever owns it (``queue.Queue``) guards the teardown.
    A ring the C library refuses raises NativeArgumentError whose ``code`` says why
    (``ERR_COOKIE``, ``ERR_ALIGN``, ``ERR_LAYOUT``, ...).
    """

    __slots__ = (
        "_mem", "_pool", "_regions", "_slot_table", "address", "arg", "buffer_size", "is_tx", "log2_ring_size",
        "ring_size", "ring_type", "role",
    )

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
        _require_int("ring_address", ring_address, 0, _U64_MAX)
        _require_int("log2_ring_size", log2_ring_size, _c.MIN_LOG2_RING_SIZE, _c.MAX_LOG2_RING_SIZE)
        _require_int("role", role, _c.ROLE_CLIENT, _c.ROLE_SERVER)
        _require_int("ring_type", ring_type, _c.RING_TYPE_S2M, _c.RING_TYPE_M2S)
        if not isinstance(regions, RegionTable):
            raise ArgumentTypeError(f"regions must be a RegionTable, not {type(regions).__name__}")
        if buffer_region != NO_REGION:
            _require_int("buffer_region", buffer_region, 0, _c.MAX_REGIONS - 1)
        _require_int("buffer_offset", buffer_offset, 0, _U64_MAX)
        _require_int("buffer_size", buffer_size, 0, _c.MAX_BUFFER_SIZE)
        self._mem = (ctypes.c_uint64 * ((_QUEUE_SIZE + 7) // 8))()  # 8-byte aligned, zeroed
        self._regions = regions  # the C queue points into its table: keep it alive
        self._pool: Pool | None = None
        self._slot_table: ctypes.Array[ctypes.c_uint32] | None = None
        self.address: int = ctypes.addressof(self._mem)
        self.arg = ctypes.c_void_p(self.address)  # the address as a bare function's argument
        rc = _lib.memif_ct_queue_init(
            self.address, ring_address, log2_ring_size, role, ring_type,
            regions.c_array, regions.count, buffer_region, buffer_offset, buffer_size,
        )
        if rc < 0:
            raise _native_error(
                rc,
                "memif_ct_queue_init",
                f"the ring at {ring_address:#x} (log2_ring_size={log2_ring_size}, role={role}, "
                f"ring_type={ring_type}) was refused",
            )
        self.log2_ring_size = log2_ring_size
        self.ring_size = 1 << log2_ring_size
        self.buffer_size = buffer_size if role == _c.ROLE_CLIENT else 0  # a server's buffers are the peer's
        self.role = role
        self.ring_type = ring_type
        self.is_tx = (role == _c.ROLE_CLIENT) == (ring_type == _c.RING_TYPE_S2M)

    def set_eventfd(self, fd: int) -> None:
        """The eventfd a TX burst signals when the peer asks (MASK_INT clear); -1 for none.
        The fd stays the caller's to close (set -1 first)."""
        _require_int("fd", fd, -1, _FD_MAX)
        check(_lib.memif_ct_queue_set_eventfd(self.address, fd), "memif_ct_queue_set_eventfd")

    def set_polling(self, polling: bool) -> None:
        """Receiver: set MASK_INT (poll) or clear it (ask the peer for interrupts)."""
        _lib.memif_ct_queue_set_polling(self.address, 1 if polling else 0)

    def refill(self) -> int:
        """Client M2S: post every free buffer to the server; returns the slots posted."""
        return check(_lib.memif_ct_refill(self.address), "memif_ct_refill")

    def pending(self) -> int:
        """Slots published and not yet consumed (see memif_ct_queue_pending)."""
        return int(_lib.memif_ct_queue_pending(self.address))

    def free(self) -> int:
        """Slots a producer could fill now."""
        return int(_lib.memif_ct_queue_free(self.address))

    def needs_signal(self) -> bool:
        """Transmitter: True if the peer wants an eventfd signal after a burst."""
        return bool(_lib.memif_ct_queue_needs_signal(self.address))

    def set_pool(self, pool: Pool) -> None:
        """Client, before any traffic: take buffers from ``pool`` (memif_ct_queue_set_pool); the queue
        keeps the pool and its slot table alive."""
        if not isinstance(pool, Pool):
            raise ArgumentTypeError(f"pool must be a Pool, not {type(pool).__name__}")
        table = (ctypes.c_uint32 * self.ring_size)()
        check(_lib.memif_ct_queue_set_pool(self.address, pool.address, table), "memif_ct_queue_set_pool")
        self._pool = pool
        self._slot_table = table

    def reclaim(self) -> int:
        """Client S2M with a pool: return the buffers of slots the server released; their count."""
        return check(_lib.memif_ct_queue_reclaim(self.address), "memif_ct_queue_reclaim")

    def alloc(self, n: int) -> array.array[int]:
        """Client S2M with a pool: reclaim, then up to ``n`` FREE buffers for the application
        (-> APP), in one C call (memif_ct_tx_alloc): their pool indexes."""
        if type(n) is not int or not 0 <= n <= 0xFFFF:
            _require_int("n", n, 0, 0xFFFF)
        out = U32_ZERO * n
        got = _lib.memif_ct_tx_alloc(self.address, out.buffer_info()[0], n)
        if got < n:
            del out[max(got, 0):]
            check(got, "memif_ct_tx_alloc")
        return out

    def drop_pool(self) -> int:
        """Teardown, the peer gone: every buffer the slots hold back to the pool; their count. The
        queue takes no more traffic."""
        return check(_lib.memif_ct_queue_drop_pool(self.address), "memif_ct_queue_drop_pool")

    def tx_reserve(self, n: int) -> list[tuple[int, int]]:
        """Server M2S: reserve up to ``n`` posted buffers (memif_ct_tx_reserve): ``(address,
        capacity)`` each, in ring order."""
        _require_int("n", n, 0, 0xFFFF)
        out = (Buf * max(n, 1))()
        got = check(_lib.memif_ct_tx_reserve(self.address, out, n), "memif_ct_tx_reserve")
        return [(int(b.addr), int(b.capacity)) for b in out[:got]]

    def tx_commit(self, lengths: array.array[int]) -> int:
        """Server M2S: publish the first ``len(lengths)`` reserved buffers (memif_ct_tx_commit)."""
        return check(_lib.memif_ct_tx_commit(self.address, lengths.buffer_info()[0], len(lengths)),
                     "memif_ct_tx_commit")

    def tx_unreserve(self, n: int) -> int:
        """Server M2S: give back the last ``n`` reserved buffers (memif_ct_tx_unreserve)."""
        _require_int("n", n, 0, 0xFFFF)
        return check(_lib.memif_ct_tx_unreserve(self.address, n), "memif_ct_tx_unreserve")

    def tx_buffers(self, indexes: array.array[int], lengths: array.array[int]) -> int:
        """Client S2M with a pool: publish APP buffers by index (memif_ct_tx_buffers)."""
        if len(indexes) != len(lengths):
            raise ArgumentError(f"{len(indexes)} indexes but {len(lengths)} lengths")
        return check(_lib.memif_ct_tx_buffers(self.address, indexes.buffer_info()[0], lengths.buffer_info()[0],
                                              len(indexes)), "memif_ct_tx_buffers")

    def tx_reserved(self) -> int:
        """Server M2S: buffers reserved (tx_reserve_raw) and not committed."""
        return int(_lib.memif_ct_tx_reserved(self.address))

    def rx_peeked(self) -> int:
        """Slots peeked (rx_peek_raw) and not released."""
        return int(_lib.memif_ct_rx_peeked(self.address))

    def rx_release(self) -> int:
        """Release every peeked slot (server: tail; client: refill); the slots released."""
        return check(_lib.memif_ct_rx_release(self.address), "memif_ct_rx_release")

    def stats(self) -> dict[str, int]:
        """A snapshot of the queue's counters, keyed by STATS_FIELDS."""
        raw = _Stats()
        _lib.memif_ct_queue_stats(self.address, ctypes.byref(raw))
        return {name: int(getattr(raw, name)) for name in STATS_FIELDS}

    def stats_reset(self) -> None:
        """Zero the queue's counters."""
        _lib.memif_ct_queue_stats_reset(self.address)


class PktArray:
    """An array of ``memif_ct_pkt_t`` for rx_peek_raw to fill, owned and kept still by this object."""

    __slots__ = ("_array", "address", "arg")

    def __init__(self, count: int) -> None:
        _require_int("count", count, 1, 0xFFFFFFFF)
        self._array = (Pkt * count)()
        self.address: int = ctypes.addressof(self._array)
        self.arg = ctypes.c_void_p(self.address)  # the address as a bare function's argument

    def __len__(self) -> int:
        return len(self._array)

    def raw(self, n: int) -> bytes:
        """A copy of the first ``n`` entries as they lie in C (``PKT_LAYOUT`` unpacks one)."""
        return ctypes.string_at(self.address, min(n, len(self._array)) * PKT_SIZE)

    def entry(self, i: int) -> tuple[int, int, int, int]:
        """``(address, length, slots, in_scratch)`` of packet ``i`` alone."""
        if not 0 <= i < len(self._array):
            raise ArgumentError(f"packet index {i} is out of range: expected 0..{len(self._array) - 1}")
        return _PKT_LAYOUT.unpack(ctypes.string_at(self.address + i * _PKT_LAYOUT.size, _PKT_LAYOUT.size))

    def total_length(self, n: int) -> int:
        """Bytes of the first ``n`` packets (summed in C: no Python object per packet)."""
        return int(_lib.memif_ct_pkts_bytes(self.address, min(n, len(self._array))))


_PKT_LAYOUT: Final = struct.Struct("@PIHH")  # memif_ct_pkt_t, field for field

PKT_SIZE: Final = ctypes.sizeof(Pkt)
PKT_LAYOUT: Final = _PKT_LAYOUT
# Where a packet's address and length lie in an entry, in words of their own size: the
# addresses and the lengths of a burst are strided slices of the entries, no Python object per
# packet. PKT_ADDR_FORMAT is the struct/memoryview format of a pointer.
PKT_ADDR_FORMAT: Final = {8: "Q", 4: "I"}.get(ctypes.sizeof(ctypes.c_void_p), "?")
PKT_ADDR_WORDS: Final = PKT_SIZE // ctypes.sizeof(ctypes.c_void_p)  # an entry, in pointer-sized words
PKT_LENGTH_WORD: Final = Pkt.length.offset // 4
PKT_SCRATCH_HALF: Final = Pkt.scratch.offset // 2  # the in-scratch flag, in 16-bit words
if (_PKT_LAYOUT.size != PKT_SIZE or PKT_ADDR_FORMAT == "?" or Pkt.addr.offset != 0
        or PKT_SIZE % ctypes.sizeof(ctypes.c_void_p) or Pkt.length.offset % 4 or Pkt.scratch.offset % 2):
    # An explicit check, not an assert (python -O strips those): the burst API slices by these.
    raise NativeLibraryError(
        f"memif_ct_pkt_t has a layout this package does not know: {PKT_SIZE} bytes, "
        f"{ctypes.sizeof(ctypes.c_void_p)}-byte pointers, length at {Pkt.length.offset}"
    )


def read_memory(address: int, length: int) -> bytes:
    """A copy of ``length`` bytes at ``address`` (memory the caller knows is mapped)."""
    return ctypes.string_at(address, length)


def buffer_address(view: memoryview) -> int:
    """Address of the first byte of a writable buffer (a memoryview handed out by the buffer API)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (TypeError, ValueError):
        raise ArgumentError("the buffer is not writable memory the buffer API handed out "
                            "(read-only, empty or released)") from None


# ---- eventfds ----------------------------------------------------------------------------


def eventfd_signal(fd: int) -> None:
    """Write 1 to an eventfd without ever blocking; SocketError (an OSError) on failure."""
    rc = int(eventfd_signal_raw(_require_int("fd", fd, -(1 << 31), _FD_MAX)))
    if rc < 0:
        raise SocketError(-rc, f"signalling eventfd {fd} failed: {os.strerror(-rc)}")


def eventfd_clear(fd: int) -> int:
    """Read an eventfd's counter (clearing it) without ever blocking; 0 if nothing was pending.
    SocketError (an OSError) on failure."""
    rc = int(eventfd_clear_raw(_require_int("fd", fd, -(1 << 31), _FD_MAX)))
    if rc < 0:
        raise SocketError(-rc, f"reading eventfd {fd} failed: {os.strerror(-rc)}")
    return rc


def eventfd_guard() -> int:
    """The signal number bounding this thread's eventfd calls (memif_ct_eventfd_guard), or a
    negative errno saying why they are not bounded: -EBUSY, the application owns the signal."""
    return int(_lib.memif_ct_eventfd_guard())


# ---- file descriptors a peer sent --------------------------------------------------------


def fd_fs_magic(fd: int) -> int:
    """The f_type of the file system fd's file lives on (fstatfs; compare HUGETLBFS_MAGIC).
    SocketError (an OSError) if fd cannot be asked."""
    _require_int("fd", fd, 0, _FD_MAX)
    rc = int(_lib.memif_ct_fd_fs_magic(fd))
    if rc < 0:
        raise SocketError(-rc, f"fstatfs of fd {fd} failed: {os.strerror(-rc)}")
    return rc


# ---- traffic: memif-ct's test frames in whole bursts (csrc/traffic.c) ----------------------
# frames.py builds the template and the pattern table and stays the reference; these wrappers
# own the C structs and the caller memory they point at.

FRAME_OK: Final = 0  # memif_ct_frame_verdict_t; from FRAME_SHORT on, "ours, damaged"
FRAME_NOT_OURS: Final = 1
FRAME_SHORT: Final = 2
FRAME_VERDICTS: Final = 11
CHECK_FIXED: Final = 1  # MEMIF_CT_CHECK_FIXED: the window is every seq the run sent


class _FrameGen(ctypes.Structure):
    _fields_ = [
        ("tmpl", ctypes.c_void_p),
        ("pattern", ctypes.c_void_p),
        ("size", ctypes.c_uint32),
        ("pattern_size", ctypes.c_uint32),
    ]


class _Checker(ctypes.Structure):
    """memif_ct_checker_t, field for field."""

    _fields_ = [
        ("frames", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("unique", ctypes.c_uint64),
        ("duplicates", ctypes.c_uint64),
        ("corrupted", ctypes.c_uint64),
        ("not_ours", ctypes.c_uint64),
        ("out_of_order", ctypes.c_uint64),
        ("lowest", ctypes.c_uint64),
        ("highest", ctypes.c_uint64),
        ("need_seq", ctypes.c_uint64),
        ("bitmap", ctypes.c_void_p),
        ("window_base", ctypes.c_uint64),
        ("window_bits", ctypes.c_uint64),
        ("queue_high", ctypes.c_void_p),
        ("num_queues", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("last_corrupt", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


def _declare_traffic() -> None:
    vp, u32, u64, sz = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t
    protos: dict[str, tuple[object, list[object]]] = {
        "memif_ct_crc32": (u32, [u32, vp, sz]),
        "memif_ct_frame_verdict_str": (ctypes.c_char_p, [ctypes.c_int]),
        "memif_ct_framegen_init": (ctypes.c_int, [vp, vp, u32, vp, u32]),
        "memif_ct_frames_stamp_packed": (ctypes.c_int, [vp, u64, u32, vp, sz]),
        "memif_ct_frames_stamp_addrs": (ctypes.c_int, [vp, u64, vp, u32]),
        "memif_ct_frame_verify": (ctypes.c_int, [vp, sz, vp]),
        "memif_ct_checker_init": (ctypes.c_int, [vp, vp, u64, u64, vp, u32, u32]),
        "memif_ct_checker_set_window": (ctypes.c_int, [vp, vp, u64, u64]),
        "memif_ct_check_packed": (ctypes.c_int, [vp, u32, vp, sz, vp, u32, vp, vp]),
        "memif_ct_check_pkts": (ctypes.c_int, [vp, u32, vp, u32, vp, vp]),
        "memif_ct_macswap_packed": (ctypes.c_int, [vp, sz, vp, u32]),
        "memif_ct_tx_frames": (ctypes.c_int, [vp, vp, u64, u32]),
        "memif_ct_tx_pkts": (ctypes.c_int, [vp, vp, u32, ctypes.c_int]),
    }
    for name, (restype, argtypes) in protos.items():
        try:
            fn = getattr(_lib, name)
        except AttributeError as exc:
            raise NativeLibraryError(f"memif-ct's C library {LIBRARY_PATH} lacks the function {name}") from exc
        fn.restype = restype
        fn.argtypes = argtypes


_declare_traffic()

macswap_packed_raw: Final = _bare("memif_ct_macswap_packed", _OUT, _SIZE, _POINTER, _U32)
"""macswap_packed_raw(data, size, lengths, count) -> int (memif_ct_macswap_packed; bare, see above)."""
check_pkts_raw: Final = _bare("memif_ct_check_pkts", _OUT, _U32, _POINTER, _U32, _OUT, _OUT)
"""check_pkts_raw(checker, queue, pkts (Pkt array), count, verdicts, seqs) -> int (bare, see above)."""
tx_frames_raw: Final = _bare("memif_ct_tx_frames", _OUT, _POINTER, _U64, _U32)
"""tx_frames_raw(q, stamper, first_seq, count) -> int (memif_ct_tx_frames: stamped straight into TX buffers;
bare, see above)."""
tx_pkts_raw: Final = _bare("memif_ct_tx_pkts", _OUT, _POINTER, _U32, _INT)
"""tx_pkts_raw(q, pkts (Pkt array), count, macswap) -> int (memif_ct_tx_pkts: each packet copied into a TX
buffer; bare, see above)."""


def crc32(data: object, crc: int = 0) -> int:
    """zlib's crc32 of a buffer, continuing from ``crc`` (memif_ct_crc32)."""
    with Pinned(data, writable=False) as pin:
        return int(_lib.memif_ct_crc32(_require_int("crc", crc, 0, 0xFFFFFFFF), pin.address, pin.size))


def frame_verdict_str(verdict: int) -> str:
    """The C library's words for a frame verdict (FRAME_*)."""
    return str(_lib.memif_ct_frame_verdict_str(verdict).decode())


def frame_verify(frame: object) -> tuple[int, int | None]:
    """(verdict, seq) of one test frame (memif_ct_frame_verify); seq only when FRAME_OK."""
    seq = ctypes.c_uint64()
    with Pinned(frame, writable=False) as pin:
        verdict = int(_lib.memif_ct_frame_verify(pin.address or None, pin.size, ctypes.byref(seq)))
    if verdict < 0:
        raise _native_error(verdict, "memif_ct_frame_verify", "frame")
    return verdict, (int(seq.value) if verdict == FRAME_OK else None)


class FrameStamper:
    """Stamps test frames of one size from a template (memif_ct_framegen_t): per frame the seq,
    its payload window and the crc. Owns copies of the template and the pattern table."""

    __slots__ = ("_gen", "_pattern", "_template", "address", "arg", "size")

    def __init__(self, template: bytes, pattern: bytes) -> None:
        self._template = ctypes.create_string_buffer(bytes(template), len(template))
        self._pattern = ctypes.create_string_buffer(bytes(pattern), len(pattern))
        self._gen = _FrameGen()
        self.address: int = ctypes.addressof(self._gen)
        self.arg = ctypes.c_void_p(self.address)  # the address as a bare function's argument
        rc = int(_lib.memif_ct_framegen_init(self.address, self._template, len(template), self._pattern,
                                             len(pattern)))
        if rc < 0:
            raise _native_error(rc, "memif_ct_framegen_init", f"a {len(template)}-byte template")
        self.size: int = len(template)

    def stamp_into(self, first_seq: int, count: int, out_address: int, out_size: int) -> int:
        """Write ``count`` frames from ``first_seq`` back to back at ``out_address`` (``out_size``
        bytes, pinned by the caller); returns count."""
        return check(int(_lib.memif_ct_frames_stamp_packed(self.address, first_seq, count, out_address, out_size)),
                     "memif_ct_frames_stamp_packed")

    def stamp(self, first_seq: int, count: int) -> bytearray:
        """``count`` frames from ``first_seq``, packed in a new bytearray."""
        _require_int("first_seq", first_seq, 0, _U64_MAX)
        _require_int("count", count, 0, 0x7FFFFFFF)
        out = bytearray(count * self.size)
        with Pinned(out) as pin:
            self.stamp_into(first_seq, count, pin.address, pin.size)
        return out

    def stamp_addresses(self, first_seq: int, addresses: list[int]) -> int:
        """Write frame ``first_seq + i`` at ``addresses[i]`` (each at least ``size`` writable bytes)."""
        _require_int("first_seq", first_seq, 0, _U64_MAX)
        table = (ctypes.c_void_p * max(1, len(addresses)))(*addresses)
        return check(int(_lib.memif_ct_frames_stamp_addrs(self.address, first_seq, table, len(addresses))),
                     "memif_ct_frames_stamp_addrs")


class FrameChecker:
    """The verifier's bookkeeping in C (memif_ct_checker_t) and the memory it needs.

    ``expected``: the run sent seqs 0..expected-1 (pktgen), so the bitmap is fixed and any other
    seq is a duplicate. None (a sink): the window follows the seqs seen, grown here by doubling
    up to ``MAX_WINDOW_BITS``; an intact frame whose seq lies further than that from the others
    cannot be one of the same run and is counted as not ours (``far``).
    """

    MAX_WINDOW_BITS: Final = 1 << 32  # a 512 MiB bitmap
    _FIRST_WINDOW_BITS: Final = 1 << 20
    _SLACK: Final = 1 << 16  # seqs below the first seen that a new window still covers

    def __init__(self, num_queues: int, expected: int | None = None) -> None:
        _require_int("num_queues", num_queues, 1, 0xFFFF)
        self._c = _Checker()
        self.address: int = ctypes.addressof(self._c)
        self.arg = ctypes.c_void_p(self.address)  # the address as a bare function's argument
        self._queues = (ctypes.c_uint64 * num_queues)()
        self.far = 0  # intact frames too far from the window to track (counted in not_ours)
        self._far_bytes = 0
        bits = 0 if expected is None else _require_int("expected", expected, 0, self.MAX_WINDOW_BITS)
        self._bitmap = (ctypes.c_uint8 * max(1, (bits + 7) // 8))()
        rc = int(_lib.memif_ct_checker_init(self.address, self._bitmap, 0, bits, self._queues, num_queues,
                                            CHECK_FIXED if expected is not None else 0))
        if rc < 0:
            raise _native_error(rc, "memif_ct_checker_init", "the checker")

    @property
    def frames(self) -> int:
        """Frames checked (the far ones aside)."""
        return int(self._c.frames)

    @property
    def bytes(self) -> int:
        """Their bytes."""
        return int(self._c.bytes)

    @property
    def unique(self) -> int:
        """Distinct intact frames of ours."""
        return int(self._c.unique)

    @property
    def duplicates(self) -> int:
        """Intact frames whose seq was seen already."""
        return int(self._c.duplicates)

    @property
    def corrupted(self) -> int:
        """Frames of ours, damaged."""
        return int(self._c.corrupted)

    @property
    def out_of_order(self) -> int:
        """A new seq below the highest seen on its queue."""
        return int(self._c.out_of_order)

    @property
    def lowest(self) -> int:
        """Lowest distinct seq (when unique > 0)."""
        return int(self._c.lowest)

    @property
    def highest(self) -> int:
        """Highest distinct seq (when unique > 0)."""
        return int(self._c.highest)

    @property
    def last_corrupt(self) -> int:
        """Verdict of the last corrupted frame (0: none)."""
        return int(self._c.last_corrupt)

    @property
    def not_ours(self) -> int:
        return int(self._c.not_ours) + self.far

    @property
    def checked(self) -> int:
        """Frames checked, the far ones included."""
        return int(self._c.frames) + self.far

    @property
    def checked_bytes(self) -> int:
        return int(self._c.bytes) + self._far_bytes

    def check_packed(self, queue: int, data_address: int, size: int, lengths: array.array[int], count: int,
                     verdicts: int = 0, seqs: int = 0) -> None:
        """Check ``count`` frames packed at ``data_address`` (``size`` bytes, pinned by the caller),
        lengths in ``lengths`` ('I'), received on RX ``queue``; ``verdicts``/``seqs``: optional
        addresses of u8/u64 arrays of count entries for the per-frame results."""
        lengths_address = lengths.buffer_info()[0]
        done = 0
        offset = 0
        while done < count:
            n = int(_lib.memif_ct_check_packed(self.address, queue, data_address + offset, size - offset,
                                               lengths_address + 4 * done, count - done,
                                               verdicts + done if verdicts else None,
                                               seqs + 8 * done if seqs else None))
            check(n, "memif_ct_check_packed")
            if done + n == count:
                return
            offset += sum(lengths[done:done + n])
            done += n
            if done < count:  # stopped at a seq outside the window
                if not self._grow(int(self._c.need_seq)):
                    self.far += 1
                    self._far_bytes += lengths[done]
                    if verdicts:
                        ctypes.c_uint8.from_address(verdicts + done).value = FRAME_NOT_OURS
                    if seqs:
                        ctypes.c_uint64.from_address(seqs + 8 * done).value = 0
                    offset += lengths[done]
                    done += 1

    def check_pkts(self, queue: int, pkts: PktArray, count: int) -> None:
        """Check the first ``count`` packets of ``pkts`` where they lie (rx_peek_raw filled it),
        received on RX ``queue``; as check_packed, the window grows as needed."""
        if type(queue) is not int or not 0 <= queue <= 0xFFFF:  # (the bare call would cut it to 32 bits)
            _require_int("queue", queue, 0, 0xFFFF)
        done = 0
        step = ctypes.sizeof(Pkt)
        while done < count:
            at = pkts.arg if not done else ctypes.c_void_p(pkts.address + step * done)
            n = check(check_pkts_raw(self.arg, queue, at, count - done, None, None), "memif_ct_check_pkts")
            done += n
            if done < count and not self._grow(int(self._c.need_seq)):  # stopped at a seq outside the window
                self.far += 1
                self._far_bytes += int(Pkt.from_address(pkts.address + step * done).length)
                done += 1

    def _grow(self, seq: int) -> bool:
        """Move the window to cover ``seq`` too, keeping the bits seen; False if it cannot."""
        c = self._c
        base, bits = int(c.window_base), int(c.window_bits)
        lo = max(0, seq - self._SLACK) & ~7
        hi = seq + 1
        if bits:
            lo, hi = min(lo, base), max(hi, base + bits)
        if hi - lo > self.MAX_WINDOW_BITS:
            return False
        hi = lo + min(self.MAX_WINDOW_BITS, max(hi - lo, 2 * bits, self._FIRST_WINDOW_BITS))
        new = (ctypes.c_uint8 * ((hi - lo + 7) // 8))()
        if bits:
            shift = (base - lo) // 8
            ctypes.memmove(ctypes.addressof(new) + shift, self._bitmap, (bits + 7) // 8)
        check(int(_lib.memif_ct_checker_set_window(self.address, new, lo, hi - lo)), "memif_ct_checker_set_window")
        self._bitmap = new
        return True
