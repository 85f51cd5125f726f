"""Regression tests from an adversarial review: what a peer or a careless caller could do to the
data path and its teardown (hangs, crashes, wrong counts)."""

from __future__ import annotations

import array
import fcntl
import os
import socket
import threading
import time

import pytest

import memif_ct
from memif_ct import constants as c, wire


@pytest.fixture
def pair(sockdir):
    path = os.path.join(sockdir, "s.sock")
    server = memif_ct.Interface(role="server", socket=path, id=0, log2_ring_size=4, buffer_size=256)
    client = memif_ct.Interface(role="client", socket=path, id=0, log2_ring_size=4, buffer_size=256,
                                reconnect_interval_s=0.01)
    try:
        client.wait_up(5)
        server.wait_up(5)
        yield server, client
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("queue", [-1, 1, True, 0.0, "0"])
def test_queue_index_must_be_a_valid_int(pair, queue):
    server, _client = pair
    with pytest.raises((ValueError, TypeError), match="queue"):
        server.tx_burst([b"x" * 60], queue=queue)
    with pytest.raises((ValueError, TypeError), match="queue"):
        server.rx_burst(queue=queue)


def test_peer_clearing_o_nonblock_on_the_shared_eventfd_cannot_block_us(pair):
    """The eventfd is one open file shared with the peer; blocking mode is the peer's to set."""
    server, client = pair
    for intf in (server, client):
        fd = intf.fileno(0)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    done = threading.Event()

    def bursts() -> None:
        for _ in range(100):
            server.rx_burst()  # clears an empty eventfd first (interrupt mode)
            client.rx_burst()
            server.tx_burst([b"y" * 60])
        done.set()

    threading.Thread(target=bursts, daemon=True).start()
    assert done.wait(5), "a burst blocked on an eventfd whose O_NONBLOCK the peer cleared"
    client.disconnect("test")  # and teardown still completes
    server.wait_down(5)


def test_wait_tx_drained_racing_teardown_does_not_crash(pair):
    server, client = pair
    stop = threading.Event()
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            while not stop.is_set():
                client.wait_tx_drained(0.001)
                server.wait_tx_drained(0.001)
                time.sleep(0.0002)  # returns at once while down: leave the GIL to the control thread
        except BaseException as exc:  # e.g. a detached queue touched outside its lock
            errors.append(exc)

    threads = [threading.Thread(target=drain, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):
            client.disconnect("cycle")
            client.wait_up(5)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert errors == []
    assert client.stats()["link_ups"] == 51


def test_a_queue_of_a_torn_down_link_refuses_instead_of_reading_freed_memory(pair):
    server, client = pair
    old = client.tx_queue(0)
    assert old.tx_burst([b"before"]) == 1
    client.disconnect("test")
    client.wait_up(5)
    assert not old.alive
    assert old.tx_burst([b"after"]) == 0  # moves nothing: its ring was unmapped
    assert old.free() == 0 and old.pending() == 0
    assert old.stats()["packets"] == 1  # counters stay readable
    assert client.tx_queue(0) is not old


def test_server_advertises_a_region_index_limit_its_table_can_hold(sockdir):
    path = os.path.join(sockdir, "h.sock")
    with memif_ct.Interface(role="server", socket=path, id=0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.settimeout(5)
            s.connect(path)
            hello = wire.unpack(s.recv(256))
        finally:
            s.close()
    assert isinstance(hello, wire.Hello)
    assert hello.max_region == c.MAX_REGIONS - 1  # highest index: MAX_REGIONS regions in all


def test_wait_rx_does_not_spin_without_a_peer(pair):
    server, _client = pair
    t0 = time.process_time()
    assert server.wait_rx(timeout_s=0.5) is False
    assert time.process_time() - t0 < 0.3  # it slept in poll(), it did not busy-loop


@pytest.mark.parametrize("bad, words", [
    (None, "not NoneType"),
    ({b"key": b"value"}, "not dict"),
    ((p for p in [b"x"]), "a generator or iterator is not a burst"),
    (b"one packet", "wrap a single packet in a list"),
    ({b"a", b"b"}, "not set"),
])
def test_tx_burst_refuses_what_is_not_a_list_of_packets_up_or_down(pair, bad, words):
    """Issue 8 item 10: None returned 0, a dict sent its keys, a generator got 'argument out of
    range'. Now a TypeError names the argument, whether or not the link is up."""
    server, client = pair
    with pytest.raises(memif_ct.ArgumentTypeError, match="packets must be a list of bytes-like packets") as info:
        client.tx_burst(bad)
    assert words in str(info.value) and isinstance(info.value, TypeError)
    down = memif_ct.Interface(role="client", socket="@memif-ct-nobody-here", id=9, reconnect=False)
    try:
        with pytest.raises(TypeError, match="packets must be a list"):
            down.tx_burst(bad)
    finally:
        down.close()
    assert client.tx_burst((b"a tuple", b"is fine")) == 2


def test_a_packet_the_peer_ring_can_never_carry_raises_in_both_roles(pair):
    """Issue 8 item 10: a server's tx_burst returned 0 for ever (a `while pkts:` loop spun)."""
    server, client = pair  # rings of 16 slots of 256 bytes: 4,096 bytes at most
    for sender in (server, client):
        with pytest.raises(ValueError, match=r"packets\[0\] is 5000 bytes, more than"):
            sender.tx_burst([b"z" * 5000])
        assert sender.tx_burst([b"fits" * 100]) == 1


# ---- from a review of the Python data path (a careless caller's crashes and hangs) ----------


def test_wait_rx_ends_with_not_connected_when_the_interface_closes(pair):
    """A thread in wait_rx(timeout_s=None) spun a whole core for ever once another thread closed
    the interface: the wait for the link returned at once each time round."""
    server, _client = pair
    outcome: list[BaseException | bool] = []

    def waiter() -> None:
        try:
            outcome.append(server.wait_rx(0, timeout_s=None))
        except BaseException as exc:  # recorded for the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    time.sleep(0.1)
    cpu0 = time.process_time()
    server.close()
    thread.join(5)
    assert not thread.is_alive(), "wait_rx did not return after close()"
    assert len(outcome) == 1 and isinstance(outcome[0], memif_ct.NotConnectedError), outcome
    assert time.process_time() - cpu0 < 1.0
    with pytest.raises(memif_ct.NotConnectedError):
        server.wait_rx(0, timeout_s=0.1)


@pytest.mark.parametrize("deadline, error", [
    (float("nan"), memif_ct.ArgumentError), (float("inf"), memif_ct.ArgumentError), (-1, memif_ct.ArgumentError),
    (5, memif_ct.ArgumentError), ("0.1", memif_ct.ArgumentTypeError),
])
def test_reflect_refuses_a_deadline_it_would_hold_both_locks_for(pair, deadline, error):
    """reflect(deadline_s=nan or inf) with the TX ring full looped for ever holding both queues'
    locks, and the control thread then hung in detach. 0..1 s is taken."""
    server, _client = pair
    with pytest.raises(error, match="deadline_s"):
        server.rx_queue(0).reflect(server.tx_queue(0), 8, deadline_s=deadline)
    with pytest.raises(memif_ct.ArgumentTypeError, match="tx must be a Queue, not str"):
        server.rx_queue(0).reflect("x", 8)  # type: ignore[arg-type]


def test_a_blocking_wait_on_the_control_thread_is_refused_not_a_deadlock(sockdir):
    """wait_up() in an on_down callback stopped the control thread for good: it is the one that
    brings the link up. Now the waits say so (EDEADLK); timeout_s=0 still answers there."""
    path = os.path.join(sockdir, "cb.sock")
    seen: list[str] = []

    def on_down(intf: memif_ct.Interface, _reason: str) -> None:
        try:
            intf.wait_up(None)
        except memif_ct.SocketError as exc:
            seen.append(f"errno {exc.errno}: {exc}")
        intf.wait_rx(0, timeout_s=0)  # does not wait: fine
        intf.wait_down(None)  # down already: returns at once, as it always did
        seen.append("done")

    def on_up(intf: memif_ct.Interface) -> None:
        intf.wait_up(None)  # up already
        intf.wait_rx(0, timeout_s=0.01)  # a finite wait only polls the ring
        ups.append("up")

    ups: list[str] = []
    with memif_ct.Interface(role="server", socket=path, id=0, on_down=on_down, on_up=on_up) as server:
        with memif_ct.Interface(role="client", socket=path, id=0, reconnect=False) as client:
            client.wait_up(5)
            server.wait_up(5)
        server.wait_down(5)
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(seen) == 2 and seen[1] == "done", seen
        assert ups == ["up"]
        assert seen[0].startswith("errno 35: ") and "control thread" in seen[0], seen  # EDEADLK
        with memif_ct.Interface(role="client", socket=path, id=0) as again:  # the thread is free
            again.wait_up(5)


def test_tx_buffers_made_by_hand_are_refused_not_handed_to_c(pair):
    """TxBuffers(handout, lo, hi) with lo far below 0 went to C as it was: SIGSEGV."""
    _server, client = pair
    bufs = client.alloc_buffers(4, size=64)
    handout = bufs.span[0]
    for lo, hi in [(-(1 << 40), -(1 << 40) + 1), (0, 5), (3, 2), (0.0, 1)]:
        with pytest.raises(memif_ct.ArgumentError, match="made by alloc_buffers"):
            memif_ct.TxBuffers(handout, lo, hi)  # type: ignore[arg-type]
    with pytest.raises(memif_ct.ArgumentError, match="made by alloc_buffers"):
        memif_ct.TxBuffers(object(), 0, 0)  # type: ignore[arg-type]
    assert client.tx_buffers(bufs[1:3]) == 2  # slicing still makes them
    client.free_buffers(bufs[0:1])
    client.free_buffers(bufs[3:])


def test_send_pkts_takes_only_a_peeked_packet_array(pair):
    """send_pkts(anything with an address) was handed to C: SIGSEGV."""
    import types

    server, _client = pair
    with pytest.raises(memif_ct.ArgumentError, match="PktArray"):
        server.tx_queue(0).send_pkts(types.SimpleNamespace(address=0x10), 1, False, 0.0)  # type: ignore[arg-type]


def test_an_rx_burst_made_by_hand_cannot_release_the_open_one(pair):
    """RxBurst(queue).release() handed back the slots of the burst still open on that queue; the
    peer then rewrote the packets under its live views (AAAA read BBBB)."""
    server, client = pair
    assert client.tx_burst([b"A" * 64] * 16) == 16
    deadline = time.monotonic() + 5
    while server.rx_queue(0).pending() < 16 and time.monotonic() < deadline:
        time.sleep(0.001)
    with server.rx_buffers(16) as burst:
        views = list(burst)
        memif_ct.RxBurst(server.rx_queue(0)).release()
        assert client.tx_burst([b"B" * 64] * 16) == 0  # the ring is still full: nothing handed back
        time.sleep(0.05)
        assert all(bytes(v) == b"A" * 64 for v in views)
    assert client.tx_burst([b"B" * 64] * 16) == 16  # released with the burst


def test_numpy_arrays_over_buffers_are_sent_and_freed_and_the_count_returned(pair):
    """tx_buffers/free_buffers of numpy arrays made on the buffers (the README's recipe) did the
    work, then raised TypeError releasing them as memoryviews: the count was lost."""
    np = pytest.importorskip("numpy")
    _server, client = pair
    bufs = client.alloc_buffers(4, size=64)
    arrays = [np.frombuffer(buf, dtype=np.uint8) for buf in bufs]
    for a in arrays:
        a[:] = 7
    assert client.tx_buffers(arrays[:2]) == 2
    client.free_buffers(arrays[2:])
    assert client.tx_queue(0).buffer_counts()["app"] == 0


def test_bad_packets_and_data_are_memif_errors_naming_them(pair):
    """A non-contiguous packet raised bytes.join's TypeError; released data a plain ValueError;
    a huge timeout an OverflowError."""
    server, client = pair
    strided = memoryview(bytes(range(128)))[::2]
    with pytest.raises(memif_ct.ArgumentTypeError, match=r"packets\[1\] is not C-contiguous"):
        client.tx_burst([b"x" * 64, strided])
    released = memoryview(bytearray(64))
    released.release()
    with pytest.raises(memif_ct.ArgumentError, match="released"):
        client.tx_burst_packed(released, memoryview(bytes(4)).cast("I"))
    with pytest.raises(memif_ct.ArgumentError, match=r"packets\[1\] cannot be sent: .*released"):
        client.tx_burst([b"x" * 64, released])  # a view of an RxBurst released since, say
    server.wait_up(1e300)  # beyond what threading takes: no limit, as None
    server.wait_up(10**400)  # beyond any float: the same


def test_a_refused_burst_says_what_of_it_was_wrong(pair):
    """These said only "memif_ct_tx_burst failed: argument out of range (error -1)" or "call
    does not fit the object's state (error -10)"."""
    server, client = pair
    data = bytes(128)
    with pytest.raises(memif_ct.ArgumentError, match=r"^lengths\[1\] is 0: a packet must have 1 or more bytes"):
        client.tx_burst_packed(data, array.array("I", [64, 0]))
    with pytest.raises(memif_ct.ArgumentError, match="^lengths add up to 192 bytes, more than the 128 bytes of data"):
        client.tx_burst_packed(bytearray(data), array.array("I", [64, 128]))
    bufs = server.alloc_buffers(2, size=64)
    with pytest.raises(memif_ct.ArgumentError, match="while it holds buffers alloc_buffers handed out"):
        server.tx_burst([b"x" * 60])
    server.free_buffers(bufs)
    assert server.tx_burst([b"x" * 60]) == 1
