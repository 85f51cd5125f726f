#!/usr/bin/env python3
"""memif-ct throughput against DPDK, as ratios to testpmd<->testpmd measured in the same run.

    python benchmarks/bench_testpmd.py [--seconds 3] [--size 64]

Run on demand, not in CI: figures on these small shared machines vary run to run, which is why
every memif-ct figure is printed as a ratio to a DPDK baseline taken minutes apart on the same
machine. Needs dpdk-testpmd (see README) and memif-ct installed.

  baseline   testpmd client txonly  -> testpmd server rxonly     (roadmap: ~20 Mpps at 64 B)
  py-tx      memif-ct client tx_burst_packed (prebuilt frames) -> testpmd server rxonly
  py-rx      testpmd server txonly -> memif-ct client rx_burst_into (caller-owned buffer)
  py-rx-list testpmd server txonly -> memif-ct client rx_burst (list[bytes])
"""

from __future__ import annotations

import argparse
import array
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import testpmd  # the harness: starts, reads and stops testpmd

import memif_ct
from memif_ct import frames


def rx_rate(pmd: testpmd.TestPmd, seconds: float) -> float:
    """Mpps testpmd received over `seconds` (its port counters, read twice)."""
    a = pmd.stats()["rx_packets"]
    t0 = time.monotonic()
    time.sleep(seconds)
    b = pmd.stats()["rx_packets"]
    return (b - a) / (time.monotonic() - t0) / 1e6


def settle(pmd: testpmd.TestPmd, key: str, expected: int, timeout_s: float = 5.0) -> int:
    value = pmd.stats()[key]
    deadline = time.monotonic() + timeout_s
    while value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = pmd.stats()[key]
    return value


def check(name: str, ours: int, peer: int, slack: int = 0) -> None:
    """A figure counts only if testpmd's own port counters agree with ours."""
    if not 0 <= peer - ours <= slack:
        raise SystemExit(f"{name}: we counted {ours} packets, testpmd counted {peer}: figures disagree")


def baseline(factory: testpmd.TestPmdFactory, seconds: float, size: int) -> float:
    sock = factory.socket_path("base")
    server = factory("server", sock, forward_mode="rxonly")
    client = factory("client", sock, forward_mode="txonly", txpkts=str(size))
    server.wait_link_up(20)
    server.start_forwarding()
    client.start_forwarding()
    time.sleep(0.5)
    rate = rx_rate(server, seconds)
    client.stop()
    server.stop()
    return rate


@contextlib.contextmanager
def client_of(server: testpmd.TestPmd, sock: str) -> Iterator[memif_ct.Interface]:
    """A memif-ct client, polling, up with ``server``, and the server forwarding."""
    devargs = f"role=client,id=0,socket={sock},socket-abstract=no,interrupt=no"
    with memif_ct.Interface.from_devargs(devargs) as intf:
        intf.wait_up(20)
        server.wait_link_up(20)
        server.start_forwarding()
        yield intf


def py_tx(factory: testpmd.TestPmdFactory, seconds: float, size: int, burst: int) -> float:
    sock = factory.socket_path("pytx")
    server = factory("server", sock, forward_mode="rxonly")
    data, lengths = frames.build_frames_batch(burst, size, 0)
    lens = array.array("I", lengths)
    with client_of(server, sock) as intf:
        sent = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            for _ in range(100):
                sent += intf.tx_burst_packed(data, lens)
        elapsed = time.monotonic() - t0
        peer = settle(server, "rx_packets", sent)
    server.stop()
    check("py-tx", sent, peer)
    return sent / elapsed / 1e6


def py_rx(factory: testpmd.TestPmdFactory, seconds: float, size: int, burst: int, as_list: bool) -> float:
    sock = factory.socket_path("pyrx")
    server = factory("server", sock, forward_mode="txonly", txpkts=str(size))
    out = bytearray(burst * 2048)
    lens = array.array("I", bytes(4 * burst))
    with client_of(server, sock) as intf:
        got = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            for _ in range(100):
                got += len(intf.rx_burst(burst)) if as_list else intf.rx_burst_into(out, lens)
        elapsed = time.monotonic() - t0
        server.stop_forwarding()
        peer_tx = server.stats()["tx_packets"]
        if intf.stats()["rx"][0]["errors"]:
            raise SystemExit(f"py-rx: {intf.stats()['rx'][0]['errors']} ring errors counted")
    server.stop()
    # What testpmd sent but we had not read yet is at most one ring (1024 slots).
    check("py-rx-list" if as_list else "py-rx", got, peer_tx, slack=1024)
    return got / elapsed / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--burst", type=int, default=256)
    args = ap.parse_args()
    testpmd.require_testpmd()
    factory = testpmd.TestPmdFactory()
    try:
        base = baseline(factory, args.seconds, args.size)
        results = {
            "py-tx": py_tx(factory, args.seconds, args.size, args.burst),
            "py-rx": py_rx(factory, args.seconds, args.size, args.burst, as_list=False),
            "py-rx-list": py_rx(factory, args.seconds, args.size, args.burst, as_list=True),
        }
    finally:
        factory.close()
    print(f"{args.size}-byte frames, burst {args.burst}, {args.seconds:.0f} s each, {memif_ct.__version__}")
    print(f"{'figure':<12}{'Mpps':>8}{'x baseline':>12}")
    print(f"{'baseline':<12}{base:>8.2f}{1.0:>12.3f}")
    for name, mpps in results.items():
        print(f"{name:<12}{mpps:>8.2f}{mpps / base:>12.3f}")


if __name__ == "__main__":
    main()
