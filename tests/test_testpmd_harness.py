"""Validate the testpmd harness with two real testpmd processes talking memif to each other.

No memif_ct code runs here: these tests pin down how DPDK 22.11's net_memif behaves, so the
real-peer tests of memif_ct can rely on the harness (facts: tests/TESTPMD_NOTES.md).
"""

from __future__ import annotations

import os
import re
import time

import pytest
import testpmd
from testpmd import TestPmd, TestPmdError, require_testpmd

testpmd_factory = testpmd.testpmd_factory  # the fixture, made visible to this module
pytestmark = pytest.mark.interop
RUNTIME_DIR = "/var/run/dpdk"


def _wait_stats(pmd: TestPmd, key: str, at_least: int, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = pmd.stats()
        if stats[key] >= at_least:
            return stats
        if time.monotonic() >= deadline:
            pytest.fail(f"{pmd.role} {key}={stats[key]} < {at_least} after {timeout_s} s: {stats}")
        time.sleep(0.2)


def _wait_stats_zero(pmd: TestPmd, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(pmd.stats()[k] for k in ("rx_packets", "tx_packets")):
        if time.monotonic() >= deadline:
            pytest.fail(f"{pmd.role} counters not 0 while link down: {pmd.stats()}")
        time.sleep(0.1)


def _drain(server: TestPmd, client_tx: int, timeout_s: float = 5.0) -> dict:
    """Wait until the server has read what the (stopped) client sent, or stops advancing."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        stats = server.stats()
        if stats["rx_packets"] >= client_tx or time.monotonic() >= deadline:
            return stats
        if last is not None and stats["rx_packets"] == last:
            return stats
        last = stats["rx_packets"]
        time.sleep(0.2)


def _pair(factory, socket: str, *, abstract: bool = False, client_kw=None, server_kw=None):
    """Server (main lcore 0, forwards on 1) then client (main lcore 1, forwards on 0); link up.

    Forwarding starts only once both are up: a spinning forwarding lcore slows the other
    testpmd's start-up by seconds on a 2-core machine.
    """
    server = factory("server", socket, socket_abstract=abstract, forward_mode="rxonly", **(server_kw or {}))
    client = factory("client", socket, socket_abstract=abstract, forward_mode="txonly", **(client_kw or {}))
    client.wait_link_up(timeout_s=5)
    server.wait_link_up(timeout_s=5)
    return server, client


def _check_txonly_to_rxonly(server: TestPmd, client: TestPmd, pkt_len: int) -> str:
    """Run traffic, check the counters reconcile; return the client's 'start' reply."""
    server.start_forwarding()
    started = client.start_forwarding()
    _wait_stats(server, "rx_packets", 100_000)
    # Read the receiver first: at any instant rx <= tx, so rx(t1) <= tx(t2) for t1 < t2.
    srv_live = server.stats()
    cli_live = client.stats()
    assert 0 < srv_live["rx_packets"] <= cli_live["tx_packets"]

    client.stop_forwarding()
    cli = client.stats()
    srv = _drain(server, cli["tx_packets"])
    server.stop_forwarding()
    assert srv["rx_packets"] == cli["tx_packets"], (srv, cli)
    assert srv["rx_bytes"] == pkt_len * srv["rx_packets"], srv
    assert cli["tx_bytes"] == pkt_len * cli["tx_packets"], cli
    assert srv["rx_errors"] == srv["rx_missed"] == cli["tx_errors"] == 0, (srv, cli)
    return started


def test_require_testpmd_passes_here():
    require_testpmd()


def test_client_txonly_to_server_rxonly_stats_reconcile(testpmd_factory):
    server, client = _pair(testpmd_factory, testpmd_factory.socket_path("a"), client_kw={"txpkts": "64"})
    assert os.path.exists(server.socket)
    _check_txonly_to_rxonly(server, client, 64)


def test_abstract_socket(testpmd_factory):
    name = testpmd_factory.abstract_name("b")
    server, client = _pair(testpmd_factory, name, abstract=True)
    assert not os.path.exists(name)
    with open("/proc/net/unix") as f:
        assert any(line.rstrip().endswith("@" + name) for line in f), "abstract listener not found"
    _check_txonly_to_rxonly(server, client, 64)


@pytest.mark.parametrize(
    "txpkts, pkt_len, client_kw, server_kw",
    [
        # 2 mbuf segments -> 2 memif slots per packet; the server chains 2048-byte mbufs.
        ("2048,952", 3000, {}, {}),
        # 5 mbuf segments copied into one 10240-byte memif buffer (1 slot per packet).
        ("2048,2048,2048,2048,808", 9000, {"bsize": 10240}, {"mbuf_size": 10240}),
    ],
    ids=["3000B-2-slots", "9000B-1-slot"],
)
def test_chained_packets(testpmd_factory, txpkts, pkt_len, client_kw, server_kw):
    # Not 9000 bytes in 5 slots of 2048: DPDK 22.11's copy-mode Tx then overruns the ring
    # when exactly one slot too few is free, and the counters cannot reconcile (NOTES).
    server, client = _pair(
        testpmd_factory,
        testpmd_factory.socket_path("c"),
        client_kw={"txpkts": txpkts, **client_kw},
        server_kw=server_kw,
    )
    started = _check_txonly_to_rxonly(server, client, pkt_len)
    assert f"packet len={pkt_len} - nb packet segments={txpkts.count(',') + 1}" in started


def test_txpkts_longer_than_an_mbuf_is_an_error(testpmd_factory):
    # testpmd would print "... - give up" and silently keep sending 64-byte packets.
    with pytest.raises(TestPmdError, match="give up"):
        testpmd_factory("server", testpmd_factory.socket_path("g"), forward_mode="txonly", txpkts="9000")


@pytest.mark.parametrize(
    "server_kw, client_kw, reason",
    [
        ({"secret": "harness-one"}, {"secret": "harness-two"}, "Incorrect secret"),
        ({"secret": "harness-one"}, {}, "Secret required"),
        ({}, {"memif_id": 7}, "ID not found"),
    ],
    ids=["secret-mismatch", "secret-missing", "unknown-id"],
)
def test_handshake_rejected(testpmd_factory, server_kw, client_kw, reason):
    sock = testpmd_factory.socket_path("d")
    server = testpmd_factory("server", sock, forward_mode="rxonly", **server_kw)
    client = testpmd_factory("client", sock, forward_mode="txonly", **client_kw)
    # The client's port starts (connect() worked); the server's DISCONNECT arrives async.
    client.wait_for_log(r"Disconnect received: " + re.escape(reason), timeout_s=5)
    assert not client.link_up()
    assert not server.link_up()


def test_killed_server_brings_client_link_down_and_client_does_not_reconnect(testpmd_factory):
    sock = testpmd_factory.socket_path("e")
    server, client = _pair(testpmd_factory, sock)
    server.start_forwarding()
    client.start_forwarding()
    sent = _wait_stats(client, "tx_packets", 100_000)["tx_packets"]

    server.kill()
    assert not os.path.exists(sock)  # the harness removed the dead server's socket file
    client.wait_link_down(timeout_s=5)
    # While down, DPDK memif sums no rings, so counters read 0 (link goes down before the
    # ring count is cleared, hence the wait); they are back after a reconnect.
    _wait_stats_zero(client)

    server.start()
    with pytest.raises(TestPmdError, match="link not up"):
        client.wait_link_up(timeout_s=1.5)  # DPDK never retries the connection by itself
    assert client.restart_port()  # port stop + port start reconnects
    client.wait_link_up(timeout_s=5)
    server.wait_link_up(timeout_s=5)
    assert client.stats()["tx_packets"] >= sent


def test_client_without_server_fails_with_log_tail(testpmd_factory):
    with pytest.raises(TestPmdError) as err:
        testpmd_factory("client", testpmd_factory.socket_path("nobody"), forward_mode="txonly")
    text = str(err.value)
    assert "Fail to start port 0" in text
    assert "last 40 lines" in text and "memif_connect_client" in text


def test_stop_cleans_up_socket_and_runtime_dir(testpmd_factory):
    sock = testpmd_factory.socket_path("f")
    server = testpmd_factory("server", sock, forward_mode="rxonly")
    runtime = os.path.join(RUNTIME_DIR, server.file_prefix)
    assert os.path.exists(sock) and os.path.isdir(runtime)
    assert server.stop() == 0  # 'quit' is graceful
    assert not os.path.exists(sock) and not os.path.exists(runtime)
    server.start()
    server.kill()
    assert not os.path.exists(sock) and not os.path.exists(runtime)
    server.restart()
    assert server.alive() and os.path.exists(sock)
