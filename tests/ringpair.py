"""Test helper: one memfd region laid out by the client and mapped a second time as the server.

Both sides get their own mapping (different addresses, same pages) and their own region table,
as two processes would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from memif_ct import _native, constants as c
from memif_ct.queue import Queue
from memif_ct.region import Region


@dataclass
class RingPair:
    layout: _native.Layout
    client_region: Region
    server_region: Region
    client_table: _native.RegionTable
    server_table: _native.RegionTable
    client_tx: list[Queue] = field(default_factory=list)  # S2M
    client_rx: list[Queue] = field(default_factory=list)  # M2S
    server_rx: list[Queue] = field(default_factory=list)  # S2M
    server_tx: list[Queue] = field(default_factory=list)  # M2S

    def ring_view(self, ring_type: int, index: int, *, server: bool = True) -> memoryview:
        region = self.server_region if server else self.client_region
        return region.view(self.layout.ring_offset(ring_type, index), self.layout.ring_bytes)

    def close(self) -> None:
        for q in self.client_tx + self.client_rx + self.server_rx + self.server_tx:
            q.detach()
        self.client_table.clear()
        self.server_table.clear()
        self.client_region.close()
        self.server_region.close()
        for q in self.client_tx + self.client_rx + self.server_rx + self.server_tx:
            q.release()


def make_pair(num_s2m: int = 1, num_m2s: int = 1, log2_ring_size: int = 10, buffer_size: int = 2048) -> RingPair:
    layout = _native.Layout.compute(num_s2m, num_m2s, log2_ring_size, buffer_size)
    client_region = Region.create(layout.total_size)
    server_region = Region(os.dup(client_region.fd), layout.total_size)
    assert client_region.address != server_region.address
    ct, st = _native.RegionTable(1), _native.RegionTable(1)
    ct.set(0, client_region.address, layout.total_size)
    st.set(0, server_region.address, layout.total_size)
    pair = RingPair(layout, client_region, server_region, ct, st)
    for ring_type, count in ((c.RING_TYPE_S2M, num_s2m), (c.RING_TYPE_M2S, num_m2s)):
        for i in range(count):
            off = layout.ring_offset(ring_type, i)
            boff = layout.buffer_offset(ring_type, i)
            _native.ring_init(client_region.address + off, log2_ring_size, 0, boff, buffer_size)
            # One eventfd per ring, shared by both ends as with a real peer.
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            cq = Queue(_native.CQueue(
                client_region.address + off, log2_ring_size, role=c.ROLE_CLIENT, ring_type=ring_type,
                regions=ct, buffer_region=0, buffer_offset=boff, buffer_size=buffer_size,
            ), efd, index=i)
            sq = Queue(_native.CQueue(
                server_region.address + off, log2_ring_size, role=c.ROLE_SERVER, ring_type=ring_type, regions=st
            ), os.dup(efd), index=i)
            if ring_type == c.RING_TYPE_S2M:
                pair.client_tx.append(cq)
                pair.server_rx.append(sq)
            else:
                cq.refill()
                pair.client_rx.append(cq)
                pair.server_tx.append(sq)
    return pair


def transfer(tx: Queue, rx: Queue, packets: list[bytes], burst: int = 32) -> list[bytes]:
    """Send every packet tx -> rx in bursts, draining as needed; return what arrived."""
    got: list[bytes] = []
    i = 0
    stalls = 0
    while i < len(packets):
        n = tx.tx_burst(packets[i : i + burst])
        i += n
        got.extend(rx.rx_burst(256))
        stalls = stalls + 1 if n == 0 else 0
        assert stalls < 1000, "transfer stalled"
    for _ in range(100):
        more = rx.rx_burst(256)
        if not more:
            break
        got.extend(more)
    return got
