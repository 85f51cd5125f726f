"""Regression tests from an adversarial review: what a peer or a careless caller could do to the
data path and its teardown (hangs, crashes, wrong counts)."""

from __future__ import annotations

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
