"""Exception hierarchy of memif-ct.

Every message names the field (or the peer), the value seen and what was expected, so that a
user can act on it without reading the source.
"""

from __future__ import annotations

__all__ = [
    "MemifError",
    "ConfigError",
    "NativeLibraryError",
    "ProtocolError",
    "PeerDisconnected",
    "NotConnectedError",
]


class MemifError(Exception):
    """Base class of every error raised by memif-ct."""


class ConfigError(MemifError, ValueError):
    """A configuration key or value is unknown or out of range.

    ``key`` is the option name as the user spelt it (DPDK devargs spelling), ``value`` the
    offending value (or ``None`` for a missing key).
    """

    def __init__(self, message: str, *, key: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class NativeLibraryError(MemifError, ImportError):
    """The C data-path library is missing, cannot be loaded, or has the wrong ABI version."""


class ProtocolError(MemifError):
    """A control message broke the memif protocol.

    ``reason`` is the text sent (or to be sent) in the DISCONNECT message; at most 95 bytes.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerDisconnected(MemifError):
    """The peer sent DISCONNECT or closed the control channel."""

    def __init__(self, reason: str, *, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class NotConnectedError(MemifError):
    """A data-path call was made on an interface whose link is down."""
