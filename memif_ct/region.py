"""Shared-memory regions: memfd creation (client) and mapping a peer's fd (server).

memif-protocol.md section 5: the client creates every region (memfd, F_SEAL_SHRINK, ftruncate,
mmap MAP_SHARED); the server maps what it is sent. A region owns its fd and its mapping and
releases both on close(); use it as a context manager.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import stat
from types import TracebackType

from . import _native
from .constants import MAX_REGION_SIZE
from .errors import ArgumentError, ArgumentTypeError, ProtocolError

__all__ = ["Region"]

log = logging.getLogger(__name__)


class Region:
    """One mapped memif region. ``address`` is where it is mapped in this process."""

    def __init__(self, fd: int, size: int, *, index: int = 0) -> None:
        """Map ``size`` bytes of ``fd`` shared; the Region takes ownership of ``fd``."""
        self.index = index
        self.size = size
        self._fd = fd
        self._mmap: mmap.mmap | None = None
        self._pin: _native.Pinned | None = None
        try:
            self._mmap = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            self._pin = _native.Pinned(self._mmap)
        except BaseException:
            self.close()
            raise

    @classmethod
    def create(cls, size: int, *, index: int = 0, name: str = "memif-ct region") -> Region:
        """Client side: a new sealed memfd of ``size`` bytes, mapped and zero-filled."""
        if not isinstance(size, int) or isinstance(size, bool):
            raise ArgumentTypeError(f"region size must be an int, not {type(size).__name__}")
        if not 0 < size <= MAX_REGION_SIZE:
            raise ArgumentError(f"region size={size} is out of range: expected 1..{MAX_REGION_SIZE}")
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, size, index=index)

    @classmethod
    def from_peer(cls, fd: int, size: int, *, index: int, allow_unsealed_hugetlbfs: bool = False) -> Region:
        """Server side: map a region fd a client sent. Takes ownership of ``fd``.

        Raises ProtocolError (closing ``fd``) if the fd cannot back ``size`` bytes: mapping past
        the end of a file would turn the first access into SIGBUS. For the same reason the file
        must be sealed against shrinking, unless it is on hugetlbfs and
        ``allow_unsealed_hugetlbfs`` is set (``accept-unsealed-hugetlbfs=yes``).
        """
        try:
            if not 0 < size <= MAX_REGION_SIZE:
                raise ProtocolError(f"region {index} size {size} out of range")
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)):
                raise ProtocolError(f"region {index} fd is not a mappable file")
            if stat.S_ISREG(st.st_mode) and st.st_size < size:
                raise ProtocolError(f"region {index} file is {st.st_size} bytes, smaller than {size}")
            if not _shrink_sealed(fd):
                _check_unsealed(fd, index, allow_unsealed_hugetlbfs)
        except BaseException:
            os.close(fd)
            raise
        try:
            return cls(fd, size, index=index)
        except OSError as exc:
            raise ProtocolError(f"region {index} mmap failed: {exc.strerror}") from exc

    @property
    def fd(self) -> int:
        """The region's file descriptor (what travels in ADD_REGION)."""
        if self._fd < 0:
            raise ArgumentError("region is closed")
        return self._fd

    @property
    def address(self) -> int:
        """Address of the mapping in this process."""
        if self._pin is None:
            raise ArgumentError("region is closed")
        return self._pin.address

    @property
    def closed(self) -> bool:
        return self._fd < 0 and self._mmap is None

    def view(self, offset: int = 0, length: int | None = None) -> memoryview:
        """A memoryview of part of the region; release it before close()."""
        if self._mmap is None:
            raise ArgumentError("region is closed")
        end = self.size if length is None else offset + length
        if not 0 <= offset <= end <= self.size:
            raise ArgumentError(f"view [{offset}, {end}) is outside the region's {self.size} bytes")
        return memoryview(self._mmap)[offset:end]

    def close(self) -> None:
        """Unmap and close the fd. Idempotent."""
        if self._pin is not None:
            self._pin.release()
            self._pin = None
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:
                log.warning("region %d still has views exported; its mapping stays until they go", self.index)
            self._mmap = None
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    raise
            self._fd = -1

    def __enter__(self) -> Region:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<Region {self.index} size={self.size} {state}>"


def _check_unsealed(fd: int, index: int, allow_hugetlbfs: bool) -> None:
    """An fd the peer can still shrink: refused, but for an allowed hugetlbfs file.

    What such a file can do to us: the peer truncates it after we mapped it, and our next access
    to the lost pages (a burst reading or writing a buffer, on any thread) is SIGBUS, which kills
    the process. Sealing (F_SEAL_SHRINK) rules that out, and DPDK, VPP, libmemif and gomemif all
    seal their memfds; but hugetlbfs files cannot be sealed at all (F_ADD_SEALS fails), which is
    why DPDK's zero-copy regions, its hugepage memory segments, come unsealed. Accepting one means
    trusting that peer with our life, so it is an explicit opt-in. Whether the file is on hugetlbfs
    is asked of the received fd itself (fstatfs), never of a path: a peer in its own user and
    mount namespace can mount a tmpfs wherever a hugetlbfs mount point seems to be.
    """
    try:
        on_hugetlbfs = _native.fd_fs_magic(fd) == _native.HUGETLBFS_MAGIC
    except OSError:
        on_hugetlbfs = False
    if not on_hugetlbfs:
        raise ProtocolError(f"region {index} fd is not sealed against shrinking")
    if not allow_hugetlbfs:  # the reason fits the 95 bytes of a DISCONNECT, index up to 255
        raise ProtocolError(
            f"region {index} fd is not sealed against shrinking (hugetlbfs: needs accept-unsealed-hugetlbfs=yes)"
        )
    log.warning("region %d is an unsealed hugetlbfs file (accept-unsealed-hugetlbfs=yes): "
                "trusting the peer not to shrink it", index)


def _shrink_sealed(fd: int) -> bool:
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK)
    except OSError:
        return False
