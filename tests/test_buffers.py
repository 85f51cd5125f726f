"""The buffer API (alloc_buffers / tx_buffers / rx_buffers) and zero-copy clients (issue 9).

Everything runs through real interfaces on one abstract socket: a memif-ct server (copy mode, as
every server is) and a memif-ct client in copy mode or with ``zero-copy=yes``. What is checked:
bytes in equal bytes out in both directions and both modes, chains, the limits and refusals of
the API, views that are unusable once released, and exact buffer accounting after a million
packets and after a disconnect in the middle of traffic.
"""

from __future__ import annotations

import array
import os
import random
import time

import pytest

import memif_ct
import memif_ct.queue
from memif_ct import ArgumentError

from peers import Loopback

FAST = dict(reconnect_interval_s=0.01, handshake_timeout_s=2.0, interrupt=False)


def buffer_pair(*, zero_copy: bool, log2_ring_size: int = 6, buffer_size: int = 2048, queues: int = 1,
                **extra: object) -> Loopback:
    """A memif-ct server (copy mode, as every server is) and a client, zero-copy or not."""
    return Loopback(f"@memif-ct-buffers-{os.getpid()}-{time.monotonic_ns()}", client_opts={"zero_copy": zero_copy},
                    **{**FAST, **extra}, log2_ring_size=log2_ring_size, buffer_size=buffer_size, rx_queues=queues,
                    tx_queues=queues)


@pytest.fixture
def pair_factory():
    made: list[Loopback] = []

    def make(**opts) -> Loopback:
        p = buffer_pair(**opts)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def payload(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size)


def send_with_buffers(tx: memif_ct.Interface, packets: list[bytes], queue: int = 0) -> int:
    """alloc, fill in place, send; returns how many went (stops at the first short round)."""
    bufs = tx.alloc_buffers(len(packets), size=max(map(len, packets)), queue=queue)
    for buf, pkt in zip(bufs, packets, strict=False):
        buf[:len(pkt)] = pkt
    lengths = [len(p) for p in packets[:len(bufs)]]
    sent = tx.tx_buffers(bufs, lengths, queue=queue)
    if sent < len(bufs):
        tx.free_buffers(bufs[sent:], queue=queue)
    return sent


def receive_with_buffers(rx: memif_ct.Interface, want: int, timeout_s: float = 5.0, queue: int = 0) -> list[bytes]:
    got: list[bytes] = []
    end = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < end:
        with rx.rx_buffers(256, queue=queue) as burst:
            got.extend(bytes(v) for v in burst)
    return got


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("direction", ["client-to-server", "server-to-client"])
def test_buffer_api_bytes_in_equal_bytes_out(pair_factory, zero_copy, direction):
    p = pair_factory(zero_copy=zero_copy)
    assert p.client.details()["zero_copy"] is zero_copy
    assert p.server.details()["zero_copy"] is False
    tx, rx = (p.client, p.server) if direction == "client-to-server" else (p.server, p.client)
    sizes = [1, 60, 64, 1499, 1500, 2047, 2048] * 5
    packets = [payload(i, n) for i, n in enumerate(sizes)]
    sent = 0
    got: list[bytes] = []
    while sent < len(packets):
        n = send_with_buffers(tx, packets[sent:sent + 16])
        sent += n
        got += receive_with_buffers(rx, n)
    assert got == packets
    s = rx.stats()["rx"][0]
    assert (s["packets"], s["bytes"], s["errors"]) == (len(packets), sum(sizes), 0)


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
def test_chains_both_ways_through_every_api(pair_factory, zero_copy):
    """9,000-byte packets in 2,048-byte buffers: tx_burst chains them; rx_buffers hands each up as
    one view (and rx_burst as one bytes); mixed with one-buffer packets of the buffer API."""
    p = pair_factory(zero_copy=zero_copy)
    for tx, rx in ((p.client, p.server), (p.server, p.client)):
        big = [payload(100 + i, 9000) for i in range(8)]
        small = [payload(200 + i, 100 + i) for i in range(8)]
        assert tx.tx_burst(big[:4]) == 4
        assert send_with_buffers(tx, small) == 8
        assert tx.tx_burst(big[4:]) == 4
        got = receive_with_buffers(rx, 16)
        assert got == big[:4] + small + big[4:]
        assert rx.stats()["rx"][0]["chains"] >= 8


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
def test_limits_and_refusals(pair_factory, zero_copy):
    p = pair_factory(zero_copy=zero_copy, buffer_size=1024)
    c = p.client
    with pytest.raises(ValueError, match=r"size=1025 is out of range: expected 1\.\.1024"):
        c.alloc_buffers(1, size=1025)
    with pytest.raises(ValueError, match="count=0 is out of range"):
        c.alloc_buffers(0)
    foreign = memoryview(bytearray(64))
    with pytest.raises(ValueError, match="not a buffer alloc_buffers handed out"):
        c.tx_buffers([foreign])
    bufs = c.alloc_buffers(2, size=64)
    assert [len(b) for b in bufs] == [64, 64]
    with pytest.raises(ValueError, match=r"lengths\[0\]=1025 is out of range"):
        c.tx_buffers(bufs[:1], [1025])
    with pytest.raises(ValueError, match=r"lengths\[0\] is 0"):
        c.tx_buffers(bufs[:1], [0])
    bufs[0][:5] = b"hello"
    assert c.tx_buffers(bufs[:1], [5]) == 1
    with pytest.raises(ValueError):  # sent: the view is released
        bufs[0][0] = 1
    with pytest.raises(ValueError, match="not a buffer alloc_buffers handed out"):
        c.tx_buffers([bufs[1], bufs[1]])  # the same buffer twice
    c.free_buffers(bufs[1:])
    with pytest.raises(ValueError):
        len(bytes(bufs[1]))
    assert receive_with_buffers(p.server, 1) == [b"hello"]


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
def test_views_are_released_with_the_burst(pair_factory, zero_copy):
    p = pair_factory(zero_copy=zero_copy)
    assert p.client.tx_burst([b"a" * 100, b"b" * 200]) == 2
    end = time.monotonic() + 5
    while p.server.rx_queue(0).pending() < 2 and time.monotonic() < end:
        time.sleep(0.001)
    with p.server.rx_buffers(8) as burst:
        views = list(burst)
        assert [bytes(v) for v in views] == [b"a" * 100, b"b" * 200]
        assert all(v.readonly for v in views)
    for v in views:
        with pytest.raises(ValueError):
            v[0]
    assert burst.released
    # The slots went back: the ring takes a full ring again.
    ring = p.client.details()["ring_size"]
    assert p.client.tx_burst([b"x" * 64] * ring) == ring


def test_a_failure_while_building_the_views_gives_the_peeked_slots_back(pair_factory, monkeypatch):
    """Without a burst to release them, peeked slots would block every later receive. Released,
    they count as read (there is no putting a packet back): the next packets come through."""
    p = pair_factory(zero_copy=False)
    assert p.client.tx_burst([b"a" * 100, b"b" * 200]) == 2
    end = time.monotonic() + 5
    while p.server.rx_queue(0).pending() < 2 and time.monotonic() < end:
        time.sleep(0.001)

    def fail(*_args: object, **_kwargs: object) -> bytes:
        raise MemoryError("injected")

    with monkeypatch.context() as m:
        m.setattr(memif_ct._native.PktArray, "raw", fail)  # the burst itself cannot be made
        with pytest.raises(MemoryError, match="injected"):
            p.server.rx_buffers(8)
    assert p.client.tx_burst([b"c" * 300]) == 1
    got: list[bytes] = []
    while not got and time.monotonic() < end:
        got = p.server.rx_burst(8)
    assert got == [b"c" * 300]


def test_views_are_made_when_asked_for(pair_factory, monkeypatch):
    """A burst makes no view until one is asked for; each is made once, and ``lengths`` needs
    none. What a view shows is the packet, by index, negative index, slice and iteration."""
    p = pair_factory(zero_copy=False)
    packets = [bytes([i]) * (10 + i) for i in range(6)] + [b"z" * 5000]  # and a chain
    assert p.client.tx_burst(packets) == len(packets)
    end = time.monotonic() + 5
    while p.server.rx_queue(0).pending() < 9 and time.monotonic() < end:
        time.sleep(0.001)
    made: list[str] = []
    for name in ("view", "window"):
        real = getattr(memif_ct.queue.MemoryMap, name)
        monkeypatch.setattr(memif_ct.queue.MemoryMap, name,
                            lambda self, *a, _real=real, _name=name, **k: made.append(_name) or _real(self, *a, **k))
    with p.server.rx_buffers(16) as burst:
        assert len(burst) == len(packets)
        assert burst.lengths.tolist() == [len(x) for x in packets]
        assert sum(burst.lengths) == sum(map(len, packets))
        assert made == []  # no view yet
        assert bytes(burst[-1]) == packets[-1] and burst[-1] is burst[6]
        assert made == ["view"]  # one, once
        assert [bytes(v) for v in burst[1:5:2]] == [packets[1], packets[3]]
        assert burst[3] is burst[3]
        assert [bytes(v) for v in burst] == packets
        assert all(v.readonly for v in burst)
        with pytest.raises(IndexError):
            burst[7]
    lengths = burst.lengths  # a copy of the table: readable after the release
    assert lengths.tolist() == [len(x) for x in packets]
    with pytest.raises(ValueError, match="released"):
        list(burst)
    # A burst iterated before any view is asked for: one pass of slices, one region lookup.
    assert p.client.tx_burst(packets[:4]) == 4
    made.clear()
    got: list[bytes] = []
    while len(got) < 4 and time.monotonic() < end:
        with p.server.rx_buffers(16) as burst:
            got += [bytes(v) for v in burst]
    assert got == packets[:4] and "view" not in made


def test_a_burst_of_a_link_that_is_down_is_empty(pair_factory):
    p = pair_factory(zero_copy=False, reconnect_interval_s=5.0)
    p.client.disconnect("test: down")
    p.client.wait_down(5)
    with p.client.rx_buffers(8) as burst:
        assert len(burst) == 0 and list(burst) == [] and burst[:] == [] and len(burst.lengths) == 0
    assert len(p.client.alloc_buffers(8, size=64)) == 0


def test_a_failure_while_making_a_view_leaves_the_burst_to_release(pair_factory, monkeypatch):
    """Views are made when asked for: a failure there propagates, and leaving the ``with``
    block still hands the slots back; the views made before it are released with the burst."""
    p = pair_factory(zero_copy=False)
    assert p.client.tx_burst([b"a" * 100, b"b" * 200]) == 2
    end = time.monotonic() + 5
    while p.server.rx_queue(0).pending() < 2 and time.monotonic() < end:
        time.sleep(0.001)
    real_view = memif_ct.queue.MemoryMap.view
    calls: list[int] = []

    def second_fails(self: memif_ct.queue.MemoryMap, *args: object, **kwargs: object) -> memoryview:
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("injected")
        return real_view(self, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(memif_ct.queue.MemoryMap, "view", second_fails)
        with pytest.raises(MemoryError, match="injected"), p.server.rx_buffers(8) as burst:
            assert len(burst) == 2 and list(burst.lengths) == [100, 200]
            first = burst[0]
            assert bytes(first) == b"a" * 100
            burst[1]
    assert burst.released
    with pytest.raises(ValueError):
        bytes(first)
    with pytest.raises(ValueError, match="released"):
        burst[1]
    assert p.client.tx_burst([b"c" * 300]) == 1
    got: list[bytes] = []
    while not got and time.monotonic() < end:
        got = p.server.rx_burst(8)
    assert got == [b"c" * 300]


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("sender", ["client", "server"])
def test_tx_buffers_objects_views_made_when_asked_for(pair_factory, zero_copy, sender):
    """alloc_buffers hands out a TxBuffers: views made on access, the object (or a slice of it)
    sent or freed without any; a buffer sent or freed is never sent again, whichever way it went."""
    p = pair_factory(zero_copy=zero_copy)
    tx, rx = (p.client, p.server) if sender == "client" else (p.server, p.client)
    if sender == "server":  # the client posts its RX buffers once it is up
        end = time.monotonic() + 5
        while tx.tx_queue(0).free() < 8 and time.monotonic() < end:
            time.sleep(0.001)
    bufs = tx.alloc_buffers(8, size=100)
    assert isinstance(bufs, memif_ct.TxBuffers) and len(bufs) == 8
    head = bufs[:3]
    assert isinstance(head, memif_ct.TxBuffers) and len(head) == 3 and len(bufs[5:]) == 3 and len(bufs[9:]) == 0
    assert isinstance(bufs[::2], list) and len(bufs[::2]) == 4
    assert bufs[1] is head[1] and bufs[-1] is bufs[7] and bufs[-8] is bufs[0]
    with pytest.raises(IndexError):
        bufs[8]
    with pytest.raises(TypeError):
        bufs["0"]  # type: ignore[call-overload]
    for i, view in enumerate(head):
        view[:] = bytes([i]) * 100
    assert tx.tx_buffers(head, [10, 20, 30]) == 3  # the slice object itself: no view looked up
    tx.free_buffers(bufs[6:])  # never asked for: given back without a view
    with pytest.raises(ValueError):
        bytes(bufs[7])  # a released stand-in
    assert all(v.nbytes == 100 for v in bufs[3:6])
    with pytest.raises(ValueError):  # sent: released
        bufs[0][0] = 1
    with pytest.raises(ValueError, match="not a buffer alloc_buffers handed out"):
        tx.tx_buffers(bufs[:4])  # bufs[0] went already
    with pytest.raises(ValueError, match="not a buffer alloc_buffers handed out"):
        tx.tx_buffers([bufs[3], bufs[3]])
    bufs[3][:] = b"x" * 100
    assert tx.tx_buffers([bufs[3]]) == 1  # a list of views: located one by one
    with pytest.raises(ValueError, match="not a buffer alloc_buffers handed out"):
        tx.tx_buffers(bufs[3:5])  # bufs[3] went by the list
    tx.free_buffers(bufs[4:6])
    got = receive_with_buffers(rx, 4)
    assert got == [b"\x00" * 10, b"\x01" * 20, b"\x02" * 30, b"x" * 100]
    if sender == "client":
        counts = tx.tx_queue(0).buffer_counts()
        assert counts["app"] == 0, counts
    # The freed and sent ones come round again, and a stale object cannot send them.
    again = tx.alloc_buffers(8, size=100)
    assert len(again) == 8
    with pytest.raises(ValueError, match="not a buffer alloc_buffers handed out"):
        tx.tx_buffers(bufs)
    for i, view in enumerate(again):
        view[:] = bytes([0x40 + i]) * 100
    assert tx.tx_buffers(again) == 8
    assert receive_with_buffers(rx, 8) == [bytes([0x40 + i]) * 100 for i in range(8)]


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("sender", ["client", "server"])
def test_tx_buffers_write_fills_a_burst_in_one_call(pair_factory, zero_copy, sender):
    p = pair_factory(zero_copy=zero_copy)
    tx, rx = (p.client, p.server) if sender == "client" else (p.server, p.client)
    end = time.monotonic() + 5
    while tx.tx_queue(0).free() < 8 and time.monotonic() < end:
        time.sleep(0.001)
    packets = [payload(300 + i, 20 + 30 * i) for i in range(6)]
    bufs = tx.alloc_buffers(6, size=200)
    assert len(bufs) == 6
    data, lengths = b"".join(packets), array.array("I", map(len, packets))
    for view in bufs:
        view[:] = b"\xee" * 200
    with bufs[3]:  # a view the caller released: write does not go through it
        pass
    with pytest.raises(ValueError, match=r"lengths\[5\]=201 is out of range: expected 1\.\.200"):
        bufs.write(data + b"x" * 31, array.array("I", [*lengths[:5], 201]))
    with pytest.raises(ValueError, match="more than the"):
        bufs.write(data[:-1], lengths)
    with pytest.raises(ValueError, match="lengths has 5 entries for 6 buffers"):
        bufs.write(data, lengths[:5])
    with pytest.raises(TypeError, match="lengths must be given"):
        bufs.write(data, None)
    with pytest.raises(ValueError, match="lengths are out of range"):
        bufs.write(data, [-1] * 6)
    assert all(bytes(bufs[i]) == b"\xee" * 200 for i in (0, 1, 2, 4, 5))  # refused: nothing written
    bufs[3:3].write(b"", [])  # nothing to do
    bufs[4:].write(memoryview(data)[-(lengths[4] + lengths[5]):], lengths[4:])  # a slice, read-only data
    bufs[:4].write(bytearray(data[:-(lengths[4] + lengths[5])]), list(lengths[:4]))
    assert bytes(bufs[2][:lengths[2]]) == packets[2]  # views see what was written
    assert tx.tx_buffers([bufs[0]]) == 1  # a buffer's own view sends what was written, too
    assert tx.tx_buffers(bufs[1:]) == 5  # and the object: the written lengths, by default
    assert receive_with_buffers(rx, 6) == packets
    with pytest.raises(ValueError, match="sent or freed already"):
        bufs.write(data, lengths)


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
def test_a_short_allocation_writes_and_sends_what_it_got(pair_factory, zero_copy):
    """With the pool nearly empty alloc_buffers hands out fewer buffers than asked for; that
    shorter burst is written in one call and sent like a full one, and nothing leaks."""
    p = pair_factory(zero_copy=zero_copy)
    txq = p.client.tx_queue(0)
    total = txq.buffer_counts()["total"]
    held = []
    while txq.buffer_counts()["free"] > 5:  # leave 5 free, whatever the pool's size
        held.append(p.client.alloc_buffers(min(64, txq.buffer_counts()["free"] - 5), size=64))
    bufs = p.client.alloc_buffers(64, size=64)
    assert len(bufs) == 5
    packets = [payload(700 + i, 40 + i) for i in range(5)]
    bufs.write(b"".join(packets), array.array("I", map(len, packets)))
    assert p.client.tx_buffers(bufs) == 5
    assert receive_with_buffers(p.server, 5) == packets
    for h in held:
        p.client.free_buffers(h)
    assert _settle(txq) == {"free": total, "app": 0, "ring": 0, "total": total}


def test_what_a_txbuffers_spans_cannot_be_changed(pair_factory):
    """The queue trusts span for the index range it hands C: it is read-only."""
    p = pair_factory(zero_copy=False)
    bufs = p.client.alloc_buffers(2, size=64)
    with pytest.raises(AttributeError):
        bufs.span = (bufs.span[0], 0, 10**6)  # type: ignore[misc]
    assert bufs.span[1:] == (0, 2) and bufs[1:].span[1:] == (1, 2)
    p.client.free_buffers(bufs)
    assert p.client.tx_queue(0).buffer_counts()["app"] == 0


def test_buffers_sent_before_any_view_was_made_get_none(pair_factory):
    """Sent or freed without a view, a buffer stays gone when the rest are iterated later."""
    p = pair_factory(zero_copy=False)
    bufs = p.client.alloc_buffers(6, size=64)
    bufs[:2].write(b"a" * 128, [64, 64])
    assert p.client.tx_buffers(bufs[:2]) == 2
    p.client.free_buffers(bufs[4:])
    views = list(bufs)
    for view in (*views[:2], *views[4:]):
        with pytest.raises(ValueError):
            view[0] = 1
    views[2][:] = b"b" * 64
    views[3][:] = b"c" * 64
    assert p.client.tx_buffers(bufs[2:4]) == 2
    assert receive_with_buffers(p.server, 4) == [b"a" * 64] * 2 + [b"b" * 64, b"c" * 64]
    assert p.client.tx_queue(0).buffer_counts()["app"] == 0


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("sender", ["client", "server"])
def test_a_burst_sent_or_freed_whole_without_a_view(pair_factory, zero_copy, sender):
    """The fast path keeps no view list, no per-buffer sizes: what it skips must still hold."""
    p = pair_factory(zero_copy=zero_copy)
    tx, rx = (p.client, p.server) if sender == "client" else (p.server, p.client)
    end = time.monotonic() + 5
    while tx.tx_queue(0).free() < 16 and time.monotonic() < end:
        time.sleep(0.001)
    packets = [payload(500 + i, 60 + i) for i in range(8)]
    bufs = tx.alloc_buffers(8, size=100)
    assert len(bufs) == 8
    bufs.write(b"".join(packets), [len(x) for x in packets])
    assert tx.tx_buffers(bufs) == 8
    assert receive_with_buffers(rx, 8) == packets
    for again in (lambda: tx.tx_buffers(bufs), lambda: tx.tx_buffers(bufs[5:]), lambda: tx.free_buffers(bufs),
                  lambda: bufs.write(b"x" * 8, [1] * 8)):
        with pytest.raises(ArgumentError, match=r"bufs\[0\] .*sent or freed already"):
            again()
    for view in (bufs[7], *bufs):  # asked for afterwards: released stand-ins
        with pytest.raises(ValueError):
            view[0]
    # Freed whole, then refused.
    bufs = tx.alloc_buffers(8, size=100)
    tx.free_buffers(bufs)
    with pytest.raises(ArgumentError, match=r"bufs\[0\] .*sent or freed already"):
        tx.tx_buffers(bufs[3:])
    # Never written: each buffer sends the size asked for; written in part: the rest do.
    bufs = tx.alloc_buffers(4, size=50)
    bufs[1:3].write(b"ab" * 15, [10, 20])
    assert tx.tx_buffers(bufs) == 4
    got = receive_with_buffers(rx, 4)
    assert list(map(len, got)) == [50, 10, 20, 50]
    assert got[1] == b"ab" * 5 and got[2] == b"ab" * 10
    if sender == "client":
        assert tx.tx_queue(0).buffer_counts()["app"] == 0


def test_tx_buffers_of_a_link_that_went_down(pair_factory):
    p = pair_factory(zero_copy=False, reconnect_interval_s=1.0)
    txq = p.client.tx_queue(0)
    bufs = p.client.alloc_buffers(4, size=64)
    made = bufs[0]
    p.client.disconnect("test: views of a gone link")
    p.client.wait_down(5)
    assert txq.buffer_counts()["app"] == 0
    for view in (made, bufs[1]):  # made before, or asked for after: released either way
        with pytest.raises(ValueError):
            view[0]
    assert p.client.tx_buffers(bufs) == 0
    p.client.wait_up(5)
    with pytest.raises(ValueError, match="another queue's, or a link that went down"):
        p.client.tx_buffers(bufs)


def test_reflect_onto_its_own_queue_is_refused(pair_factory):
    p = pair_factory(zero_copy=False)
    q = p.server.rx_queue(0)
    with pytest.raises(ArgumentError, match="another queue"):
        q.reflect(q, 8)


def test_a_server_sends_in_the_order_handed_out(pair_factory):
    p = pair_factory(zero_copy=False)
    bufs = p.server.alloc_buffers(3, size=100)
    assert len(bufs) == 3
    with pytest.raises(ValueError, match="in the order it handed them out"):
        p.server.tx_buffers([bufs[1]])
    with pytest.raises(ValueError, match="only the buffers alloc_buffers handed out last"):
        p.server.free_buffers([bufs[0]])
    for i, b in enumerate(bufs):
        b[:] = bytes([i]) * 100
    assert p.server.tx_buffers(bufs[:2]) == 2
    p.server.free_buffers(bufs[2:])
    assert receive_with_buffers(p.client, 2) == [b"\x00" * 100, b"\x01" * 100]


def test_zero_copy_client_regions_and_accounting_after_a_million_packets(pair_factory):
    """Region 0 holds only the rings; each queue's buffers are an arena region of its own.
    After 1,000,000 packets each way every buffer is where it should be: nothing leaked,
    double-posted or double-freed."""
    p = pair_factory(zero_copy=True, log2_ring_size=8, queues=2)
    regions = p.client.details()["regions"]
    ring = 256
    assert [r["index"] for r in regions] == list(range(5))
    assert all(r["created"] for r in regions)
    assert p.server.details()["regions"] and not any(r["created"] for r in p.server.details()["regions"])
    bsize = 2048
    assert all(r["size"] >= n * ring * bsize for r, n in zip(regions[1:], (2, 2, 1, 1), strict=True))
    lengths = array.array("I", [64] * 256)
    data = bytes(64 * 256)
    out = bytearray(64 * 256)
    out_lengths = array.array("I", [0] * 256)
    total = 1_000_000
    moved = {"c2s": 0, "s2c": 0}
    for q in (0, 1):
        for name, tx, rx in (("c2s", p.client, p.server), ("s2c", p.server, p.client)):
            todo = total // 2
            while todo:
                n = tx.tx_burst_packed(data, lengths, queue=q, count=min(256, todo))
                todo -= n
                while True:
                    got = rx.rx_burst_into(out, out_lengths, queue=q)
                    moved[name] += got
                    if not got:
                        break
    assert moved == {"c2s": total, "s2c": total}
    # A round of the buffer API on top, then everything must be back where it belongs.
    for q in (0, 1):
        assert send_with_buffers(p.client, [b"z" * 60] * 10, queue=q) == 10
        assert receive_with_buffers(p.server, 10, queue=q) == [b"z" * 60] * 10
    for q in (0, 1):
        # Each pool is its arena segment in bsize buffers: at least two rings' worth (TX) or one
        # (RX), more when the segment was rounded up to a huge page.
        tx_total = regions[1 + q]["size"] // bsize
        rx_total = regions[3 + q]["size"] // bsize
        assert tx_total >= 2 * ring and rx_total >= ring
        tx_counts_after = _settle(p.client.tx_queue(q))
        assert tx_counts_after == {"free": tx_total, "app": 0, "ring": 0, "total": tx_total}, tx_counts_after
        assert p.client.rx_queue(q).buffer_counts() == {"free": rx_total - ring, "app": 0, "ring": ring,
                                                        "total": rx_total}


def _settle(queue: memif_ct.Queue) -> dict[str, int]:
    """Counts once the server has released every slot (a reclaim runs at the next alloc)."""
    end = time.monotonic() + 5
    while time.monotonic() < end:
        bufs = queue.alloc_buffers(1, 64)
        queue.free_buffers(bufs)
        counts = queue.buffer_counts()
        if counts["ring"] == 0:
            return counts
        time.sleep(0.001)
    return queue.buffer_counts()


@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
def test_disconnect_mid_traffic_accounting_and_views(pair_factory, zero_copy):
    p = pair_factory(zero_copy=zero_copy, reconnect_interval_s=1.0)
    txq = p.client.tx_queue(0)
    held = p.client.alloc_buffers(5, size=64)
    assert p.client.tx_burst([b"q" * 3000] * 10) == 10  # chains in flight, never read
    burst = p.server.rx_buffers(4)
    assert len(burst) == 4
    views = list(burst[:3])  # made before the link goes; burst[3] never is
    counts = txq.buffer_counts()
    assert counts["app"] == 5 and counts["ring"] == 20
    assert counts["free"] + counts["app"] + counts["ring"] == counts["total"]
    p.client.disconnect("test: mid-traffic")
    p.client.wait_down(5)
    p.server.wait_down(5)
    assert txq.buffer_counts() == {"free": counts["total"], "app": 0, "ring": 0, "total": counts["total"]}
    for v in [*held, *views]:
        with pytest.raises(ValueError):
            v[0]
    with pytest.raises(ValueError, match="released"):
        burst[3]
    burst.release()  # after the link is gone: a no-op, never a touch of unmapped memory
    p.client.wait_up(5)
    p.server.wait_up(5)
    assert p.client.tx_burst([b"after"]) == 1
    assert receive_with_buffers(p.server, 1) == [b"after"]


def test_zero_copy_devargs(pair_factory):
    cfg = memif_ct.InterfaceConfig.from_devargs("role=client,id=0,socket=@x,zero-copy=yes")
    assert cfg.zero_copy is True


def test_arena_segments_are_sealed_and_sized():
    from memif_ct.region import Arena
    import fcntl

    with Arena([4096 * 3, 5000], first_index=1, hugepages=False) as arena:
        assert [r.index for r in arena.regions] == [1, 2]
        assert [r.size for r in arena.regions] == [4096 * 3, 8192]
        for r in arena.regions:
            assert fcntl.fcntl(r.fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
    with pytest.raises(ArgumentError, match="1..254"):
        Arena([4096] * 255, first_index=1)


@pytest.mark.parametrize("where", ["rings", "other queue's arena", "past the arena", "longer than posted"])
def test_hostile_server_descriptor_off_the_arena_is_caught_and_counted(pair_factory, where):
    """A server (emulated by writing the shared ring directly) publishes, on a zero-copy client's
    RX ring, a descriptor that is not the arena buffer the client posted in that slot: it is
    never read, never delivered, and counted; the next honest packet arrives."""
    import struct

    from memif_ct import _native, constants as c

    p = pair_factory(zero_copy=True, log2_ring_size=4)
    link = p.client._state.link  # the client's own mappings: region 0 (rings) and the arena
    layout = _native.Layout.compute(1, 1, 4, 2048)
    ring = layout.ring_offset(c.RING_TYPE_M2S, 0)
    cl = _native.cacheline_size()
    rings = link.regions[0].view()
    tail = struct.unpack_from("<H", rings, ring + cl)[0]
    at = ring + 2 * cl + 16 * (tail & 15)
    flags, region, length, offset = struct.unpack_from("<HHII", rings, at)
    assert region == 2 and length == 2048  # posted: its own arena segment (S2M is region 1)
    bad = {"rings": (0, 64, 0), "other queue's arena": (1, 64, 0), "past the arena": (2, 64, link.regions[2].size),
           "longer than posted": (2, 4096, offset)}[where]
    struct.pack_into("<HHII", rings, at, 0, *bad)
    struct.pack_into("<H", rings, ring + cl, (tail + 1) & 0xFFFF)  # publish it
    with p.client.rx_buffers(8) as burst:
        assert len(burst) == 0
    assert p.client.rx_burst(8) == []
    s = p.client.stats()["rx"][0]
    assert s["bad_desc"] == 1 and s["packets"] == 0 and s["errors"] >= 1
    # The same server, now honest: the next slot's posted buffer, filled and published.
    at = ring + 2 * cl + 16 * ((tail + 1) & 15)
    _flags, region, _length, offset = struct.unpack_from("<HHII", rings, at)
    with link.regions[region].view(offset, 60) as buf:
        buf[:] = b"honest" * 10
    struct.pack_into("<HHII", rings, at, 0, region, 60, offset)
    struct.pack_into("<H", rings, ring + cl, (tail + 2) & 0xFFFF)
    rings.release()
    assert receive_with_buffers(p.client, 1) == [b"honest" * 10]
    assert p.client.stats()["rx"][0]["bad_desc"] == 1


@pytest.mark.parametrize("bsize", [64, 1000, 2048, 9216, 65535])
@pytest.mark.parametrize("zero_copy", [False, True], ids=["copy", "zero-copy"])
def test_every_buffer_size_one_buffer_per_packet(pair_factory, zero_copy, bsize):
    """size may be the whole buffer, at the edges the protocol allows (64..65,535)."""
    p = pair_factory(zero_copy=zero_copy, buffer_size=bsize, log2_ring_size=4)
    packets = [payload(bsize + i, n) for i, n in enumerate((1, bsize - 1, bsize))]
    for tx, rx in ((p.client, p.server), (p.server, p.client)):
        assert send_with_buffers(tx, packets) == 3
        assert receive_with_buffers(rx, 3) == packets
    with pytest.raises(ValueError, match=f"expected 1..{bsize}"):
        p.client.alloc_buffers(1, size=bsize + 1)
