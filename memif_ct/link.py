"""One connection's shared memory and ring queues: built by a client, mapped by a server.

The handshake (handshake.py, driven by control.py) decides *what* a link is; this module owns
*the resources*: regions, the region table the C code validates against, and a Queue per ring
(which owns the ring's eventfd). A PendingLink collects them during the handshake and either
becomes a Link or is released whole (memif-protocol.md section 5).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import _native, constants as c, handshake as hs
from .config import InterfaceConfig
from .errors import NativeArgumentError, ProtocolError
from .queue import MemoryMap, Queue
from .region import Arena, Region

__all__ = ["Link", "PendingLink"]


@dataclass(eq=False)
class Link:
    """Everything one connected link owns: released together by close()."""

    regions: list[Region]
    table: _native.RegionTable
    memory: MemoryMap  # views of the regions, for the buffer API
    rx: list[Queue]
    tx: list[Queue]
    log2_ring_size: int
    buffer_size: int | None  # known only to the client (the server learns it from descriptors)
    peer_name: str
    peer_if_name: str
    zero_copy: bool = False  # client: packet buffers in an arena of their own regions (1..k)
    up_since: float = field(default_factory=time.monotonic)

    @property
    def ring_size(self) -> int:
        return 1 << self.log2_ring_size

    def close(self) -> None:
        """Detach every queue, forget the regions, unmap them, close the eventfds: in that
        order, so nothing can reach unmapped memory."""
        for queue in self.rx + self.tx:
            queue.detach()
        self.table.clear()
        self.memory.release()
        for region in self.regions:
            region.close()
        for queue in self.rx + self.tx:
            queue.release()
        self.regions.clear()


def close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def new_eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def _ring_kind(ring_type: int) -> str:
    return "S2M" if ring_type == c.RING_TYPE_S2M else "M2S"


class PendingLink:
    """What a handshake has built so far; release() frees whatever is here."""

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.region_fds: dict[int, tuple[int, int]] = {}  # server: index -> (fd, size)
        self.rings: list[tuple[hs.RingAdded, int]] = []  # server: ring and its eventfd
        # Client: each ring bound to its queue right after ring_init, before the server has the
        # region, so the queue's own index comes from us and never from a peer's write.
        self.client_table: _native.RegionTable | None = None
        self.client_queues: list[tuple[int, Queue]] = []  # (ring type, queue owning its eventfd)
        self.layout: _native.Layout | None = None
        self.memory: MemoryMap | None = None
        self.zero_copy = False

    def release(self) -> None:
        for _type, queue in self.client_queues:
            queue.detach()
        if self.client_table is not None:
            self.client_table.clear()
            self.client_table = None
        if self.memory is not None:
            self.memory.release()
            self.memory = None
        for region in self.regions:
            region.close()
        self.regions.clear()
        for _type, queue in self.client_queues:
            queue.release()
        self.client_queues.clear()
        for fd, _size in self.region_fds.values():
            close_fd(fd)
        self.region_fds.clear()
        for _ring, fd in self.rings:
            close_fd(fd)
        self.rings.clear()

    # ---- client: create --------------------------------------------------------------------

    def create_client_memory(self, cfg: InterfaceConfig, neg: hs.Negotiated
                             ) -> tuple[list[hs.RegionSpec], list[hs.RingSpec]]:
        """Region 0 with every ring, then (copy mode) every ring's buffers: the DPDK/VPP layout;
        zero-copy: region 0 holds only the rings and each queue's buffers are an arena segment
        of their own (regions 1..k, S2M queues then M2S). An eventfd per ring. Returns what the
        handshake announces in ADD_REGION / ADD_RING."""
        layout = _native.Layout.compute(neg.num_s2m, neg.num_m2s, neg.log2_ring_size, cfg.buffer_size)
        zero_copy = self.zero_copy = cfg.zero_copy
        ring_size, bsize = 1 << neg.log2_ring_size, cfg.buffer_size
        region = Region.create(layout.buffers_offset if zero_copy else layout.total_size,
                               name=f"memif-ct {cfg.name}")
        self.regions.append(region)
        self.layout = layout
        ends = [(t, i) for t, count in ((c.RING_TYPE_S2M, neg.num_s2m), (c.RING_TYPE_M2S, neg.num_m2s))
                for i in range(count)]
        if zero_copy:  # TX: a ring in flight plus as many held by the application; RX: a ring
            sizes = [(2 if t == c.RING_TYPE_S2M else 1) * ring_size * bsize for t, _i in ends]
            self.regions.extend(Arena(sizes, first_index=1, name=f"memif-ct {cfg.name} arena").regions)
        table = self.client_table = _native.RegionTable(len(self.regions))
        for r in self.regions:
            table.set(r.index, r.address, r.size)
        memory = self.memory = MemoryMap([(r.address, r.view()) for r in self.regions])
        rings: list[hs.RingSpec] = []
        for k, (ring_type, i) in enumerate(ends):
            offset = layout.ring_offset(ring_type, i)
            if zero_copy:
                buf_region, buf = _native.NO_REGION, 0
                seg = self.regions[1 + k]
                pool: _native.Pool | None = _native.Pool([(seg.address, seg.size, seg.index, 0)], bsize)
            else:  # copy mode: TX takes this ring's own buffers from a pool, so that any may go in any slot
                buf_region, buf = 0, layout.buffer_offset(ring_type, i)
                pool = None
                if ring_type == c.RING_TYPE_S2M:
                    pool = _native.Pool([(region.address + buf, ring_size * bsize, 0, buf)], bsize)
            _native.ring_init(region.address + offset, neg.log2_ring_size, buf_region, buf, bsize)
            cqueue = _native.CQueue(
                region.address + offset, neg.log2_ring_size, role=c.ROLE_CLIENT, ring_type=ring_type,
                regions=table, buffer_region=buf_region, buffer_offset=buf, buffer_size=bsize,
            )
            efd = new_eventfd()
            try:
                queue = Queue(cqueue, efd, index=i)
            except BaseException:
                close_fd(efd)
                raise
            self.client_queues.append((ring_type, queue))
            queue.attach_memory(memory, pool)
            rings.append(hs.RingSpec(ring_type, i, 0, offset, neg.log2_ring_size, efd))
        return [hs.RegionSpec(r.index, r.size, r.fd) for r in self.regions], rings

    def client_link(self, machine: hs.ClientHandshake, peer_if_name: str) -> Link:
        """Hand everything over to a Link (CONNECTED arrived)."""
        assert self.layout is not None and self.client_table is not None and machine.negotiated is not None
        assert self.memory is not None
        link = Link(
            regions=self.regions, table=self.client_table, memory=self.memory,
            rx=[q for ring_type, q in self.client_queues if ring_type == c.RING_TYPE_M2S],
            tx=[q for ring_type, q in self.client_queues if ring_type == c.RING_TYPE_S2M],
            log2_ring_size=self.layout.log2_ring_size, buffer_size=self.layout.buffer_size,
            peer_name=machine.negotiated.peer_name, peer_if_name=peer_if_name, zero_copy=self.zero_copy,
        )
        self.regions, self.client_queues, self.client_table, self.memory = [], [], None, None
        return link

    # ---- server: collect and map -----------------------------------------------------------

    def add_region_fd(self, index: int, fd: int, size: int) -> None:
        self.region_fds[index] = (fd, size)

    def add_ring(self, ring: hs.RingAdded, fd: int) -> None:
        """Keep a ring's eventfd (owned from here, closed on release) after checking it is one."""
        self.rings.append((ring, fd))
        _check_eventfd(fd, ring)

    def server_link(self, machine: hs.ServerHandshake, peer_if_name: str, *,
                    allow_unsealed_hugetlbfs: bool = False) -> Link:
        """Map the client's regions and bind every ring (protocol s5: accept any layout)."""
        for index in sorted(self.region_fds):
            fd, size = self.region_fds.pop(index)
            self.regions.append(Region.from_peer(fd, size, index=index,
                                                 allow_unsealed_hugetlbfs=allow_unsealed_hugetlbfs))
        table = _native.RegionTable(len(self.regions))
        for region in self.regions:
            table.set(region.index, region.address, region.size)
        memory = MemoryMap([(r.address, r.view()) for r in self.regions])
        rx: dict[int, Queue] = {}
        tx: dict[int, Queue] = {}
        try:
            while self.rings:
                ring, efd = self.rings[0]
                address = self.regions[ring.region].address + ring.offset
                try:
                    cqueue = _native.CQueue(address, ring.log2_ring_size, role=c.ROLE_SERVER,
                                            ring_type=ring.type, regions=table)
                except NativeArgumentError as exc:
                    reason = _RING_REFUSALS.get(exc.code, "outside its region")
                    raise ProtocolError(f"{_ring_kind(ring.type)} ring {ring.index}: {reason}") from exc
                queue = Queue(cqueue, efd, index=ring.index)
                (rx if ring.type == c.RING_TYPE_S2M else tx)[ring.index] = queue
                self.rings.pop(0)  # the queue owns the eventfd now
                queue.attach_memory(memory)
        except BaseException:
            for queue in (*rx.values(), *tx.values()):
                queue.detach()
            table.clear()
            memory.release()
            for queue in (*rx.values(), *tx.values()):
                queue.release()
            raise
        assert machine.log2_ring_size is not None  # CONNECT was accepted: every ring agrees on it
        link = Link(
            regions=self.regions, table=table, memory=memory,
            rx=[rx[i] for i in sorted(rx)], tx=[tx[i] for i in sorted(tx)],
            log2_ring_size=machine.log2_ring_size, buffer_size=None, peer_name=machine.peer_name or "",
            peer_if_name=peer_if_name,
        )
        self.regions = []
        return link


_RING_REFUSALS = {_native.ERR_COOKIE: "cookie mismatch", _native.ERR_ALIGN: "misaligned"}


def _check_eventfd(fd: int, ring: hs.RingAdded) -> None:
    """A ring's interrupt fd must be a plain eventfd: the data path reads and writes 8 bytes on
    it without waiting. A pipe or a file passed instead would block it or write into the file,
    and a semaphore eventfd (EFD_SEMAPHORE) hands out its counter one by one, so a single peer
    write of 2^62 would keep a waiting receiver busy forever."""
    kind = _ring_kind(ring.type)
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
            info = f.read()
    except OSError:
        target, info = None, ""  # no /proc: cannot tell, fall through to O_NONBLOCK
    if target is not None and target != "anon_inode:[eventfd]":
        raise ProtocolError(f"{kind} ring {ring.index} interrupt fd is not an eventfd")
    # Kernels since 6.2 list the flag; older ones cannot tell us, and get the benefit of the doubt.
    if any(line.split() == ["eventfd-semaphore:", "1"] for line in info.splitlines()):
        raise ProtocolError(f"{kind} ring {ring.index} interrupt fd is a semaphore eventfd")
    # Peers create theirs with EFD_NONBLOCK; make sure (our own reads no longer depend on it).
    os.set_blocking(fd, False)
