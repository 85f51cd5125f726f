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
from collections.abc import Sequence
from types import TracebackType

from . import _native
from .constants import MAX_REGION_SIZE
from .errors import ArgumentError, ArgumentTypeError, ProtocolError

__all__ = ["Arena", "Region", "huge_page_size"]

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
        self.hugetlb = False  # backed by huge pages (a zero-copy arena segment may be)
        self.created = False  # True for a region this process made (client), False for a peer's
        try:
            self._mmap = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            self._pin = _native.Pinned(self._mmap)
        except BaseException:
            self.close()
            raise

    @classmethod
    def create(cls, size: int, *, index: int = 0, name: str = "memif-ct region", hugetlb: bool = False) -> Region:
        """Client side: a new memfd of ``size`` bytes sealed against shrinking, mapped and
        zero-filled. ``hugetlb``: backed by huge pages (``MFD_HUGETLB``; ``size`` must be a
        multiple of the huge page size); OSError if the system cannot provide them."""
        if not isinstance(size, int) or isinstance(size, bool):
            raise ArgumentTypeError(f"region size must be an int, not {type(size).__name__}")
        if not 0 < size <= MAX_REGION_SIZE:
            raise ArgumentError(f"region size={size} is out of range: expected 1..{MAX_REGION_SIZE}")
        flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | (os.MFD_HUGETLB if hugetlb else 0)
        fd = os.memfd_create(name, flags)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        except BaseException:
            os.close(fd)
            raise
        region = cls(fd, size, index=index)
        region.hugetlb = hugetlb
        region.created = True
        return region

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
            # Measured again once sealed: the file could shrink, then be sealed, in between.
            if stat.S_ISREG(st.st_mode) and (now := os.fstat(fd).st_size) < size:
                raise ProtocolError(f"region {index} file is {now} bytes, smaller than {size}")
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


_PAGE = mmap.PAGESIZE


def huge_page_size() -> int:
    """The default huge page size in bytes (``Hugepagesize`` in /proc/meminfo), 0 if unknown."""
    return _meminfo().get("Hugepagesize", 0)


def _meminfo() -> dict[str, int]:
    """/proc/meminfo: huge page counts as numbers, sizes in bytes."""
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if fields and fields[0].isdigit():
                    out[key] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    except OSError:
        pass
    return out


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class Arena:
    """The packet buffers of a zero-copy client: one memfd segment per queue, each announced to
    the server as a region of its own (``first_index``, ``first_index + 1``, ...).

    Every segment is sealed against shrinking, since the peer maps it. ``hugepages``: True
    demands huge pages (``MFD_HUGETLB``; OSError if the system has too few free), False never
    uses them, None (the default) uses them when /proc/meminfo shows enough free huge pages for
    the whole arena and falls back to normal pages, with a log line, if that fails. Owns its
    regions: close() (or the ``with`` block) unmaps and closes them all.
    """

    def __init__(self, sizes: Sequence[int], *, first_index: int, name: str = "memif-ct arena",
                 hugepages: bool | None = None) -> None:
        if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in sizes):
            raise ArgumentError(f"arena segment sizes must be positive ints, got {list(sizes)!r}")
        if not 1 <= first_index or first_index + len(sizes) - 1 > 254:
            raise ArgumentError(f"arena of {len(sizes)} segments from region {first_index}: "
                                "region indexes must stay within 1..254 (memif allows 255 regions)")
        self.regions: list[Region] = []
        huge = huge_page_size() or (2 << 20)  # 2 MiB where /proc/meminfo does not say
        use_huge = hugepages
        if use_huge is None:
            need = sum(_round_up(n, huge) for n in sizes) // huge
            use_huge = _meminfo().get("HugePages_Free", 0) >= need
        try:
            self._create(sizes, first_index, name, use_huge, huge)
        except OSError as exc:
            self.close()
            if hugepages or not use_huge:
                raise
            log.info("memif-ct %s: huge pages failed (%s); using normal pages", name, exc.strerror)
            self._create(sizes, first_index, name, False, huge)
        self.hugepages = use_huge and all(r.hugetlb for r in self.regions)

    def _create(self, sizes: Sequence[int], first_index: int, name: str, huge: bool, huge_size: int) -> None:
        try:
            for k, size in enumerate(sizes):
                rounded = _round_up(size, huge_size if huge else _PAGE)
                self.regions.append(Region.create(rounded, index=first_index + k, name=f"{name} {k}", hugetlb=huge))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Unmap and close every segment. Idempotent."""
        for region in self.regions:
            region.close()
        self.regions = []

    def __enter__(self) -> Arena:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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
