"""Zero-copy against DPDK 22.11's dpdk-testpmd (issue 9 item 6).

* a memif-ct ``zero-copy=yes`` client against testpmd as the server (io and macswap; 64-byte
  frames through the buffer API and 9,000-byte chains), every frame verified, counts reconciled
  with testpmd's port statistics;
* testpmd as a ``zero-copy=yes`` client against a memif-ct server. DPDK then exposes its own
  memory segments as memif regions, which needs huge pages (``--in-memory`` with
  ``--single-file-segments``): the fixture reserves 2 MiB pages itself (as root, like the rest of
  CI's setup) and gives back what it added; it fails, never skips, when it cannot.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

import memif_ct
from memif_ct import tools

import testpmd
from test_interop_dpdk import UP_TIMEOUT_S, linked, our_devargs, run_cli, settle_stats

testpmd_factory = testpmd.testpmd_factory

pytestmark = pytest.mark.interop

HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB"
PAGES_NEEDED = 48  # testpmd --total-num-mbufs=16384 --in-memory maps a 52 MiB memseg list, + slack


# ---- memif-ct zero-copy client, testpmd server ---------------------------------------------


@pytest.mark.parametrize("mode", ["io", "macswap"])
@pytest.mark.parametrize("size", [64, 9000])
def test_zero_copy_client_round_trip_through_testpmd(testpmd_factory, mode, size):
    """pktgen --verify with zero-copy=yes: 64-byte frames go out through the buffer API (written
    in the arena, sent by descriptor); 9,000-byte ones are chains of 2,048-byte arena buffers."""
    sock = testpmd_factory.socket_path(f"zc{mode}{size}")
    pmd = testpmd_factory("server", sock, forward_mode=mode)
    count = 20000 if size == 64 else 1000
    with linked(pmd, our_devargs(sock, interrupt="no", zero_copy="yes")) as intf:
        details = intf.details()
        assert details["zero_copy"] is True
        assert [r["index"] for r in details["regions"]] == [0, 1, 2]  # rings, TX arena, RX arena
        r = tools.run_pktgen(intf, count=count, size=size, burst=32, verify=True)
        assert r.zero_copy is True
        assert (r.tx, r.rx, r.lost, r.corrupted, r.duplicates) == (count, count, 0, 0, 0), r
        ours = intf.stats()
        assert ours["tx"][0]["packets"] == ours["rx"][0]["packets"] == count
        assert ours["rx"][0]["errors"] == 0 and ours["rx"][0]["drops"] == 0
        if size > 2048:
            assert ours["tx"][0]["chains"] == count and ours["rx"][0]["chains"] == count
        stats = settle_stats(pmd, "tx_packets", count)
        assert stats["rx_packets"] == stats["tx_packets"] == count, stats
        assert stats["rx_bytes"] == stats["tx_bytes"] == count * size
        tx_pool = intf.tx_queue(0).buffer_counts()
        assert tx_pool["app"] == 0 and tx_pool["free"] + tx_pool["ring"] == tx_pool["total"]


def test_zero_copy_pktgen_cli_json_says_so(testpmd_factory):
    sock = testpmd_factory.socket_path("zccli")
    testpmd_factory("server", sock, forward_mode="io", auto_forward=True)
    summary, proc = run_cli("pktgen", our_devargs(sock, zero_copy="yes"), "--count", "5000", "--size", "128",
                            "--verify", "--wait-up", str(UP_TIMEOUT_S))
    assert proc.returncode == 0, proc.stderr
    assert summary["zero_copy"] is True
    assert (summary["tx"], summary["rx"], summary["lost"], summary["corrupted"]) == (5000, 5000, 0, 0)


# ---- testpmd zero-copy client, memif-ct server ---------------------------------------------


def _read_int(name: str) -> int:
    with open(os.path.join(HUGEPAGES, name), encoding="ascii") as f:
        return int(f.read())


@pytest.fixture
def hugepages() -> Iterator[None]:
    """PAGES_NEEDED free 2 MiB huge pages for the test; the pages it added are given back."""
    if not os.path.isdir(HUGEPAGES):
        pytest.fail(f"{HUGEPAGES} is missing: this kernel has no 2 MiB huge pages for a zero-copy testpmd")
    before = _read_int("nr_hugepages")
    short = PAGES_NEEDED - _read_int("free_hugepages")
    if short > 0:
        try:
            with open(os.path.join(HUGEPAGES, "nr_hugepages"), "w", encoding="ascii") as f:
                f.write(str(before + short))
        except OSError as exc:
            pytest.fail(f"a zero-copy testpmd needs {PAGES_NEEDED} free 2 MiB huge pages and reserving "
                        f"{short} more failed ({exc.strerror}): run as root, or "
                        f"echo {before + short} > {HUGEPAGES}/nr_hugepages")
        if _read_int("free_hugepages") < PAGES_NEEDED:
            pytest.fail(f"the kernel gave {_read_int('free_hugepages')} free huge pages of {PAGES_NEEDED} asked")
    try:
        yield
    finally:
        if short > 0:
            with open(os.path.join(HUGEPAGES, "nr_hugepages"), "w", encoding="ascii") as f:
                f.write(str(before))


def _server(sock: str, *extra: str) -> memif_ct.Interface:
    return memif_ct.Interface.from_devargs(",".join([our_devargs(sock, role="server", interrupt="no"), *extra]))


def test_testpmd_zero_copy_client_io_bytes_identical(testpmd_factory, hugepages):
    sock = testpmd_factory.socket_path("tzc")
    with _server(sock, "accept-unsealed-hugetlbfs=yes") as srv:
        pmd = testpmd_factory("client", sock, forward_mode="io", zero_copy=True, hugepages=True)
        srv.wait_up(UP_TIMEOUT_S)
        regions = srv.details()["regions"]
        assert len(regions) == 2 and regions[1]["size"] >= 2 << 20  # rings, then one memseg list
        assert not any(r["created"] for r in regions)
        pmd.wait_link_up()
        pmd.start_forwarding()  # before sending: `start` drops what is queued already
        rnd = random.Random(9)
        frames = [bytes.fromhex("020000000001020000000002") + b"\x08\x00" + i.to_bytes(4, "big")
                  + rnd.randbytes(rnd.choice([46, 110, 494, 1496])) for i in range(20000)]
        got: list[bytes] = []
        i, deadline = 0, time.monotonic() + 30
        while len(got) < len(frames) and time.monotonic() < deadline:
            # At most half a ring in flight: testpmd drops what its TX ring (our RX) cannot take,
            # which a busy machine could otherwise make happen between two of our bursts.
            if i < len(frames) and i - len(got) < 512:
                i += srv.tx_burst(frames[i:i + 32])
            with srv.rx_buffers(256) as burst:  # testpmd's own buffers, read in place
                got += [bytes(v) for v in burst]
        assert got == frames  # io: unchanged, in order, none lost
        s = srv.stats()
        assert s["rx"][0]["packets"] == s["tx"][0]["packets"] == 20000
        assert s["rx"][0]["errors"] == s["rx"][0]["bad_desc"] == 0
        p = pmd.stats()  # while the link is up: DPDK zeroes its counters on link down
        assert p["rx_packets"] == p["tx_packets"] == 20000
        assert p["tx_bytes"] == sum(map(len, frames))


def test_testpmd_zero_copy_client_refused_without_opt_in(testpmd_factory, hugepages):
    sock = testpmd_factory.socket_path("tzcno")
    with _server(sock) as srv:
        pmd = testpmd_factory("client", sock, forward_mode="rxonly", zero_copy=True, hugepages=True)
        pmd.wait_for_log(r"Disconnect received: region 1 fd is not sealed against shrinking "
                         r"\(hugetlbfs: needs accept-unsealed-hugetlbfs=yes\)")
        assert not srv.is_up
        assert "accept-unsealed-hugetlbfs=yes" in (srv.last_disconnect_reason or "")


def test_zero_copy_client_arena_on_huge_pages(hugepages):
    """With free huge pages the arena's segments are MFD_HUGETLB memfds, still sealed against
    shrinking, so a memif-ct server maps them without any opt-in; traffic both ways."""
    import fcntl

    from peers import Loopback

    lb = Loopback(f"@memif-ct-zc-huge-{os.getpid()}", client_opts={"zero_copy": True}, interrupt=False,
                  log2_ring_size=6)
    try:
        regions = lb.client.details()["regions"]
        assert [r["hugepages"] for r in regions] == [False, True, True]
        for region in lb.client._state.link.regions[1:]:
            assert fcntl.fcntl(region.fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
        frames = [bytes([i]) * (60 + i) for i in range(32)]
        for tx, rx in ((lb.client, lb.server), (lb.server, lb.client)):
            bufs = tx.alloc_buffers(len(frames), size=128)
            for buf, frame in zip(bufs, frames, strict=True):
                buf[:len(frame)] = frame
            assert tx.tx_buffers(bufs, [len(f) for f in frames]) == len(frames)
            got: list[bytes] = []
            deadline = time.monotonic() + 5
            while len(got) < len(frames) and time.monotonic() < deadline:
                with rx.rx_buffers(64) as burst:
                    got += [bytes(v) for v in burst]
            assert got == frames
    finally:
        lb.close()
