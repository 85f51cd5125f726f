"""The Interface API and the control plane in one process: loopback (server and client of the same
id on one Socket), two Sockets talking to each other, secrets, ids, modes, sockets, reconnects.

Real kernel sockets, memfds and eventfds; every wait is bounded.
"""

from __future__ import annotations

import os
import select
import shutil
import socket

import pytest
from peers import (
    Loopback,
    abstract_name,
    assert_same,
    fd_count,
    memfd_mappings,
    payloads,
    pump,
    short_dir,
    wait_for,
)

import memif_ct
from memif_ct import ConfigError, NotConnectedError

FAST = dict(log2_ring_size=6, reconnect_interval_s=0.01, handshake_timeout_s=2.0)


@pytest.fixture
def sockdir():
    d = short_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def path(sockdir):
    return os.path.join(sockdir, "m.sock")


@pytest.fixture
def loopback_factory():
    made: list[Loopback] = []

    def make(where: str, **opts: object) -> Loopback:
        lb = Loopback(where, **opts)
        made.append(lb)
        return lb

    yield make
    for lb in made:
        lb.close()


# ---- traffic -------------------------------------------------------------------------------


@pytest.mark.parametrize("interrupt", [True, False], ids=["interrupt", "polling"])
@pytest.mark.parametrize("queues", [1, 2, 4])
def test_loopback_every_size_both_directions(loopback_factory, path, queues, interrupt):
    lb = loopback_factory(path, rx_queues=queues, tx_queues=queues, interrupt=interrupt)
    for intf in (lb.client, lb.server):
        d = intf.details()
        assert (d["rx_queues"], d["tx_queues"], d["ring_size"]) == (queues, queues, 1024)
    for tx, rx, seed in ((lb.client, lb.server, 1), (lb.server, lb.client, 2)):
        sent = payloads(range(1, 9001), queues, seed)
        got = pump(tx, rx, sent, interrupt=interrupt)
        assert_same(sent, got)
    # Counters are exact, per queue, on both ends.
    for q in range(queues):
        sizes = [s for s in range(1, 9001) if s % queues == q]
        chains = sum(1 for s in sizes if s > 2048)
        for intf, direction in ((lb.client, "tx"), (lb.server, "rx"), (lb.server, "tx"), (lb.client, "rx")):
            row = intf.stats()[direction][q]
            assert (row["packets"], row["bytes"], row["chains"], row["errors"], row["drops"]) == (
                len(sizes), sum(sizes), chains, 0, 0), (intf.config.role, direction, q, row)


@pytest.mark.parametrize("queues", [1, 2, 4])
def test_rx_eventfd_readable_only_in_interrupt_mode(loopback_factory, path, queues):
    """Interrupt mode: the RX eventfd (fileno) turns readable when the peer transmits, and
    wait_rx consumes it (rx_burst leaves it alone). Polling mode: the receiver sets MASK_INT, so
    the transmitter never signals (its needs_signal() is false) and the eventfd stays unreadable
    although packets arrive."""
    for interrupt in (True, False):
        lb = loopback_factory(path if interrupt else abstract_name(), rx_queues=queues, tx_queues=queues,
                              interrupt=interrupt)
        for tx, rx in ((lb.client, lb.server), (lb.server, lb.client)):
            for q in range(queues):
                assert tx.tx_queue(q).needs_signal() is interrupt
                fd = rx.fileno(q)
                assert select.select([fd], [], [], 0)[0] == []
                assert tx.tx_burst([b"q%d" % q], queue=q) == 1
                if interrupt:
                    assert select.select([fd], [], [], 2.0)[0] == [fd]
                    # Only queue q was signalled.
                    others = [rx.fileno(o) for o in range(queues) if o != q]
                    assert select.select(others, [], [], 0)[0] == []
                    assert rx.rx_burst(8, q) == [b"q%d" % q]
                    assert select.select([fd], [], [], 0)[0] == [fd]  # rx_burst leaves the signal
                    assert rx.wait_rx(q, timeout_s=0) is False  # ... to the wait, which reads it
                    assert select.select([fd], [], [], 0)[0] == []
                else:
                    assert rx.wait_rx(q, timeout_s=2.0)
                    assert select.select([fd], [], [], 0.05)[0] == []
                    assert rx.rx_burst(8, q) == [b"q%d" % q]
                    assert select.select([fd], [], [], 0)[0] == []


def test_mixed_interrupt_and_polling(loopback_factory, path):
    """Each receiver owns the flag of the ring it reads (section 5): server interrupt, client polling."""
    sock = memif_ct.Socket(path)
    try:
        server = memif_ct.Interface(role="server", socket=sock, id=3, interrupt=True)
        client = memif_ct.Interface(role="client", socket=sock, id=3, interrupt=False)
        client.wait_up(5)
        server.wait_up(5)
        assert client.tx_burst([b"to server"]) == 1
        assert select.select([server.fileno()], [], [], 2.0)[0] == [server.fileno()]
        assert server.rx_burst() == [b"to server"]
        assert server.tx_burst([b"to client"]) == 1
        assert client.wait_rx(0, 2.0)
        assert select.select([client.fileno()], [], [], 0.05)[0] == []
        assert client.rx_burst() == [b"to client"]
    finally:
        sock.close()


def test_two_sockets_in_one_process_and_stats_survive_reconnect(path):
    with memif_ct.Interface(role="server", socket=path, id=9, **FAST) as server, \
            memif_ct.Interface(role="client", socket=path, id=9, **FAST) as client:
        client.wait_up(5)
        server.wait_up(5)
        sent = payloads(range(1, 3001), 1, 5)
        assert_same(sent, pump(client, server, sent, interrupt=True))
        client.disconnect("test reconnect")
        wait_for(lambda: server.stats()["link_ups"] == 2 and client.is_up, 5, "reconnect")
        sent2 = payloads(range(1, 101), 1, 6)
        assert_same(sent2, pump(client, server, sent2, interrupt=True))
        rx = server.stats()["rx"][0]
        assert (rx["packets"], rx["bytes"]) == (3100, sum(range(1, 3001)) + sum(range(1, 101)))
        assert client.stats()["link_ups"] == 2
        d = server.details()
        assert (d["peer_name"], d["peer_if_name"], d["link"], d["buffer_size"]) == (
            "memif-ct", "memif-ct", "up", None)
        assert client.details()["buffer_size"] == 2048


def test_api_while_down(path):
    with memif_ct.Interface(role="client", socket=path, id=0, reconnect_interval_s=0.05) as client:
        assert not client.is_up
        assert client.tx_burst([b"x"]) == 0
        assert client.rx_burst() == []
        with pytest.raises(NotConnectedError):
            client.fileno()
        with pytest.raises(TimeoutError, match="No such file or directory"):
            client.wait_up(timeout_s=0.2)
        assert client.details()["link"] == "down"
        with pytest.raises(ValueError, match="max_packets=0"):
            client.rx_burst(0)


def test_queue_out_of_range_and_empty_packet(loopback_factory, path):
    lb = loopback_factory(path, rx_queues=2, tx_queues=2)
    with pytest.raises(ValueError, match="queue=2 is out of range"):
        lb.client.tx_burst([b"x"], queue=2)
    with pytest.raises(ValueError, match="queue=5 is out of range"):
        lb.client.rx_burst(queue=5)
    with pytest.raises(ValueError, match="empty"):
        lb.client.tx_burst([b"a", b""])


@pytest.mark.parametrize("bad", [5, "text", None, [1, 2]])
def test_a_packet_that_is_no_buffer_is_named(loopback_factory, path, bad):
    lb = loopback_factory(path)
    with pytest.raises(memif_ct.ArgumentTypeError, match=rf"packets\[1\] must be bytes, .* not {type(bad).__name__}"):
        lb.client.tx_burst([b"a", bad, b"c"])
    assert lb.client.tx_burst([b"after"]) == 1  # nothing of the refused burst was queued
    assert lb.server.rx_burst(8) == [b"after"]


def test_negotiation_takes_the_smaller_side(path):
    """Client asks for 4/3 queues and rsize 8; the server can take 2/2: rings = min (section 4)."""
    with memif_ct.Interface(role="server", socket=path, id=0, rx_queues=2, tx_queues=2) as server, \
            memif_ct.Interface(role="client", socket=path, id=0, tx_queues=2, rx_queues=2,
                               log2_ring_size=8) as client:
        client.wait_up(5)
        server.wait_up(5)
        for d in (client.details(), server.details()):
            assert (d["rx_queues"], d["tx_queues"], d["log2_ring_size"]) == (2, 2, 8)


def test_from_devargs_filesystem_socket(path):
    server = memif_ct.Interface.from_devargs(f"net_memif0,role=server,id=4,socket={path},socket-abstract=no")
    try:
        client = memif_ct.Interface.from_devargs(f"net_memif1,role=client,id=4,socket={path},socket-abstract=no")
        try:
            client.wait_up(5)
            assert os.path.exists(path)
            assert client.tx_burst([b"devargs"]) == 1
            assert server.wait_rx(0, 2.0)
            assert server.rx_burst() == [b"devargs"]
            assert server.details()["peer_if_name"] == "net_memif1"
        finally:
            client.close()
    finally:
        server.close()
    assert not os.path.exists(path)


# ---- handshake checks: reason seen on both sides -------------------------------------------


def _attempt(path, server_opts, client_opts):
    server = memif_ct.Interface(role="server", socket=path, id=0, **server_opts)
    client = memif_ct.Interface(role="client", socket=path, reconnect=False, **{"id": 0, **client_opts})
    return server, client


@pytest.mark.parametrize("server_secret,client_secret,reason", [
    ("s3cret", "wrong", "Incorrect secret"),
    ("s3cret", None, "Secret required"),
    ("s3cret", "s3cret-but-longer", "Incorrect secret"),
])
def test_bad_secret_reason_on_both_sides(path, server_secret, client_secret, reason):
    server, client = _attempt(path, {"secret": server_secret}, {"secret": client_secret})
    try:
        wait_for(lambda: client.last_disconnect_reason == reason, 5, f"client reason {reason}")
        assert server.last_disconnect_reason == reason
        with pytest.raises(TimeoutError, match=reason):
            client.wait_up(0.05)
        assert not server.is_up and not client.is_up
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("server_secret,client_secret", [
    ("s3cret", "s3cret"), (None, "ignored-by-server"), ("x" * 23, "x" * 23),
])
def test_good_secret_connects(path, server_secret, client_secret):
    server, client = _attempt(path, {"secret": server_secret}, {"secret": client_secret})
    try:
        client.wait_up(5)
        server.wait_up(5)
        assert client.last_disconnect_reason is None
    finally:
        client.close()
        server.close()


def test_id_mismatch(path):
    server, client = _attempt(path, {}, {"id": 7})
    try:
        wait_for(lambda: client.last_disconnect_reason == "ID not found", 5, "ID not found")
        assert not server.is_up
        assert server.last_disconnect_reason is None  # no interface 7 to tell
    finally:
        client.close()
        server.close()


def test_mode_mismatch(path):
    server, client = _attempt(path, {"mode": "ethernet"}, {"mode": "ip"})
    try:
        wait_for(lambda: client.last_disconnect_reason == "Mode mismatch", 5, "Mode mismatch")
        assert server.last_disconnect_reason == "Mode mismatch"
    finally:
        client.close()
        server.close()


def test_ip_mode_connects(path):
    server, client = _attempt(path, {"mode": "ip"}, {"mode": "ip"})
    try:
        client.wait_up(5)
        assert server.details()["mode"] == "ip"
    finally:
        client.close()
        server.close()


def test_already_connected_second_client_rejected_first_stays_up(path):
    server, first = _attempt(path, {}, {})
    second = None
    try:
        first.wait_up(5)
        server.wait_up(5)
        second = memif_ct.Interface(role="client", socket=path, id=0, reconnect=False)
        wait_for(lambda: second.last_disconnect_reason == "Already connected", 5, "Already connected")
        assert server.last_disconnect_reason == "Already connected"
        assert first.is_up and server.is_up and not second.is_up
        sent = payloads(range(1, 200), 1, 3)
        assert_same(sent, pump(first, server, sent, interrupt=True))
        assert server.stats()["link_ups"] == 1
    finally:
        if second is not None:
            second.close()
        first.close()
        server.close()


def test_disconnect_reason_reaches_the_peer(path):
    server, client = _attempt(path, {}, {})
    try:
        client.wait_up(5)
        server.wait_up(5)
        server.disconnect("maintenance window")
        server.wait_down(5)
        client.wait_down(5)
        assert client.last_disconnect_reason == "maintenance window"
        assert server.last_disconnect_reason == "maintenance window"
    finally:
        client.close()
        server.close()


def test_disconnect_soon_returns_a_future_that_completes_once_the_link_dropped(path):
    server, client = _attempt(path, {}, {})
    try:
        client.wait_up(5)
        server.wait_up(5)
        fut = server.disconnect_soon("from a future")
        assert fut.result(5) is None
        assert not server.is_up  # done means dropped, not merely queued
        client.wait_down(5)
        assert client.last_disconnect_reason == "from a future"
    finally:
        client.close()
        server.close()
    assert server.disconnect_soon("after close").result(0) is None  # a closed interface: done at once


def test_server_close_tells_client_and_client_retries(path):
    server = memif_ct.Interface(role="server", socket=path, id=0)
    client = memif_ct.Interface(role="client", socket=path, id=0, reconnect_interval_s=0.02)
    try:
        client.wait_up(5)
        server.close()
        client.wait_down(5)
        assert client.last_disconnect_reason == "interface closed"
        server = memif_ct.Interface(role="server", socket=path, id=0)
        client.wait_up(5)
        assert client.stats()["link_ups"] == 2
    finally:
        client.close()
        server.close()


# ---- sockets ------------------------------------------------------------------------------


def test_abstract_socket_loopback(loopback_factory):
    name = abstract_name()
    lb = loopback_factory(name, rx_queues=2, tx_queues=2)
    assert lb.socket.display == name and lb.socket.abstract
    sent = payloads(range(1, 3000, 7), 2, 8)
    assert_same(sent, pump(lb.server, lb.client, sent, interrupt=True))
    # Bound in the abstract namespace: '\0' + name, no trailing NUL (section 1).
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(b"\0" + name[1:].encode())
    finally:
        probe.close()


def test_live_listener_not_stolen(path):
    for where in (path, abstract_name()):
        with memif_ct.Interface(role="server", socket=where, id=0) as server:
            with pytest.raises(ConfigError, match="pass them the same memif_ct.Socket"):
                memif_ct.Interface(role="server", socket=where, id=1)
            with memif_ct.Interface(role="client", socket=where, id=0) as client:
                client.wait_up(5)
                server.wait_up(5)


def test_regular_file_not_replaced(path):
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(ConfigError, match="exists and is not a socket; refusing to replace it"):
        memif_ct.Interface(role="server", socket=path, id=0)
    with open(path) as f:
        assert f.read() == "precious"


def test_stale_socket_file_replaced(path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dead.bind(path)
    dead.close()  # a socket file nobody listens on
    with memif_ct.Interface(role="server", socket=path, id=0) as server, \
            memif_ct.Interface(role="client", socket=path, id=0) as client:
        client.wait_up(5)
        server.wait_up(5)


def test_two_server_ids_on_one_socket_two_clients(path):
    shared = memif_ct.Socket(path)
    try:
        s1 = memif_ct.Interface(role="server", socket=shared, id=1, rx_queues=2, tx_queues=2)
        s2 = memif_ct.Interface(role="server", socket=shared, id=2)
        with memif_ct.Interface(role="client", socket=path, id=1, rx_queues=2, tx_queues=2) as c1, \
                memif_ct.Interface(role="client", socket=path, id=2) as c2:
            for intf in (c1, c2, s1, s2):
                intf.wait_up(5)
            a = payloads(range(1, 4000, 3), 2, 11)
            b = payloads(range(1, 4000, 5), 1, 12)
            assert_same(a, pump(c1, s1, a, interrupt=True))
            assert_same(b, pump(c2, s2, b, interrupt=True))
            assert_same(a, pump(s1, c1, a, interrupt=True))
            assert_same(b, pump(s2, c2, b, interrupt=True))
            # Nothing crossed over.
            assert s1.stats()["rx"][0]["packets"] + s1.stats()["rx"][1]["packets"] == sum(map(len, a.values()))
            assert s2.stats()["rx"][0]["packets"] == len(b[0])
            # Closing one server interface keeps the socket file; the last one removes it.
            s1.close()
            c1.wait_down(5)
            assert os.path.exists(path)
            assert c2.is_up and c2.tx_burst([b"still"]) == 1
            assert s2.wait_rx(0, 2.0) and s2.rx_burst() == [b"still"]
            s2.close()
            assert not os.path.exists(path)
    finally:
        shared.close()
    assert not os.path.exists(path)


def test_socket_file_removed_on_close(path):
    server = memif_ct.Interface(role="server", socket=path, id=0)
    assert os.path.exists(path)
    server.close()
    assert not os.path.exists(path)
    server.close()  # idempotent


# ---- resources -----------------------------------------------------------------------------


def test_200_connect_disconnect_cycles_release_everything(path):
    base_fds, base_maps = fd_count(), memfd_mappings()
    sock = memif_ct.Socket(path)
    try:
        server = memif_ct.Interface(role="server", socket=sock, id=0, log2_ring_size=2, buffer_size=128,
                                    reconnect_interval_s=0.01)
        client = memif_ct.Interface(role="client", socket=sock, id=0, log2_ring_size=2, buffer_size=128,
                                    reconnect_interval_s=0.01)
        client.wait_up(5)
        server.wait_up(5)
        up_fds, up_maps = fd_count(), memfd_mappings()
        assert up_maps == base_maps + 2  # the client's mapping and the server's
        for cycle in range(1, 201):
            client.disconnect(f"cycle {cycle}")
            wait_for(lambda n=cycle + 1: client.is_up and server.stats()["link_ups"] == n, 5, f"cycle {cycle}")
            payload = cycle.to_bytes(2, "little") * 100
            assert client.tx_burst([payload]) == 1
            assert server.wait_rx(0, 2.0)
            assert server.rx_burst() == [payload]
        assert client.stats()["link_ups"] == 201
        assert server.last_disconnect_reason is None
        assert fd_count() <= up_fds and memfd_mappings() == up_maps
        assert server.stats()["rx"][0]["packets"] == 200
        client.close()
        server.close()
    finally:
        sock.close()
    wait_for(lambda: fd_count() <= base_fds and memfd_mappings() == base_maps, 5, "baseline")


def test_data_path_survives_concurrent_teardown(path):
    """User threads bursting and waiting while the control thread tears links down and up: the
    data path must never touch an unmapped ring (no crash), and counters stay consistent."""
    import threading

    lb = Loopback(path, log2_ring_size=4, buffer_size=256, reconnect_interval_s=0.01, rx_queues=2, tx_queues=2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer(tx, rx):
        try:
            while not stop.is_set():
                for q in (0, 1):
                    tx.tx_burst([b"z" * 300] * 4, queue=q)
                    rx.wait_rx(q, timeout_s=0.001)
                    rx.rx_burst(64, queue=q)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=pair) for pair in
               ((lb.client, lb.server), (lb.server, lb.client))]
    try:
        for t in threads:
            t.start()
        for cycle in range(1, 41):
            (lb.client if cycle % 2 else lb.server).disconnect(f"flap {cycle}")
            wait_for(lambda n=cycle + 1: lb.client.is_up and lb.server.stats()["link_ups"] == n, 5,
                     f"flap {cycle}")
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        lb.close()
    assert not errors, errors
    for intf in (lb.client, lb.server):
        s = intf.stats()
        assert s["link_ups"] == 41
        assert sum(r["errors"] for r in s["rx"] + s["tx"]) == 0
    # Every packet received was sent; some sent ones died with their link.
    sent = sum(r["packets"] for r in lb.client.stats()["tx"])
    received = sum(r["packets"] for r in lb.server.stats()["rx"])
    assert 0 < received <= sent


def test_create_close_cycles_release_everything(path):
    base_fds, base_maps = fd_count(), memfd_mappings()
    with memif_ct.Interface(role="server", socket=path, id=0, log2_ring_size=2, buffer_size=128) as server:
        for _ in range(50):
            with memif_ct.Interface(role="client", socket=path, id=0, log2_ring_size=2, buffer_size=128) as c:
                c.wait_up(5)
                server.wait_up(5)
            server.wait_down(5)
        assert server.stats()["link_ups"] == 50
    wait_for(lambda: fd_count() <= base_fds and memfd_mappings() == base_maps, 5, "baseline")
