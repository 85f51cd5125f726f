"""Per-burst cost of each layer, in one process, with no peer process and no DPDK.

A server and a client Interface on one abstract socket in this process; each round moves 256
frames of 64 bytes client -> server and back (four burst calls: TX, RX, TX, RX). Three paths
over the very same rings, measured in the same run, each round verified (counts):

* ``C call``: the four ``memif_ct_tx_burst``/``memif_ct_rx_burst`` calls straight through ctypes
  with buffers prepared once: the floor for anything called from Python;
* ``Queue``: the queue objects (``Interface.tx_queue(q)`` / ``rx_queue(q)``), list in, list out;
* ``Interface``: ``tx_burst``/``rx_burst`` on the interfaces, interrupt mode (the peer is
  signalled after every TX burst).

Prints the median microseconds per round over ``--repeat`` runs of ``--rounds`` rounds and each
figure as a ratio to the C call. Run on demand: ``python benchmarks/bench_burst.py``.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import memif_ct
from memif_ct import _native

BURST = 256
SIZE = 64


def _c_queue(intf: memif_ct.Interface, direction: str) -> int:
    """Address of the C queue struct behind queue 0 of ``direction``."""
    if hasattr(intf, "tx_queue"):
        q = intf.tx_queue(0) if direction == "tx" else intf.rx_queue(0)
        return int(q.c_address)
    # memif-ct 0.1.0 (before the queue object): for measuring the old build in the same way.
    link = intf._link
    return int(getattr(link, direction)[0].native._q)


def _c_functions() -> tuple[Callable[..., int], Callable[..., int], Callable[[int], object], Callable[[int], object]]:
    """The bare burst functions and how they take a pointer and a size: bound without argtypes
    (ctypes objects) since the bare calling convention, with argtypes (ints) before it."""
    if hasattr(_native, "BARE_PARAMETERS"):
        return _native.tx_burst_raw, _native.rx_burst_raw, ctypes.c_void_p, ctypes.c_size_t
    if hasattr(_native, "tx_burst_raw"):
        return _native.tx_burst_raw, _native.rx_burst_raw, int, int
    return _native._lib.memif_ct_tx_burst, _native._lib.memif_ct_rx_burst, int, int


def measure(rounds: int, repeat: int) -> dict[str, float]:
    name = f"memif-ct-bench-{os.getpid()}"
    sock = memif_ct.Socket(f"@{name}")
    server = memif_ct.Interface(role="server", socket=sock, id=0, interrupt=True)
    client = memif_ct.Interface(role="client", socket=sock, id=0, interrupt=True)
    try:
        server.wait_up(5)
        client.wait_up(5)
        packets = [bytes([i % 256]) * SIZE for i in range(BURST)]

        def interface_round() -> None:
            assert client.tx_burst(packets) == BURST
            got = server.rx_burst(BURST)
            assert server.tx_burst(got) == BURST
            assert len(client.rx_burst(BURST)) == BURST

        paths: dict[str, Callable[[], None]] = {"Interface": interface_round}
        if hasattr(client, "tx_queue"):
            ctx, srx, stx, crx = client.tx_queue(0), server.rx_queue(0), server.tx_queue(0), client.rx_queue(0)

            def queue_round() -> None:
                assert ctx.tx_burst(packets) == BURST
                got = srx.rx_burst(BURST)
                assert stx.tx_burst(got) == BURST
                assert len(crx.rx_burst(BURST)) == BURST

            paths["Queue"] = queue_round

        tx, rx, pointer, size = _c_functions()
        qs = [pointer(_c_queue(client, "tx")), pointer(_c_queue(server, "rx")), pointer(_c_queue(server, "tx")),
              pointer(_c_queue(client, "rx"))]
        data = b"".join(packets)
        lengths = array.array("I", [SIZE] * BURST)
        out = ctypes.create_string_buffer(BURST * 2048)
        out_lengths = array.array("I", bytes(4 * BURST))
        la, oa, ola = (pointer(lengths.buffer_info()[0]), pointer(ctypes.addressof(out)),
                       pointer(out_lengths.buffer_info()[0]))
        data_size, out_size = size(len(data)), size(len(out))

        def c_round() -> None:
            assert tx(qs[0], data, data_size, la, BURST) == BURST
            assert rx(qs[1], oa, out_size, ola, BURST) == BURST
            assert tx(qs[2], data, data_size, la, BURST) == BURST
            assert rx(qs[3], oa, out_size, ola, BURST) == BURST

        paths = {"C call": c_round, **paths}
        results: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(repeat):
            for label, fn in paths.items():
                for _ in range(rounds // 10):
                    fn()  # warm-up
                t0 = time.perf_counter()
                for _ in range(rounds):
                    fn()
                results[label].append((time.perf_counter() - t0) / rounds * 1e6)
        return {k: statistics.median(v) for k, v in results.items()}
    finally:
        client.close()
        server.close()
        sock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res = measure(args.rounds, args.repeat)
    base = res["C call"]
    if args.json:
        print(json.dumps({"version": memif_ct.__version__, "us_per_round": res,
                          "ratio_to_c": {k: v / base for k, v in res.items()}}))
        return 0
    print(f"memif-ct {memif_ct.__version__}: {BURST} x {SIZE} B out and back (4 bursts), "
          f"median of {args.repeat} x {args.rounds} rounds")
    for label, us in res.items():
        print(f"  {label:<10} {us:8.2f} us/round   {us / base:5.2f}x the C call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
