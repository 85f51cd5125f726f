"""One connection's shared memory and ring queues: built by a client, mapped by a server.

The handshake (protocol.py, driven by control.py) decides *what* a link is; this module owns
*the resources*: regions, the region table the C code validates against, a queue per ring and
the rings' eventfds. A PendingLink collects them during the handshake and either becomes a
LinkResources or is released whole (memif-protocol.md section 5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import _native, constants as c, protocol as p
from .config import InterfaceConfig
from .errors import ProtocolError
from .region import Region

__all__ = ["LinkResources", "PendingLink", "QueueRing"]


@dataclass
class QueueRing:
    """One ring as this side drives it: the C queue plus the ring's interrupt eventfd."""

    native: _native.NativeQueue
    eventfd: int


@dataclass
class LinkResources:
    """Everything one connected link owns: released together by close()."""

    regions: list[Region]
    table: _native.RegionTable
    rx: list[QueueRing]
    tx: list[QueueRing]
    log2_ring_size: int
    buffer_size: int | None  # known only to the client (the server learns it from descriptors)
    peer_name: str
    peer_if_name: str
    eventfds: list[int] = field(default_factory=list)

    def close(self) -> None:
        """Detach every queue, forget the regions, unmap them, close the eventfds: in that
        order, so nothing can reach unmapped memory."""
        for ring in self.rx + self.tx:
            ring.native.detach()
        self.table.clear()
        for region in self.regions:
            region.close()
        for fd in self.eventfds:
            close_fd(fd)
        self.eventfds.clear()
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
        self.rings: list[tuple[p.RingAdded, int]] = []  # server: ring and its eventfd
        # Client: each ring bound to its queue right after ring_init, before the server has the
        # region, so the queue's own index comes from us and never from a peer's write.
        self.client_table: _native.RegionTable | None = None
        self.client_rings: list[tuple[int, QueueRing]] = []  # (ring type, queue)
        self.eventfds: list[int] = []
        self.layout: _native.Layout | None = None

    def release(self) -> None:
        if self.client_table is not None:
            self.client_table.clear()
            self.client_table = None
        self.client_rings.clear()
        for region in self.regions:
            region.close()
        self.regions.clear()
        for fd, _size in self.region_fds.values():
            close_fd(fd)
        self.region_fds.clear()
        for _ring, fd in self.rings:
            close_fd(fd)
        self.rings.clear()
        for fd in self.eventfds:
            close_fd(fd)
        self.eventfds.clear()

    # ---- client: create --------------------------------------------------------------------

    def create_client_memory(self, cfg: InterfaceConfig, neg: p.Negotiated
                             ) -> tuple[list[p.RegionSpec], list[p.RingSpec]]:
        """One sealed region, rings first then buffers (the DPDK/VPP layout), and an eventfd
        per ring; returns what the handshake announces in ADD_REGION / ADD_RING."""
        layout = _native.Layout.compute(neg.num_s2m, neg.num_m2s, neg.log2_ring_size, cfg.buffer_size)
        region = Region.create(layout.total_size, name=f"memif-ct {cfg.name}")
        self.regions.append(region)
        self.layout = layout
        table = self.client_table = _native.RegionTable(1)
        table.set(0, region.address, region.size)
        rings: list[p.RingSpec] = []
        for ring_type, count in ((c.RING_TYPE_S2M, neg.num_s2m), (c.RING_TYPE_M2S, neg.num_m2s)):
            for i in range(count):
                offset = layout.ring_offset(ring_type, i)
                buf = layout.buffer_offset(ring_type, i)
                _native.ring_init(region.address + offset, neg.log2_ring_size, 0, buf, cfg.buffer_size)
                native = _native.NativeQueue(
                    region.address + offset, neg.log2_ring_size, role=c.ROLE_CLIENT, ring_type=ring_type,
                    regions=table, buffer_region=0, buffer_offset=buf, buffer_size=cfg.buffer_size,
                )
                efd = new_eventfd()
                self.eventfds.append(efd)
                self.client_rings.append((ring_type, QueueRing(native, efd)))
                rings.append(p.RingSpec(ring_type, i, 0, offset, neg.log2_ring_size, efd))
        return [p.RegionSpec(0, layout.total_size, region.fd)], rings

    def client_link(self, machine: p.ClientHandshake, peer_if_name: str) -> LinkResources:
        """Hand everything over to a LinkResources (CONNECTED arrived)."""
        assert self.layout is not None and self.client_table is not None and machine.negotiated is not None
        link = LinkResources(
            regions=self.regions, table=self.client_table,
            rx=[ring for ring_type, ring in self.client_rings if ring_type == c.RING_TYPE_M2S],
            tx=[ring for ring_type, ring in self.client_rings if ring_type == c.RING_TYPE_S2M],
            log2_ring_size=self.layout.log2_ring_size, buffer_size=self.layout.buffer_size,
            peer_name=machine.negotiated.peer_name, peer_if_name=peer_if_name, eventfds=self.eventfds,
        )
        self.regions, self.eventfds, self.client_rings, self.client_table = [], [], [], None
        return link

    # ---- server: collect and map -----------------------------------------------------------

    def add_region_fd(self, index: int, fd: int, size: int) -> None:
        self.region_fds[index] = (fd, size)

    def add_ring(self, ring: p.RingAdded, fd: int) -> None:
        """Keep a ring's eventfd (owned from here, closed on release) after checking it is one."""
        self.rings.append((ring, fd))
        _check_eventfd(fd, ring)

    def server_link(self, machine: p.ServerHandshake, peer_if_name: str) -> LinkResources:
        """Map the client's regions and bind every ring (protocol s5: accept any layout)."""
        for index in sorted(self.region_fds):
            fd, size = self.region_fds.pop(index)
            self.regions.append(Region.from_peer(fd, size, index=index))
        table = _native.RegionTable(len(self.regions))
        for region in self.regions:
            table.set(region.index, region.address, region.size)
        rx: dict[int, QueueRing] = {}
        tx: dict[int, QueueRing] = {}
        for ring, efd in self.rings:
            address = self.regions[ring.region].address + ring.offset
            try:
                native = _native.NativeQueue(address, ring.log2_ring_size, role=c.ROLE_SERVER,
                                             ring_type=ring.type, regions=table)
            except ValueError as exc:
                text = str(exc)
                reason = ("cookie mismatch" if "cookie" in text
                          else "misaligned" if "misaligned" in text else "outside its region")
                table.clear()
                raise ProtocolError(f"{_ring_kind(ring.type)} ring {ring.index}: {reason}") from exc
            (rx if ring.type == c.RING_TYPE_S2M else tx)[ring.index] = QueueRing(native, efd)
        eventfds = [efd for _ring, efd in self.rings]
        self.rings.clear()
        assert machine.log2_ring_size is not None  # CONNECT was accepted: every ring agrees on it
        link = LinkResources(
            regions=self.regions, table=table, rx=[rx[i] for i in sorted(rx)], tx=[tx[i] for i in sorted(tx)],
            log2_ring_size=machine.log2_ring_size, buffer_size=None, peer_name=machine.peer_name or "",
            peer_if_name=peer_if_name, eventfds=eventfds,
        )
        self.regions = []
        return link


def _check_eventfd(fd: int, ring: p.RingAdded) -> None:
    """A ring's interrupt fd must be an eventfd: the data path reads and writes 8 bytes on it
    without waiting, and a pipe or a file passed instead would block it or write into the file."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = None  # no /proc: cannot tell, fall through to O_NONBLOCK
    if target is not None and target != "anon_inode:[eventfd]":
        raise ProtocolError(f"{_ring_kind(ring.type)} ring {ring.index} interrupt fd is not an eventfd")
    # Peers create theirs with EFD_NONBLOCK; make sure (our own reads no longer depend on it).
    os.set_blocking(fd, False)
