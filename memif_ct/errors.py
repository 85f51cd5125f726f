"""Exception hierarchy of memif-ct: everything the package raises derives from MemifError.

Every message names the field (or the peer), the value seen and what was expected, so that a
user can act on it without reading the source. Each class but ProtocolError, PeerDisconnected
and NotConnectedError also derives from the built-in exception a Python user would catch for
that kind of failure (ValueError, TypeError, OSError, TimeoutError, ImportError), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "MemifError",
    "ConfigError",
    "ArgumentError",
    "ArgumentTypeError",
    "NativeArgumentError",
    "NativeLibraryError",
    "ProtocolError",
    "PeerDisconnected",
    "NotConnectedError",
    "SocketError",
    "LinkTimeout",
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


class ArgumentError(MemifError, ValueError):
    """An argument of an API call is out of range; the message names it and the allowed range."""


class ArgumentTypeError(MemifError, TypeError):
    """An argument of an API call has the wrong type; the message names it and what is accepted."""


class NativeArgumentError(ArgumentError):
    """The C library rejected a call. ``code`` is the ``memif_ct_error_t`` it returned (see
    ``_native.ERR_*``), ``function`` the C function, ``reason`` its ``memif_ct_strerror`` text."""

    def __init__(self, message: str, *, code: int, function: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.function = function
        self.reason = reason


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
    """A call needs a link (or an open interface) and there is none."""


class SocketError(MemifError, OSError):
    """A control socket could not be bound, listened on or connected, or is closed.

    Built like OSError (``SocketError(errno, text)``), so ``errno`` and ``strerror`` are set
    when the cause was a system call.
    """


class LinkTimeout(MemifError, TimeoutError):
    """A wait for the link (``wait_up``/``wait_down``) ran out of time; the message says which
    interface and the last disconnect reason."""
