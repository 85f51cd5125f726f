"""Hostile control peers: a raw SOCK_SEQPACKET client against our server Interface, and a raw
listener against our client Interface, sending what a broken or malicious peer could.

For every bad message we must answer DISCONNECT with a reason (read here from the raw socket),
close our end, release every fd and mapping, and keep the other interfaces of the same Socket up
(a healthy pair shares the Socket and must still pass traffic afterwards).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import struct
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from peers import (
    ACK,
    CL,
    CONNECT,
    CONNECTED,
    HELLO,
    INIT,
    M2S,
    S2M,
    RawMemory,
    RawPeer,
    RawServer,
    Relay,
    ack,
    add_region,
    add_ring,
    assert_same,
    connect_msg,
    connected_msg,
    disconnect_reason,
    disconnect_msg,
    fd_count,
    frame,
    hello,
    init,
    memfd_mappings,
    payloads,
    peer_process,
    pump,
    raw_client_handshake,
    raw_server_handshake,
    short_dir,
    wait_for,
)

import memif_ct

SMALL = dict(log2_ring_size=4, buffer_size=256)
TIMEOUT_S = 0.3  # the victim's handshake timeout


def healthy_traffic(a: memif_ct.Interface, b: memif_ct.Interface) -> None:
    sent = payloads(range(1, 1200, 13), 1, 7)
    assert_same(sent, pump(a, b, sent, interrupt=True, timeout_s=10))
    assert_same(sent, pump(b, a, sent, interrupt=True, timeout_s=10))
    assert a.stats()["link_ups"] == 1 and b.stats()["link_ups"] == 1  # never dropped


# ==== our server, raw client ===================================================================


@pytest.fixture
def server_side():
    d = short_dir()
    path = os.path.join(d, "s.sock")
    sock = memif_ct.Socket(path)
    try:
        victim = memif_ct.Interface(role="server", socket=sock, id=0, handshake_timeout_s=TIMEOUT_S, **SMALL)
        hs = memif_ct.Interface(role="server", socket=sock, id=1, **SMALL)
        hc = memif_ct.Interface(role="client", socket=sock, id=1, **SMALL)
        hc.wait_up(5)
        hs.wait_up(5)
        env = SimpleNamespace(path=path, sock=sock, victim=victim, hs=hs, hc=hc,
                              base_fds=fd_count(), base_maps=memfd_mappings())
        yield env
    finally:
        sock.close()
        shutil.rmtree(d, ignore_errors=True)


def server_survives(env: SimpleNamespace) -> None:
    """Our side released everything; the healthy pair still works; the victim id still accepts."""
    wait_for(lambda: fd_count() <= env.base_fds and memfd_mappings() == env.base_maps, 5, "resources released")
    assert not env.victim.is_up
    healthy_traffic(env.hc, env.hs)
    mem = RawMemory()
    peer = RawPeer.connect(env.path)
    try:
        raw_client_handshake(peer, mem)
        env.victim.wait_up(5)
    finally:
        peer.close()
        mem.close()
    env.victim.wait_down(5)


def _init(peer: RawPeer, **kw: object) -> None:
    peer.expect(HELLO)
    peer.send(init(**kw))  # type: ignore[arg-type]
    peer.expect(ACK)


def _region(peer: RawPeer, mem: RawMemory) -> None:
    peer.send(add_region(0, mem.size), [mem.fd])
    peer.expect(ACK)


def _s2m_ring(peer: RawPeer, mem: RawMemory) -> None:
    peer.send(add_ring(S2M, 0, 0, mem.ring_offset(S2M, 0), mem.log2), [mem.eventfd(S2M, 0)])
    peer.expect(ACK)


def _rings(peer: RawPeer, mem: RawMemory) -> None:
    _s2m_ring(peer, mem)
    peer.send(add_ring(M2S, 0, 0, mem.ring_offset(M2S, 0), mem.log2), [mem.eventfd(M2S, 0)])
    peer.expect(ACK)


def _ring_with(peer: RawPeer, mem: RawMemory, **kw: object) -> None:
    args = dict(ring_type=S2M, index=0, region=0, offset=mem.ring_offset(S2M, 0), log2=mem.log2)
    args.update(kw)
    peer.send(add_ring(**args), [mem.eventfd(S2M, 0)])  # type: ignore[arg-type]


def _setup(peer: RawPeer, mem: RawMemory) -> None:
    _init(peer)
    _region(peer, mem)


def _connected(peer: RawPeer, mem: RawMemory) -> None:
    raw_client_handshake(peer, mem)


Script = Callable[[RawPeer, RawMemory], object]
RC = 0x0100  # a v1 version number

SERVER_CASES: dict[str, tuple[Script, str]] = {
    "size-64": (lambda p, m: (p.expect(HELLO), p.send(init()[:64])), "invalid message size 64, expected 128"),
    "size-200": (lambda p, m: (p.expect(HELLO), p.send(init() + bytes(72))),
                 "invalid message size 200, expected 128"),
    "size-129": (lambda p, m: (p.expect(HELLO), p.send(init() + b"x")), "invalid message size 129, expected 128"),
    "unknown-type": (lambda p, m: (p.expect(HELLO), p.send(frame(42))), "unknown message type 42"),
    "type-none": (lambda p, m: (p.expect(HELLO), p.send(frame(0))), "unknown message type 0"),
    "connect-first": (lambda p, m: (p.expect(HELLO), p.send(connect_msg())),
                      "unexpected message CONNECT in state WAIT_INIT"),
    "ack-first": (lambda p, m: (p.expect(HELLO), p.send(ack())), "unexpected message ACK in state WAIT_INIT"),
    "hello-from-client": (lambda p, m: (p.expect(HELLO), p.send(hello())),
                          "unexpected message HELLO in state WAIT_INIT"),
    "region-before-init": (lambda p, m: (p.expect(HELLO), p.send(add_region(0, m.size), [m.fd])),
                           "unexpected message ADD_REGION in state WAIT_INIT"),
    "wrong-version": (lambda p, m: (p.expect(HELLO), p.send(init(version=RC))),
                      "incompatible version 0x0100, expected 0x0200"),
    "unknown-id": (lambda p, m: (p.expect(HELLO), p.send(init(id=99))), "ID not found"),
    "mode-mismatch": (lambda p, m: (p.expect(HELLO), p.send(init(mode=2))), "Mode mismatch"),
    "second-init": (lambda p, m: (_init(p), p.send(init())), "unexpected message INIT in state WAIT_ADD"),
    "ring-before-region": (lambda p, m: (_init(p), _ring_with(p, m)), "S2M ring 0 in unknown region 0"),
    "region-index-1-first": (lambda p, m: (_init(p), p.send(add_region(1, m.size), [m.fd])),
                             "region index 1 out of order, expected 0"),
    "region-index-repeated": (lambda p, m: (_setup(p, m), p.send(add_region(0, m.size), [m.fd])),
                              "region index 0 out of order, expected 1"),
    "region-size-zero": (lambda p, m: (_init(p), p.send(add_region(0, 0), [m.fd])), "invalid region size 0"),
    "region-size-huge": (lambda p, m: (_init(p), p.send(add_region(0, 1 << 60), [m.fd])),
                         f"invalid region size {1 << 60}"),
    "region-missing-fd": (lambda p, m: (_init(p), p.send(add_region(0, m.size))), "missing region fd"),
    "region-two-fds": (lambda p, m: (_init(p), p.send(add_region(0, m.size), [m.fd, m.eventfds[0]])),
                       "2 fds in one message, expected 1"),
    "region-four-fds": (lambda p, m: (_init(p), p.send(add_region(0, m.size), [m.fd] * 4)),
                        "4 fds in one message, expected 1"),
    "region-eight-fds": (lambda p, m: (_init(p), p.send(add_region(0, m.size), [m.fd] * 8)),
                         "control message truncated"),
    "ring-missing-fd": (lambda p, m: (_setup(p, m), p.send(add_ring(S2M, 0, 0, m.ring_offset(S2M, 0), m.log2))),
                        "missing interrupt fd"),
    "ring-index-beyond-queues": (lambda p, m: (_setup(p, m), _ring_with(p, m, index=1)),
                                 "ring index 1 out of range, server has 1 S2M queues"),
    "m2s-ring-index-beyond-queues": (lambda p, m: (_setup(p, m), _ring_with(p, m, ring_type=M2S, index=300)),
                                     "ring index 300 out of range, server has 1 M2S queues"),
    "ring-duplicate": (lambda p, m: (_setup(p, m), _s2m_ring(p, m), _ring_with(p, m)), "duplicate S2M ring 0"),
    "ring-unknown-region": (lambda p, m: (_setup(p, m), _ring_with(p, m, region=1)),
                            "S2M ring 0 in unknown region 1"),
    "ring-log2-zero": (lambda p, m: (_setup(p, m), _ring_with(p, m, log2=0)),
                       "S2M ring 0 log2_ring_size 0 out of range 1..14"),
    "ring-log2-oversized": (lambda p, m: (_setup(p, m), _ring_with(p, m, log2=15)),
                            "S2M ring 0 log2_ring_size 15 out of range 1..14"),
    "private-header": (lambda p, m: (_setup(p, m), _ring_with(p, m, private_hdr_size=64)),
                       "private header not supported"),
    "ring-offset-outside-region": (lambda p, m: (_setup(p, m), _ring_with(p, m, offset=m.size - CL)),
                                   "S2M ring 0 outside region 0"),
    "ring-offset-max": (lambda p, m: (_setup(p, m), _ring_with(p, m, offset=0xFFFFFFFF)),
                        "S2M ring 0 outside region 0"),
    "connect-without-rings": (lambda p, m: (_setup(p, m), p.send(connect_msg())), "no S2M rings"),
    "connect-without-m2s": (lambda p, m: (_setup(p, m), _s2m_ring(p, m), p.send(connect_msg())),
                            "no M2S rings"),
    "rings-differ-in-size": (
        lambda p, m: (_setup(p, m), _s2m_ring(p, m),
                      p.send(add_ring(M2S, 0, 0, m.ring_offset(M2S, 0), m.log2 - 1), [m.eventfd(M2S, 0)]),
                      p.expect(ACK), p.send(connect_msg())),
        "rings differ in log2_ring_size (3 and 4)"),
    "disconnect-reply-ignored-after-garbage": (
        lambda p, m: (_connected(p, m), p.send(frame(99))), "unknown message type 99"),
    "ack-after-connected": (lambda p, m: (_connected(p, m), p.send(ack())),
                            "unexpected message ACK in state ESTABLISHED"),
    "init-after-connected": (lambda p, m: (_connected(p, m), p.send(init())),
                             "unexpected message INIT in state ESTABLISHED"),
    "short-after-connected": (lambda p, m: (_connected(p, m), p.send(b"\x01\x00")),
                              "invalid message size 2, expected 128"),
}


PRE_INIT = {"size-64", "size-200", "size-129", "unknown-type", "type-none", "connect-first", "ack-first",
            "hello-from-client", "region-before-init", "wrong-version", "unknown-id"}


@pytest.mark.parametrize("case", list(SERVER_CASES))
def test_bad_client_message(server_side, case):
    script, reason = SERVER_CASES[case]
    mem = RawMemory(log2=4, buffer_size=256)
    peer = RawPeer.connect(server_side.path)
    try:
        script(peer, mem)
        assert peer.expect_disconnect() == reason
    finally:
        peer.close()
        mem.close()
    if case in PRE_INIT:  # no INIT accepted yet: no interface to tell
        assert server_side.victim.last_disconnect_reason is None
    else:
        wait_for(lambda: server_side.victim.last_disconnect_reason == reason, 2, "victim reason")
    server_survives(server_side)


def _fd_case(make_fd: Callable[[], tuple[int, list[int]]], reason: str, *, at_connect: bool,
             server_side: SimpleNamespace, use_as: str = "region") -> None:
    mem = RawMemory(log2=4, buffer_size=256)
    fd, extra = make_fd()
    peer = RawPeer.connect(server_side.path)
    try:
        _init(peer)
        if use_as == "region":
            peer.send(add_region(0, mem.size), [fd])
            peer.expect(ACK)
            _rings(peer, mem)
        else:
            _region(peer, mem)
            peer.send(add_ring(S2M, 0, 0, mem.ring_offset(S2M, 0), mem.log2), [fd])
            if at_connect:
                peer.expect(ACK)
                peer.send(add_ring(M2S, 0, 0, mem.ring_offset(M2S, 0), mem.log2), [mem.eventfd(M2S, 0)])
                peer.expect(ACK)
        if at_connect:
            peer.send(connect_msg())
        assert peer.expect_disconnect() == reason
    finally:
        peer.close()
        mem.close()
        for f in [fd, *extra]:
            os.close(f)
    wait_for(lambda: server_side.victim.last_disconnect_reason == reason, 2, "reason noted")
    server_survives(server_side)


def test_region_fd_smaller_than_advertised_is_rejected_not_sigbus(server_side):
    probe = RawMemory(log2=4, buffer_size=256)
    size = probe.size
    probe.close()

    def small_memfd():
        fd = os.memfd_create("small", os.MFD_CLOEXEC)
        os.ftruncate(fd, 4096)
        os.pwrite(fd, struct.pack("<I", 0x3E31F20), 0)
        return fd, []

    _fd_case(small_memfd, f"region 0 file is 4096 bytes, smaller than {size}", at_connect=True,
             server_side=server_side)


def test_region_fd_not_mappable(server_side):
    _fd_case(lambda: (os.eventfd(0), []), "region 0 fd is not a mappable file", at_connect=True,
             server_side=server_side)


def test_wrong_cookie_in_ring(server_side):
    mem = RawMemory(log2=4, buffer_size=256, cookie=0x3E31F10)  # a v1 cookie
    peer = RawPeer.connect(server_side.path)
    try:
        _init(peer)
        for data, fds in mem.handshake_messages():
            peer.send(data, fds)
            if data[:2] != connect_msg()[:2]:
                peer.expect(ACK)
        assert peer.expect_disconnect() == "S2M ring 0: cookie mismatch"
    finally:
        peer.close()
        mem.close()
    wait_for(lambda: server_side.victim.last_disconnect_reason == "S2M ring 0: cookie mismatch", 2, "reason noted")
    server_survives(server_side)


def test_ring_fd_not_an_eventfd(server_side):
    """A pipe as the interrupt fd would block our data path on read (interrupt mode): refuse it."""
    def pipe():
        r, w = os.pipe()
        return r, [w]

    _fd_case(pipe, "S2M ring 0 interrupt fd is not an eventfd", at_connect=False, server_side=server_side,
             use_as="ring")


@pytest.mark.parametrize("stage", ["after-connect", "after-init"])
def test_silent_client_times_out(server_side, stage):
    peer = RawPeer.connect(server_side.path)
    try:
        if stage == "after-connect":
            peer.expect(HELLO)
        else:
            _init(peer)
        start = time.monotonic()
        assert peer.expect_disconnect(timeout_s=5) == "handshake timeout"
        assert time.monotonic() - start < TIMEOUT_S + 1.0
    finally:
        peer.close()
    server_survives(server_side)


@pytest.mark.parametrize("stage", ["after-hello", "after-region", "after-rings", "after-connected"])
def test_client_dies_mid_handshake(server_side, stage):
    mem = RawMemory(log2=4, buffer_size=256)
    peer = RawPeer.connect(server_side.path)
    try:
        if stage == "after-hello":
            peer.expect(HELLO)
        elif stage == "after-region":
            _setup(peer, mem)
        elif stage == "after-rings":
            _setup(peer, mem)
            _rings(peer, mem)
        else:
            _connected(peer, mem)
            server_side.victim.wait_up(5)
    finally:
        peer.close()  # no DISCONNECT: the process just went away
        mem.close()
    if stage == "after-connected":
        server_side.victim.wait_down(5)
        wait_for(lambda: server_side.victim.last_disconnect_reason == "peer closed the control channel", 2,
                 "reason noted")
    server_survives(server_side)


def test_zero_length_message_is_eof(server_side):
    peer = RawPeer.connect(server_side.path)
    try:
        peer.expect(HELLO)
        peer.send(b"")
        peer.expect_eof()  # section 1: size 0 = peer closed, nobody to tell
    finally:
        peer.close()
    server_survives(server_side)


def test_disconnect_from_client_during_handshake(server_side):
    peer = RawPeer.connect(server_side.path)
    try:
        _init(peer)
        peer.send(disconnect_msg("raw client gives up"))
        peer.expect_eof()
    finally:
        peer.close()
    wait_for(lambda: server_side.victim.last_disconnect_reason == "raw client gives up", 2, "reason noted")
    server_survives(server_side)


def test_raw_client_traffic_and_garbage_descriptors(server_side):
    """A peer that writes garbage descriptors into shared memory after connecting: counted as
    errors, dropped, no crash; valid packets around them still arrive intact."""
    victim = server_side.victim
    mem = RawMemory(log2=4, buffer_size=256)
    peer = RawPeer.connect(server_side.path)
    try:
        raw_client_handshake(peer, mem)
        victim.wait_up(5)
        head = mem.head(S2M, 0)

        def publish(descs: list[tuple[int, int, int, int]]) -> None:
            nonlocal head
            for flags, region, length, offset in descs:
                mem.write_desc(S2M, 0, head, flags, region, length, offset)
                head = (head + 1) & 0xFFFF
            mem.set_head(S2M, 0, head)
            os.eventfd_write(mem.eventfd(S2M, 0), 1)

        buf0 = mem.buffer_offset(S2M, 0, 0)
        assert mem.map is not None
        mem.map[buf0: buf0 + 5] = b"first"
        publish([(0, 0, 5, buf0)])
        assert victim.wait_rx(0, 2.0)
        assert victim.rx_burst() == [b"first"]
        bad = [
            (0, 7, 64, 0),  # no region 7
            (0, 0, 64, mem.size - 10),  # runs past the region's end
            (0, 0, 0xFFFFFFFF, 0),  # length beyond everything
            (0, 0, 0, buf0),  # empty packet
            (1, 0, 16, buf0), (0, 9, 16, buf0),  # a chain with a bad second slot: one drop
        ]
        publish(bad)
        assert victim.rx_burst() == []
        rx = victim.stats()["rx"][0]
        assert (rx["bad_desc"], rx["drops"], rx["errors"], rx["packets"]) == (5, 5, 5, 1)
        mem.map[buf0 + 256: buf0 + 262] = b"second"
        publish([(0, 0, 6, buf0 + 256)])
        assert victim.wait_rx(0, 2.0)
        assert victim.rx_burst() == [b"second"]
        # A head that claims more slots than the ring has: counted, nothing read.
        mem.set_head(S2M, 0, head + 100)
        assert victim.rx_burst() == []
        rx = victim.stats()["rx"][0]
        assert (rx["bad_ring"], rx["errors"], rx["packets"]) == (1, 6, 2)
        # M2S: the raw client posts garbage buffers; our server skips them, counts, no crash.
        for slot in range(4):
            mem.write_desc(M2S, 0, slot, 0, 3, 256, 0)
        mem.set_head(M2S, 0, 4)
        assert victim.tx_burst([b"nowhere"]) == 0
        tx = victim.stats()["tx"][0]
        assert tx["bad_desc"] == 4 and tx["errors"] == 4 and tx["packets"] == 0
        assert mem.tail(M2S, 0) == 4  # handed back empty
        assert victim.is_up
    finally:
        peer.close()
        mem.close()
    victim.wait_down(5)
    server_survives(server_side)


# ==== our client, raw server ===================================================================


@pytest.fixture
def client_side():
    """Socket S (clients only) dials a raw listener. Its first connection (the healthy client,
    id 1) is relayed to a real memif_ct server; each test then scripts the victim's (id 0)."""
    d = short_dir()
    upstream = os.path.join(d, "up.sock")
    path = os.path.join(d, "raw.sock")
    real = memif_ct.Interface(role="server", socket=upstream, id=1, **SMALL)
    raw = RawServer(path)
    sock = memif_ct.Socket(path)
    relay = None
    try:
        healthy = memif_ct.Interface(role="client", socket=sock, id=1, **SMALL)
        first = raw.accept()
        up = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        up.connect(upstream)
        relay = Relay(first.sock, up)
        relay.start()
        healthy.wait_up(5)
        real.wait_up(5)
        yield SimpleNamespace(path=path, raw=raw, sock=sock, healthy=healthy, real=real,
                              base_fds=fd_count(), base_maps=memfd_mappings())
    finally:
        sock.close()
        if relay is not None:
            relay.stop()
        raw.close()
        real.close()
        shutil.rmtree(d, ignore_errors=True)


def victim_client(env: SimpleNamespace, **opts: object) -> tuple[memif_ct.Interface, RawPeer]:
    victim = memif_ct.Interface(role="client", socket=env.sock, id=0, reconnect=False,
                                handshake_timeout_s=TIMEOUT_S, **{**SMALL, **opts})
    return victim, env.raw.accept()


def client_survives(env: SimpleNamespace, victim: memif_ct.Interface) -> None:
    victim.close()
    wait_for(lambda: fd_count() <= env.base_fds and memfd_mappings() == env.base_maps, 5, "resources released")
    healthy_traffic(env.healthy, env.real)


def _hello_init(p: RawPeer, **kw: object) -> None:
    p.send(hello(**kw))  # type: ignore[arg-type]
    p.expect(INIT)


def _to_region(p: RawPeer) -> None:
    _hello_init(p)
    p.send(ack())
    p.recv()  # ADD_REGION


CLIENT_CASES: dict[str, tuple[Script, str]] = {
    "hello-size-64": (lambda p, m: p.send(hello()[:64]), "invalid message size 64, expected 128"),
    "hello-size-200": (lambda p, m: p.send(hello() + bytes(72)), "invalid message size 200, expected 128"),
    "unknown-type": (lambda p, m: p.send(frame(42)), "unknown message type 42"),
    "connected-first": (lambda p, m: p.send(connected_msg()), "unexpected message CONNECTED in state WAIT_HELLO"),
    "ack-first": (lambda p, m: p.send(ack()), "unexpected message ACK in state WAIT_HELLO"),
    "init-from-server": (lambda p, m: p.send(init()), "unexpected message INIT in state WAIT_HELLO"),
    "second-hello": (lambda p, m: (_hello_init(p), p.send(hello())), "unexpected message HELLO in state WAIT_ACK"),
    "hello-max-log2-zero": (lambda p, m: p.send(hello(max_log2=0)), "peer max_log2_ring_size 0 too small"),
    "hello-wrong-version": (lambda p, m: p.send(hello(min_version=RC, max_version=RC)),
                            "incompatible version: peer supports 0x0100..0x0100, need 0x0200"),
    "connected-too-early": (lambda p, m: (_to_region(p), p.send(connected_msg())),
                            "unexpected message CONNECTED in state WAIT_ACK"),
    "garbage-size-mid-handshake": (lambda p, m: (_to_region(p), p.send(b"\x01")),
                                   "invalid message size 1, expected 128"),
    "garbage-after-connected": (lambda p, m: (raw_server_handshake(p), p.send(frame(99))),
                                "unknown message type 99"),
    "ack-after-connected": (lambda p, m: (raw_server_handshake(p), p.send(ack())),
                            "unexpected message ACK in state ESTABLISHED"),
    "hello-after-connected": (lambda p, m: (raw_server_handshake(p), p.send(hello())),
                              "unexpected message HELLO in state ESTABLISHED"),
}


@pytest.mark.parametrize("case", list(CLIENT_CASES))
def test_bad_server_message(client_side, case):
    script, reason = CLIENT_CASES[case]
    victim, peer = victim_client(client_side)
    try:
        script(peer, None)  # type: ignore[arg-type]
        assert peer.expect_disconnect() == reason
        wait_for(lambda: victim.last_disconnect_reason == reason, 2, "victim reason")
        assert not victim.is_up
    finally:
        peer.close()
    client_survives(client_side, victim)


@pytest.mark.parametrize("stage", ["before-hello", "after-init", "after-region"])
def test_silent_server_times_out(client_side, stage):
    victim, peer = victim_client(client_side)
    try:
        if stage == "after-init":
            _hello_init(peer)
        elif stage == "after-region":
            _to_region(peer)
        assert peer.expect_disconnect(timeout_s=5) == "handshake timeout"
        wait_for(lambda: victim.last_disconnect_reason == "handshake timeout", 2, "reason noted")
    finally:
        peer.close()
    client_survives(client_side, victim)


def test_server_disconnect_reason_reaches_client(client_side):
    victim, peer = victim_client(client_side)
    try:
        _hello_init(peer)
        peer.send(disconnect_msg("go away, raw server says"))
        peer.expect_eof()
        wait_for(lambda: victim.last_disconnect_reason == "go away, raw server says", 2, "reason")
    finally:
        peer.close()
    client_survives(client_side, victim)


def test_fd_attached_to_hello_is_closed(client_side):
    """Only ADD_REGION/ADD_RING carry fds; an fd on anything else is closed, not leaked."""
    victim, peer = victim_client(client_side)
    extra = os.eventfd(0)
    try:
        raw_server_handshake(peer, hello_fds=(extra,))
        victim.wait_up(5)
    finally:
        os.close(extra)
        peer.close()
    victim.wait_down(5)
    client_survives(client_side, victim)


def test_server_dies_after_connected(client_side):
    victim, peer = victim_client(client_side)
    try:
        got = raw_server_handshake(peer)
        victim.wait_up(5)
        assert memfd_mappings() == client_side.base_maps + 1
        assert len(got["regions"]) == 1 and len(got["rings"]) == 2  # type: ignore[arg-type]
    finally:
        peer.close()
    victim.wait_down(5)
    wait_for(lambda: victim.last_disconnect_reason == "peer closed the control channel", 2, "reason noted")
    client_survives(client_side, victim)


def test_raw_server_garbage_descriptors(client_side):
    """The raw server maps our client's region and writes garbage into the M2S ring and the S2M
    tail: our client counts errors in stats() and keeps running."""
    import mmap

    victim, peer = victim_client(client_side)
    mapped = None
    try:
        got = raw_server_handshake(peer)
        victim.wait_up(5)
        fd, size = got["regions"][0]  # type: ignore[index]
        _r, m2s_off, log2, m2s_efd = got["rings"][(M2S, 0)]  # type: ignore[index]
        _r, s2m_off, _l, _e = got["rings"][(S2M, 0)]  # type: ignore[index]
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        n = 1 << log2
        base = memoryview(mapped)
        words = base.cast("H")
        head = words[(m2s_off + 6) // 2]
        assert head == n  # the client posted every buffer
        desc = m2s_off + 2 * CL

        def slot(i: int) -> int:
            return desc + 16 * (i % n)

        # Three garbage descriptors: bad region, past the end, empty.
        struct.pack_into("<HHII", mapped, slot(0), 0, 5, 10, 0)
        struct.pack_into("<HHII", mapped, slot(1), 0, 0, 100, size - 50)
        struct.pack_into("<HHII", mapped, slot(2), 0, 0, 0, 0)
        # One good packet in the buffer the client posted in slot 3.
        _f, _reg, _len, off = struct.unpack_from("<HHII", mapped, slot(3))
        mapped[off: off + 4] = b"good"
        struct.pack_into("<HHII", mapped, slot(3), 0, 0, 4, off)
        words[(m2s_off + CL) // 2] = 4  # tail
        os.eventfd_write(m2s_efd, 1)
        assert victim.wait_rx(0, 2.0)
        assert victim.rx_burst() == [b"good"]
        rx = victim.stats()["rx"][0]
        assert (rx["bad_desc"], rx["drops"], rx["errors"], rx["packets"]) == (3, 3, 3, 1)
        # A tail beyond what the client posted.
        words[(m2s_off + CL) // 2] = 4 + 3 * n
        assert victim.rx_burst() == []
        assert victim.stats()["rx"][0]["bad_ring"] == 1
        # S2M: a tail the server never could have written (beyond head).
        words[(s2m_off + CL) // 2] = 1000
        assert victim.tx_burst([b"x"]) == 0
        tx = victim.stats()["tx"][0]
        assert tx["bad_ring"] >= 1 and tx["errors"] == tx["bad_ring"]
        assert victim.is_up
    finally:
        if mapped is not None:
            words.release()
            base.release()
            mapped.close()
        peer.close()
    victim.wait_down(5)
    client_survives(client_side, victim)


def test_hello_limits_are_clamped_by_the_client(client_side):
    """Huge or zero HELLO limits: the client takes min(max + 1, configured) (section 4)."""
    victim, peer = victim_client(client_side, rx_queues=2, tx_queues=3)
    try:
        got = raw_server_handshake(peer, max_m2s=0xFFFF, max_s2m=0, max_log2=255, max_region=0)
        victim.wait_up(5)
        rings = got["rings"]  # type: ignore[assignment]
        assert sorted(rings) == [(S2M, 0), (M2S, 0), (M2S, 1)]  # type: ignore[arg-type]
        assert {log2 for _r, _o, log2, _e in rings.values()} == {4}  # type: ignore[union-attr]
        d = victim.details()
        assert (d["tx_queues"], d["rx_queues"], d["log2_ring_size"]) == (1, 2, 4)
    finally:
        peer.close()
    victim.wait_down(5)
    client_survives(client_side, victim)


def test_unsealed_region_is_refused_and_server_survives():
    """A memfd without F_SEAL_SHRINK could be shrunk after CONNECT and SIGBUS the server on its
    next ring access: it must be refused. The server runs in a child process so that a
    regression kills the child, not pytest."""
    d = short_dir()
    path = os.path.join(d, "s.sock")
    try:
        with peer_process("echo", "--role", "server", "--socket", path, "--rsize", "4") as child:
            mem = RawMemory(log2=4, buffer_size=256, seal=False)
            peer = RawPeer.connect(path)
            try:
                _init(peer)
                for data, fds in mem.handshake_messages():
                    peer.send(data, fds)
                    if data[:2] != struct.pack("<H", CONNECT):
                        peer.expect(ACK)
                data, _ = peer.recv()
                if data[:2] == struct.pack("<H", CONNECTED):  # accepted: show what that costs
                    os.ftruncate(mem.fd, 0)
                    os.eventfd_write(mem.eventfd(S2M, 0), 1)
                    time.sleep(0.5)
                    pytest.fail(f"unsealed region accepted; server process returncode {child.proc.poll()}")
                assert disconnect_reason(data) == "region 0 fd is not sealed against shrinking"
            finally:
                peer.close()
                mem.close()
            assert child.proc.poll() is None
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_ring_fd_a_semaphore_eventfd_is_refused(server_side):
    """Issue 8 item 5: EFD_SEMAPHORE reads 1 per read, so one peer write of 2^62 would keep an
    interrupt-mode receiver waking for ever: refuse it at ADD_RING with a reason."""
    def semaphore():
        return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_SEMAPHORE), []

    _fd_case(semaphore, "S2M ring 0 interrupt fd is a semaphore eventfd", at_connect=False,
             server_side=server_side, use_as="ring")


def test_signals_without_packets_do_not_make_an_interrupt_wait_spin(server_side):
    """Issue 8 item 5: a peer signalling with nothing behind it costs one check per signal."""
    victim = server_side.victim
    mem = RawMemory(log2=4, buffer_size=256)
    peer = RawPeer.connect(server_side.path)
    try:
        raw_client_handshake(peer, mem)
        victim.wait_up(5)
        os.eventfd_write(mem.eventfd(S2M, 0), 1 << 40)  # one huge signal, no packet
        stop = threading.Event()

        def nag() -> None:  # and a signal every 50 ms
            while not stop.wait(0.05):
                os.eventfd_write(mem.eventfd(S2M, 0), 1)

        t = threading.Thread(target=nag)
        t.start()
        try:
            cpu0 = time.process_time()
            assert victim.wait_rx(0, timeout_s=1.0) is False
            cpu = time.process_time() - cpu0
        finally:
            stop.set()
            t.join()
        assert cpu < 0.3, f"wait_rx used {cpu:.2f} CPU-s in 1 s of empty signals"
    finally:
        peer.close()
        mem.close()


def test_a_client_cannot_make_the_server_map_more_than_its_cap(sockdir):
    """Issue 8 item 6, end to end: the region past max-map-bytes is refused before its ACK with
    a reason that gives no figure, and the server then serves a client that fits."""
    path = os.path.join(sockdir, "cap.sock")
    with memif_ct.Interface.from_devargs(
            f"net_memif0,role=server,id=0,socket={path},socket-abstract=no,max-map-bytes=1048576") as server:
        mem = RawMemory(log2=10, buffer_size=2048)  # 4 MiB of buffers
        peer = RawPeer.connect(path)
        try:
            _init(peer)
            peer.send(add_region(0, mem.size), [mem.fd])
            reason = peer.expect_disconnect()
        finally:
            peer.close()
            mem.close()
        assert reason == "region 0 exceeds the memory this server maps per connection"
        wait_for(lambda: server.last_disconnect_reason == reason, 2, "reason noted")
        small = RawMemory(log2=4, buffer_size=256)
        peer = RawPeer.connect(path)
        try:
            raw_client_handshake(peer, small)
            server.wait_up(5)
        finally:
            peer.close()
            small.close()
