"""Server and client in separate processes: the peer is ``python peers.py echo ...``, a memif_ct
Interface in a child process that sends every packet back on the queue it came in on. Every child
is SIGKILLed in a finally (the ``peer_process`` context manager)."""

from __future__ import annotations

import os
import select
import shutil
import threading
import time

import pytest
from peers import (
    abstract_name,
    assert_same,
    fd_count,
    memfd_mappings,
    payloads,
    peer_process,
    pump,
    short_dir,
    wait_for,
)

import memif_ct
from memif_ct import ConfigError


@pytest.fixture
def path():
    d = short_dir()
    yield os.path.join(d, "m.sock")
    shutil.rmtree(d, ignore_errors=True)


def echo_args(role: str, where: str, queues: int = 1, interrupt: bool = True, **extra: object) -> list[str]:
    args = ["echo", "--role", role, "--socket", where, "--queues", str(queues),
            "--interrupt", "yes" if interrupt else "no"]
    for k, v in extra.items():
        args += [f"--{k}", str(v)]
    return args


@pytest.mark.parametrize("parent_role,queues,interrupt", [
    ("client", 1, True), ("client", 1, False), ("client", 2, True), ("client", 2, False),
    ("client", 4, True), ("client", 4, False), ("server", 1, True), ("server", 4, False),
])
def test_every_size_through_a_peer_process(path, parent_role, queues, interrupt):
    """Sizes 1..9000 go to the child and come back (both directions, bytes compared), spread over
    every queue; each queue's echo must come back on that queue only."""
    child_role = "server" if parent_role == "client" else "client"
    where = path if queues != 2 else abstract_name()  # abstract sockets across processes too
    if parent_role == "server":
        intf = memif_ct.Interface(role="server", socket=where, id=0, rx_queues=queues, tx_queues=queues,
                                  interrupt=interrupt)
    try:
        with peer_process(*echo_args(child_role, where, queues, interrupt)):
            if parent_role == "client":
                intf = memif_ct.Interface(role="client", socket=where, id=0, rx_queues=queues,
                                          tx_queues=queues, interrupt=interrupt, reconnect_interval_s=0.02)
            intf.wait_up(10)
            assert intf.details()["rx_queues"] == queues
            sent = payloads(range(1, 9001), queues, seed=queues)
            got = pump(intf, intf, sent, interrupt=interrupt, timeout_s=60)
            assert_same(sent, got)
            stats = intf.stats()
            for q in range(queues):
                sizes = [len(p) for p in sent[q]]
                for direction in ("tx", "rx"):
                    row = stats[direction][q]
                    assert (row["packets"], row["bytes"], row["errors"]) == (len(sizes), sum(sizes), 0)
    finally:
        intf.close()


@pytest.mark.parametrize("interrupt", [True, False], ids=["interrupt", "polling"])
def test_eventfd_signalled_by_the_other_process(path, interrupt):
    """The child honours our MASK_INT: it signals our RX eventfd only in interrupt mode."""
    with peer_process(*echo_args("server", path, 2, interrupt=True)):
        with memif_ct.Interface(role="client", socket=path, id=0, rx_queues=2, tx_queues=2,
                                interrupt=interrupt) as intf:
            intf.wait_up(10)
            for q in (0, 1):
                fd = intf.fileno(q)
                assert select.select([fd], [], [], 0)[0] == []
                assert intf.tx_burst([b"ping %d" % q], queue=q) == 1
                if interrupt:
                    assert select.select([fd], [], [], 5.0)[0] == [fd]
                else:
                    assert intf.wait_rx(q, 5.0)
                    assert select.select([fd], [], [], 0.05)[0] == []
                assert intf.rx_burst(8, q) == [b"ping %d" % q]


def test_secret_across_processes(path):
    with peer_process(*echo_args("server", path, secret="abc")):
        with memif_ct.Interface(role="client", socket=path, id=0, secret="abd", reconnect=False) as bad:
            wait_for(lambda: bad.last_disconnect_reason == "Incorrect secret", 5, "Incorrect secret")
        with memif_ct.Interface(role="client", socket=path, id=0, reconnect=False) as none:
            wait_for(lambda: none.last_disconnect_reason == "Secret required", 5, "Secret required")
        with memif_ct.Interface(role="client", socket=path, id=3, secret="abc", reconnect=False) as wrong_id:
            wait_for(lambda: wrong_id.last_disconnect_reason == "ID not found", 5, "ID not found")
        with memif_ct.Interface(role="client", socket=path, id=0, secret="abc") as good:
            good.wait_up(5)
            assert good.tx_burst([b"secret ok"]) == 1
            assert good.wait_rx(0, 5) and good.rx_burst() == [b"secret ok"]


def _traffic(intf: memif_ct.Interface, stop: threading.Event, counts: list[int]) -> None:
    packet = b"\xab" * 1500
    while not stop.is_set():
        counts[0] += intf.tx_burst([packet] * 16)
        counts[1] += len(intf.rx_burst(256))
        time.sleep(0.0005)


def test_server_killed_mid_traffic_client_releases_and_reconnects(path):
    base_fds, base_maps = fd_count(), memfd_mappings()
    stop = threading.Event()
    counts = [0, 0]
    with memif_ct.Interface(role="client", socket=path, id=0, reconnect_interval_s=0.02) as intf:
        overhead = fd_count() - base_fds  # the Socket's selector and wakeup eventfd
        with peer_process(*echo_args("server", path)) as child:
            intf.wait_up(10)
            worker = threading.Thread(target=_traffic, args=(intf, stop, counts))
            worker.start()
            try:
                wait_for(lambda: counts[1] > 200, 10, "echo traffic")
                child.kill()  # SIGKILL mid-traffic
                intf.wait_down(5)
            finally:
                stop.set()
                worker.join(5)
        assert intf.last_disconnect_reason == "peer closed the control channel"
        assert intf.tx_burst([b"x"]) == 0 and intf.rx_burst() == []
        # Everything of the dead link is gone: no memfd mapping, no region fd, no eventfd.
        assert memfd_mappings() == base_maps
        wait_for(lambda: fd_count() <= base_fds + overhead, 5, "fds released")
        assert os.path.exists(path)  # the stale socket file of the killed server
        with peer_process(*echo_args("server", path)):  # replaces the stale file
            intf.wait_up(10)
            assert intf.stats()["link_ups"] == 2
            sent = payloads(range(1, 3000, 11), 1, 4)
            assert_same(sent, pump(intf, intf, sent, interrupt=True))
    wait_for(lambda: fd_count() <= base_fds and memfd_mappings() == base_maps, 5, "baseline")


def test_client_killed_mid_traffic_server_releases_and_accepts_again(path):
    base_fds, base_maps = fd_count(), memfd_mappings()
    stop = threading.Event()
    counts = [0, 0]
    with memif_ct.Interface(role="server", socket=path, id=0, rx_queues=2, tx_queues=2) as intf:
        idle_fds = fd_count()
        with peer_process(*echo_args("client", path, 2)) as child:
            intf.wait_up(10)
            assert memfd_mappings() == base_maps + 1  # the client's region, mapped here
            worker = threading.Thread(target=_traffic, args=(intf, stop, counts))
            worker.start()
            try:
                wait_for(lambda: counts[1] > 200, 10, "echo traffic")
                child.kill()
                intf.wait_down(5)
            finally:
                stop.set()
                worker.join(5)
        assert intf.last_disconnect_reason == "peer closed the control channel"
        assert memfd_mappings() == base_maps
        wait_for(lambda: fd_count() == idle_fds, 5, "fds released")
        with peer_process(*echo_args("client", path, 2)):
            intf.wait_up(10)
            sent = payloads(range(1, 2000, 7), 2, 9)
            assert_same(sent, pump(intf, intf, sent, interrupt=True))
    assert not os.path.exists(path)
    wait_for(lambda: fd_count() <= base_fds and memfd_mappings() == base_maps, 5, "baseline")


def test_stale_socket_file_of_killed_server_replaced(path):
    with peer_process(*echo_args("server", path)) as child:
        child.kill()
    assert os.path.exists(path)
    with memif_ct.Interface(role="server", socket=path, id=0) as server:
        with peer_process(*echo_args("client", path)):
            server.wait_up(10)
            # The server can send only once the client has posted buffers (section 5).
            wait_for(lambda: server.tx_burst([b"new server"]) == 1, 5, "client buffers posted")
            assert server.wait_rx(0, 5) and server.rx_burst() == [b"new server"]
    assert not os.path.exists(path)


@pytest.mark.parametrize("abstract", [False, True], ids=["filesystem", "abstract"])
def test_live_listener_in_another_process_not_stolen(path, abstract):
    where = abstract_name() if abstract else path
    with peer_process(*echo_args("server", where)):
        with pytest.raises(ConfigError, match="pass them the same memif_ct.Socket"):
            memif_ct.Interface(role="server", socket=where, id=0)
        with memif_ct.Interface(role="client", socket=where, id=0) as client:
            client.wait_up(10)
            assert client.tx_burst([b"still served"]) == 1
            assert client.wait_rx(0, 5) and client.rx_burst() == [b"still served"]
