"""memif-ct: the memif shared-memory packet interface for Python.

Wire-compatible with DPDK's net/memif PMD, FD.io VPP and libmemif. Importing the package loads
its C data-path library (built at install time) and checks its ABI version.
"""

from __future__ import annotations

from . import _native
from .config import InterfaceConfig
from .control import Socket
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    ConfigError,
    LinkTimeout,
    MemifError,
    NativeArgumentError,
    NativeLibraryError,
    NotConnectedError,
    PeerDisconnected,
    ProtocolError,
    SocketError,
)
from .interface import Interface
from .queue import Queue, RxBurst, TxBuffers

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "ConfigError",
    "Interface",
    "InterfaceConfig",
    "LinkTimeout",
    "MemifError",
    "NativeArgumentError",
    "NativeLibraryError",
    "NotConnectedError",
    "PeerDisconnected",
    "ProtocolError",
    "Queue",
    "RxBurst",
    "TxBuffers",
    "Socket",
    "SocketError",
    "__version__",
    "copy_method",
    "library_info",
]


copy_method = _native.copy_method


def library_info() -> dict[str, object]:
    """Facts about the loaded C library: path, versions, cache-line size, build flags, and how
    TX copies packets into shared memory (``copy_method``: ``movsb`` or ``memcpy``)."""
    return {
        "package_version": __version__,
        "library_version": _native.library_version(),
        "abi_version": _native.abi_version(),
        "library_path": str(_native.LIBRARY_PATH),
        "cacheline_size": _native.cacheline_size(),
        "build_info": _native.build_info(),
        "copy_method": _native.copy_method(),
    }
